"""Fixtures for the doctor tests: interpreters with and without mlx, project copies for uv."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERIFY_ENV = ROOT / "scripts" / "verify_env.py"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without venv or PYTHONPATH hints."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env.update(extra)
    return env


def run_verify_env(
    python: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(VERIFY_ENV), *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


def has_module(python: str, module: str) -> bool:
    probe = subprocess.run(
        [
            python,
            "-c",
            f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)",
        ],
        capture_output=True,
        env=clean_env(),
        check=False,
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def base_python() -> str:
    """The interpreter this venv was made from: outside any venv, without athena or mlx."""
    candidates = [
        getattr(sys, "_base_executable", None),
        str(Path(sys.base_prefix) / "bin" / "python3"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and Path(sys.base_prefix) != Path(sys.prefix):
            if has_module(candidate, "mlx"):
                pytest.skip(f"the base interpreter {candidate} has mlx installed globally")
            return candidate
    pytest.skip("the tests do not run in a venv, so there is no interpreter outside it")


@pytest.fixture(scope="session")
def venv_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`scripts/verify_env.py --json` run once with this venv's Python, from a foreign cwd."""
    result = run_verify_env(
        sys.executable, "--json", cwd=tmp_path_factory.mktemp("cwd"), env=dict(os.environ)
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    report["_returncode"] = result.returncode
    report["_stderr"] = result.stderr
    return report


def checks_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for check in report["checks"]}


def validate(report: dict[str, Any], tmp_path: Path, valid: bool = True) -> None:
    """check-jsonschema (dev group) on a report against athena/doctor/schema.json: it admits
    the report (or, `valid=False`, refuses it)."""
    tool = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if tool is None:
        pytest.skip("check-jsonschema is not installed (the dev group)")
    document = tmp_path / "report.json"
    document.write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}))
    schema = ROOT / "athena" / "doctor" / "schema.json"
    result = subprocess.run(
        [tool, "--schemafile", str(schema), str(document)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode == 0) == valid, result.stdout + result.stderr


def require_mlx() -> None:
    pytest.importorskip("mlx.core", reason="install the mlx-cpu group: uv sync --group mlx-cpu")


# ------------------------------------------------------------------- project copies for uv


def uv_path() -> str:
    """The uv the doctor itself would use (seen through a pyenv shim)."""
    from athena.doctor.audit import uv_executable

    path = shutil.which("uv", path=str(Path(sys.executable).parent)) or uv_executable()
    if path is None:
        pytest.skip("uv is not on PATH (install uv)")
    return path


def copy_project(dest: Path) -> Path:
    """pyproject.toml, uv.lock, README.md and athena/__init__.py (the version): enough for uv."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    (dest / "athena").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "athena" / "__init__.py", dest / "athena" / "__init__.py")
    return dest


def edit_pyproject(project: Path, old: str, new: str) -> None:
    path = project / "pyproject.toml"
    text = path.read_text()
    assert old in text, f"{old!r} not in pyproject.toml: the mutation test needs updating"
    path.write_text(text.replace(old, new, 1))


def add_dependency(project: Path, requirement: str) -> None:
    """Append `requirement` to [project].dependencies."""
    path = project / "pyproject.toml"
    text = path.read_text()
    match = re.search(r"^dependencies = \[\n", text, flags=re.M)
    assert match, "no `dependencies = [` in pyproject.toml"
    path.write_text(text[: match.end()] + f'    "{requirement}",\n' + text[match.end() :])


def local_package(parent: Path, name: str, version: str, dependencies: list[str]) -> Path:
    """A tiny installable package at parent/name (hatchling, one module)."""
    root = parent / name
    module = name.replace("-", "_")
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text("")
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "{version}"\ndependencies = [{deps}]\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    return root


def lock_date(lock: Path) -> str:
    """One second after the newest upload in `lock`: with `uv lock --exclude-newer` at this
    date, the index looks as it did when the lock was made, so what a test expects survives
    a new upload (a new torch, a new bitsandbytes) and the locked versions stay valid."""
    times = re.findall(r'upload-time = "([^"]+)"', lock.read_text())
    assert times, f"{lock} records no upload-time (uv >= 0.6 writes one per file)"
    newest = datetime.fromisoformat(max(times).replace("Z", "+00:00"))
    return (newest + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_exclude_newer(lock_text: str) -> str:
    """uv.lock without the `[options] exclude-newer` that `uv_lock` records."""
    return re.sub(r'\[options\]\nexclude-newer = "[^"]+"\n\n', "", lock_text)


def uv_lock(project: Path) -> subprocess.CompletedProcess[str]:
    """A real `uv lock` in the copy, against the index as it was at the lock's date (needs the
    index's metadata: the `network` mark; uv's cache makes it a few seconds). The date goes
    into the copy's [tool.uv] so that the audit's `uv tree --locked` agrees with the lock."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    if "\nexclude-newer = " not in text:
        setting = f'[tool.uv]\nexclude-newer = "{lock_date(ROOT / "uv.lock")}"\n'
        assert "[tool.uv]\n" in text, "no [tool.uv] table in pyproject.toml"
        pyproject.write_text(text.replace("[tool.uv]\n", setting, 1))
    return subprocess.run(
        [uv_path(), "lock", "--no-progress"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
