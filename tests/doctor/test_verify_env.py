"""scripts/verify_env.py for real: inside the venv (mlx runs on the CPU), outside any venv
with the base interpreter, as a table and as JSON that validates against the schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, checks_by_id, clean_env, require_mlx, run_verify_env, validate

IMPORT_IDS = ("imports.mlx", "imports.mlx_core", "imports.mlx_lm", "imports.mlx_lm_load_generate")
MLX_IDS = (
    "mlx.array_ops",
    "mlx.eval",
    "mlx.lazy",
    "mlx.default_device",
    "mlx.device_info",
    "mlx.quantize",
)


def locked(name: str) -> set[str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["version"] for p in lock["package"] if p["name"] == name}


@pytest.mark.mlx
@pytest.mark.linux("mlx's CPU build: no Metal, so mlx.metal is skipped")
def test_inside_the_venv_the_mlx_checks_run_on_the_cpu(venv_report: dict[str, Any]) -> None:
    require_mlx()
    checks = checks_by_id(venv_report)
    assert venv_report["_returncode"] == 0, venv_report["failed_required"]
    assert venv_report["ok"] and venv_report["failed_required"] == []
    for check_id in (*IMPORT_IDS, *MLX_IDS):
        assert checks[check_id]["status"] == "pass", checks[check_id]
        assert checks[check_id]["required"], f"{check_id} must be required with mlx-cpu"
    lazy = checks["mlx.lazy"]["data"]
    grown_by_graph = lazy["active_after_graph"] - lazy["active_before"]
    grown_by_eval = lazy["active_after_eval"] - lazy["active_before"]
    assert grown_by_graph < lazy["bytes_result"] <= grown_by_eval
    assert checks["mlx.default_device"]["data"]["device_type"] == "cpu"
    assert checks["mlx.default_device"]["data"]["metal_available"] is False
    assert "device_name" in checks["mlx.device_info"]["data"]["info"]
    assert checks["mlx.quantize"]["data"]["max_error_in_steps"] <= 1.05
    assert checks["mlx.metal"]["status"] == "skip"
    assert venv_report["host"]["metal"] is False


@pytest.mark.mlx
def test_inside_the_venv_versions_are_compared_with_uv_lock(venv_report: dict[str, Any]) -> None:
    require_mlx()
    checks = checks_by_id(venv_report)
    assert venv_report["python"]["in_venv"] and venv_report["python"]["project_env"]
    backend = "mlx-metal" if sys.platform == "darwin" else "mlx-cpu"  # what mlx pulls here
    for name in ("mlx", backend, "mlx-lm", "numpy", "transformers"):
        installed = metadata.version(name)
        check = checks[f"packages.{name}"]
        assert check["data"]["installed"] == installed
        assert set(check["data"]["locked"]) == locked(name)
        assert check["status"] == ("pass" if installed in locked(name) else "fail")


def test_the_json_report_validates_against_the_schema(
    venv_report: dict[str, Any], tmp_path: Path
) -> None:
    validate(venv_report, tmp_path)
    assert venv_report["schema"] == "athena-doctor/3"
    assert venv_report["exit_code"] == venv_report["_returncode"]
    assert sum(venv_report["summary"].values()) == len(venv_report["checks"])


@pytest.mark.linux("off a Mac a Python without mlx passes; on a Mac mlx is required")
def test_outside_any_venv_with_the_base_python(base_python: str, tmp_path: Path) -> None:
    """Not installed, no mlx: on Linux the mlx checks are skipped and the run passes."""
    result = run_verify_env(base_python, "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    checks = checks_by_id(report)
    assert result.returncode == 0, report["failed_required"]
    assert report["python"]["in_venv"] is False
    assert Path(report["python"]["executable"]).resolve() == Path(base_python).resolve()
    assert checks["system.venv"]["status"] == "warn" and "uv sync" in checks["system.venv"]["hint"]
    if sys.platform == "linux":
        for check_id in (*IMPORT_IDS, *MLX_IDS):
            assert checks[check_id]["status"] == "skip"
            assert "mlx-cpu" in checks[check_id]["detail"]
    assert checks["packages.mlx"]["data"]["installed"] is None
    assert checks["audit.installed"]["status"] in ("pass", "fail")
    validate(report, tmp_path)


@pytest.mark.linux("off a Mac a Python without mlx passes; on a Mac mlx is required")
def test_outside_any_venv_the_table_ends_with_the_verdict(base_python: str, tmp_path: Path) -> None:
    result = run_verify_env(base_python, "--no-audit", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SYSTEM" in result.stdout and "IMPORTS" in result.stdout
    assert result.stdout.rstrip().endswith("OK: every required check passes.")
    assert "Traceback" not in result.stderr


def find_python_39() -> str | None:
    """A working Python 3.9: on PATH, or one of pyenv's, or None."""
    candidates = [shutil.which("python3.9")]
    candidates += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.9*/bin/python3"))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 9))"],
            capture_output=True,
            text=True,
            env=clean_env(),
            check=False,
        )
        if probe.stdout.strip() == "True":
            return candidate
    return None


def test_runs_with_python_3_9(tmp_path: Path) -> None:
    """The oldest python3 a Mac ships (Xcode's 3.9) can run the doctor."""
    python = find_python_39()
    if python is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or ~/.pyenv/versions/3.9*)")
    result = run_verify_env(python, "--json", "--no-audit", cwd=tmp_path)
    report = json.loads(result.stdout)
    checks = checks_by_id(report)
    assert report["python"]["version"].startswith("3.9.")
    assert checks["system.python"]["status"] == "warn"  # athena itself needs 3.11
    assert result.returncode == 0, report["failed_required"]


def test_bad_arguments_are_one_sentence(tmp_path: Path) -> None:
    result = run_verify_env(sys.executable, "--python", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "is not a file" in result.stderr and "Traceback" not in result.stderr
