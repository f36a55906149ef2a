"""noxfile.py is the one list of entry points, and .ci/run runs README's test command."""

from __future__ import annotations

import os
import re
import sys

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
