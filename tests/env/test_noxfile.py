"""noxfile.py is the one list of entry points, and .ci/run runs README's test command."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
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
    assert noxfile.GUIDES in noxfile.PIN_ONLY_TESTS, "`tests` runs the guides on the pin"
    source = (ROOT / "noxfile.py").read_text()
    assert 'default = [*PARALLEL, "tests", "--ignore=tests/env"]' in source


def test_pin_only_tests_exist_and_run_on_the_pinned_python() -> None:
    """A renamed PIN_ONLY_TESTS file would silently run nowhere: each must exist, and the pin
    must be one of `tests`'s Pythons, so they still run once."""
    noxfile = load_noxfile()
    for path in noxfile.PIN_ONLY_TESTS:
        assert (ROOT / path).exists(), f"PIN_ONLY_TESTS names {path}, which does not exist"
    assert noxfile.PYTHON_PIN in noxfile._supported_pythons()


def readme_test_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- test-command -->\s*```console\s*\$ (.+?)\s*```", readme)
    assert match, "README.md has no <!-- test-command --> block"
    return match.group(1)


def test_ci_runs_the_readme_test_command() -> None:
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lines[-1] == readme_test_command()


def test_every_pytest_call_is_strict() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    assert 'PYTEST = ("pytest", "--strict-markers", "--strict-config")' in noxfile
    calls = re.findall(r'session\.run\(\s*"pytest"', noxfile)
    assert calls == [], "call pytest through PYTEST so it stays strict"


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


def test_ci_follows_the_readme_install_line_and_runs_nix_as_an_ordinary_user() -> None:
    """.ci/run takes the pyenv line from README (not a copy of it), runs it from a fresh HOME,
    reads the workflow's env block, and runs the checks job's nix command through runuser."""
    script = (ROOT / ".ci" / "run").read_text()
    assert "/<!-- install-uv -->/" in script and "# pyenv/" in script
    assert '(cd "$fresh_home" && HOME="$fresh_home" bash -euc "$install_uv")' in script
    assert 'workflow["env"]' in script and 'workflow["jobs"]["checks"]["steps"]' in script
    assert 'runuser -u "$CI_USER" -- env -i "${user_env[@]}" bash -euc "$nix_command"' in script
