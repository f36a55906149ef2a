"""One Python everywhere: .python-version, the flake, the single-Python nox sessions and CI's
single-Python job name the same minor version; the `tests` matrix still covers every
supported one (pyproject's classifiers)."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

from .conftest import ROOT, run
from .test_flake import copy_flake, evaluate_shell

SINGLE_PYTHON_SESSIONS = ("lint", "lock", "nix", "verify", "docs")


def pin() -> str:
    text = (ROOT / ".python-version").read_text()
    assert re.fullmatch(r"3\.\d+\n?", text), f".python-version is {text!r}: one minor, e.g. 3.12"
    return text.strip()


def flake_python(tmp_path: Path) -> str:
    """The Python of the flake's dev shell, as nix evaluates it (its UV_PYTHON)."""
    uv_python = evaluate_shell(copy_flake(tmp_path), "x86_64-linux")["env"]["UV_PYTHON"]
    match = re.search(r"python(3\.\d+)$", uv_python)
    assert match, f"the flake's UV_PYTHON is {uv_python!r}, not a python3.NN"
    return match.group(1)


def nox_pythons() -> dict[str, object]:
    """Each single-Python session's Python, as nox itself lists it (named: `--list` alone
    lists the default selection, and `docs` is outside it)."""
    out = run(sys.executable, "-m", "nox", "--list", "--json", "-s", *SINGLE_PYTHON_SESSIONS)
    return {entry["session"]: entry["python"] for entry in json.loads(out)}


def supported_pythons() -> list[str]:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    prefix = "Programming Language :: Python :: 3."
    return sorted(c.rsplit(" ", 1)[1] for c in classifiers if c.startswith(prefix))


def test_the_pin_is_the_flakes_python(tmp_path: Path) -> None:
    assert pin() == flake_python(tmp_path)


def test_the_single_python_sessions_run_on_the_pin() -> None:
    pythons = nox_pythons()
    assert {name: pythons.get(name) for name in SINGLE_PYTHON_SESSIONS} == dict.fromkeys(
        SINGLE_PYTHON_SESSIONS, pin()
    )


def test_cis_single_python_job_uses_the_pin_and_the_matrix_covers_every_python() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    for name, job in workflow["jobs"].items():
        matrix = job.get("strategy", {}).get("matrix", {})
        versions = [
            step["with"]["python-version"]
            for step in job["steps"]
            if str(step.get("uses", "")).startswith("actions/setup-python@")
        ]
        if "python" in matrix:
            assert sorted(matrix["python"]) == supported_pythons(), name
            assert pin() in matrix["python"]
        else:
            # The single-Python job sets up every supported Python, the pin last (the default).
            listed = [str(v).split() for v in versions]
            assert listed in ([], [[*sorted(set(supported_pythons()) - {pin()}), pin()]]), (
                f"{name} sets up Python {versions}: every supported one, {pin()} last"
            )
    assert [v for v in supported_pythons() if v == pin()], "the pin is not a supported Python"


def test_readme_names_the_pin() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`.python-version`" in readme
    assert re.search(rf"pins? (Python )?{re.escape(pin())}", readme), "README: which Python?"
