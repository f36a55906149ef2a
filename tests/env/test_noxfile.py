"""noxfile.py is the one list of entry points, and .ci/run runs README's test command."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT, run

SESSIONS = {"install", "tests", "loader", "lint", "lock", "nix", "verify", "audit", "docs", "bench"}


def listed_sessions() -> set[str]:
    out = run(sys.executable, "-m", "nox", "--list", "--no-color")
    return set(re.findall(r"^[*-] (\S+)", out, flags=re.MULTILINE))


def test_every_entry_point_is_a_nox_session() -> None:
    names = {name.split("-")[0] for name in listed_sessions()}
    assert names == SESSIONS


def test_tests_run_on_every_python_ci_provides() -> None:
    """.ci/run and CI's checks job put every supported Python on PATH and say so in
    ATHENA_ALL_PYTHONS; the `tests` matrix must find all of them."""
    expected = os.environ.get("ATHENA_ALL_PYTHONS", "").split()
    if not expected:
        pytest.skip(
            "needs every supported Python on PATH, named in ATHENA_ALL_PYTHONS (CI sets it)"
        )
    found = sorted(n.removeprefix("tests-") for n in listed_sessions() if n.startswith("tests-"))
    assert found == sorted(expected)


def load_noxfile() -> ModuleType:
    spec = importlib.util.spec_from_file_location("athena_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_sessions() -> set[str]:
    out = run(sys.executable, "-m", "nox", "--list", "--no-color")
    return {name.split("-")[0] for name in re.findall(r"^\* (\S+)", out, flags=re.MULTILINE)}


def test_the_default_selection_runs_each_test_file_once() -> None:
    """`tests` leaves tests/env out; each tests/env file is owned by exactly one default session,
    and the sessions that only rerun part of `tests` (loader, audit) are not in the default."""
    noxfile = load_noxfile()
    owned = [path for paths in noxfile.ENV_TESTS.values() for path in paths]
    env_files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "env").glob("test_*.py"))
    assert sorted(owned) == env_files, "give each tests/env file to one session in ENV_TESTS"
    selected = default_sessions()
    assert set(noxfile.ENV_TESTS) | {"tests", "verify"} == selected


def collected_files(*args: str) -> set[str]:
    """The files pytest collects from `args` (a collection, nothing run)."""
    out = run(
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args
    )
    return {line.split("::")[0] for line in out.splitlines() if "::" in line}


def test_tests_leaves_tests_env_out_and_runs_the_pin_only_tests_on_the_pin_alone() -> None:
    """What pytest collects from `tests`'s arguments on the pin (one collection: it imports
    every test module); off the pin each PIN_ONLY_TESTS path is ignored."""
    noxfile = load_noxfile()
    on_pin = collected_files(*noxfile.tests_paths(noxfile.PYTHON_PIN))
    assert not [f for f in on_pin if f.startswith("tests/env/")]
    off_pin = noxfile.tests_paths("3.0")
    for path in noxfile.PIN_ONLY_TESTS:
        assert [f for f in on_pin if f.startswith(path)], f"{path} runs nowhere on the pin"
        assert f"--ignore={path}" in off_pin, f"{path} runs off the pin"


def test_pin_only_tests_exist_and_run_on_the_pinned_python() -> None:
    """A renamed PIN_ONLY_TESTS file would silently run nowhere: each must exist, and the pin
    must be one of `tests`'s Pythons, so they still run once."""
    noxfile = load_noxfile()
    for path in noxfile.PIN_ONLY_TESTS:
        assert (ROOT / path).exists(), f"PIN_ONLY_TESTS names {path}, which does not exist"
    assert noxfile.PYTHON_PIN in noxfile._supported_pythons()


def test_nox_runs_pytest_strictly(tmp_path: Path) -> None:
    """PYTEST's flags turn a misspelt marker into an error, not a silent new marker."""
    test = tmp_path / "test_typo.py"
    test.write_text("import pytest\n\n\n@pytest.mark.slwo\ndef test_x() -> None:\n    pass\n")
    command = [sys.executable, "-m", *load_noxfile().PYTEST, "-p", "no:cacheprovider", str(test)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "'slwo' not found in `markers`" in result.stdout


def readme_install_lines() -> dict[str, str]:
    """README's <!-- install-uv --> block: {what manages Python: command}."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- install-uv -->\s*```console\n(.*?)```", readme, flags=re.DOTALL)
    assert match, "README.md has no <!-- install-uv --> block"
    lines = {}
    for line in match.group(1).splitlines():
        command, _, comment = line.removeprefix("$ ").partition("#")
        lines[comment.split(":")[0].split(",")[0].strip()] = command.strip()
    return lines


def test_readme_says_how_to_install_uv_for_pyenv_homebrew_and_nix() -> None:
    lines = readme_install_lines()
    assert list(lines) == ["pyenv", "Homebrew's Python refuses pip installs", "Nix"]
    pin = (ROOT / ".python-version").read_text().strip()
    uv_pin = re.search(r"UV_VERSION=(\S+)", (ROOT / ".ci" / "run").read_text())
    assert uv_pin is not None
    # pyenv's uv shim looks in the Python .python-version selects: install into that one.
    assert lines["pyenv"] == f"PYENV_VERSION={pin} python3 -m pip install uv=={uv_pin.group(1)}"
    assert lines["Nix"] == "nix develop"


def test_ci_runs_the_readme_pyenv_line_from_a_fresh_home(tmp_path: Path) -> None:
    """.ci/run's first step, run in a copy of the checkout whose README pyenv line is a probe:
    it records where it ran and fails, which stops the script there (set -e)."""
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", checkout / ".ci" / "run")
    record = tmp_path / "ran-in"
    probe = f'echo "$PWD $HOME" > {record}; exit 3'
    readme = (ROOT / "README.md").read_text()
    (checkout / "README.md").write_text(readme.replace(readme_install_lines()["pyenv"], probe, 1))
    result = subprocess.run(
        ["bash", str(checkout / ".ci" / "run")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert record.exists(), f".ci/run did not run README's pyenv line:\n{result.stderr}"
    cwd, home = record.read_text().split()
    assert cwd == home, "README's line runs in its fresh HOME"
    assert Path(home) not in (checkout, tmp_path), "from a fresh HOME, not the checkout's"
