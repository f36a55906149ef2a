"""noxfile.py is the one list of entry points, and .ci/run runs README's test command."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from types import ModuleType

from .conftest import ROOT, run

SESSIONS = {"install", "tests", "loader", "lint", "lock", "nix", "verify", "audit", "docs", "bench"}


def listed_sessions() -> set[str]:
    out = run(sys.executable, "-m", "nox", "--list", "--no-color")
    return set(re.findall(r"^[*-] (\S+)", out, flags=re.MULTILINE))


def test_every_entry_point_is_a_nox_session() -> None:
    names = {name.split("-")[0] for name in listed_sessions()}
    assert names == SESSIONS


def test_tests_run_on_every_python_ci_provides() -> None:
    """.ci/run puts every supported Python on PATH; the `tests` matrix must find all of them."""
    expected = os.environ.get("ATHENA_ALL_PYTHONS", "").split()
    found = sorted(n.removeprefix("tests-") for n in listed_sessions() if n.startswith("tests-"))
    assert found, "no tests-<python> session"
    if expected:
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
    assert set(noxfile.ENV_TESTS) | {"tests", "docs", "verify"} == selected
    source = (ROOT / "noxfile.py").read_text()
    assert 'default = ["tests", "--ignore=tests/env"]' in source


def test_pin_only_tests_exist_and_run_on_the_pinned_python() -> None:
    """A renamed PIN_ONLY_TESTS file would silently run nowhere: each must exist, and the pin
    must be one of `tests`'s Pythons, so they still run once."""
    noxfile = load_noxfile()
    for path in noxfile.PIN_ONLY_TESTS:
        assert (ROOT / path).is_file(), f"PIN_ONLY_TESTS names {path}, which does not exist"
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
