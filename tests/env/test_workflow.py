"""The GitHub Actions workflow: valid for GitHub, clean under zizmor, and calling only nox."""

from __future__ import annotations

import re
import shlex
import sys
import tomllib

import pytest
import yaml

from .conftest import ROOT, require_tool, run

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matches_githubs_schema() -> None:
    check = require_tool("check-jsonschema", "the dev group installs it")
    run(check, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))


def test_zizmor_finds_nothing() -> None:
    zizmor = require_tool("zizmor", "the dev group installs it")
    out = run(zizmor, "--offline", "--no-progress", str(WORKFLOW))
    assert "No findings" in out


def test_actions_are_pinned_by_commit(workflow: dict) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    unpinned = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u)]
    assert unpinned == []


def test_matrix_is_mac_arm64_and_linux_times_supported_pythons(workflow: dict) -> None:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    pythons = sorted(
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if c.startswith("Programming Language :: Python :: 3.")
    )
    matrix = workflow["jobs"]["tests"]["strategy"]["matrix"]
    assert sorted(matrix["os"]) == ["macos-14", "ubuntu-latest"]
    assert sorted(matrix["python"]) == pythons


NIX_JOB = "nix-develop"
NIX_DEVELOP = "nix develop --command "
# What the nix-develop job runs: the real flake (nixpkgs from flake.lock), then the gate in it.
NIX_COMMANDS = ["nix flake check", NIX_DEVELOP + "uv run --locked nox -s verify"]


def test_ci_only_calls_nox(workflow: dict) -> None:
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            command = step.get("run", "")
            if name == NIX_JOB:
                assert command in ("", *NIX_COMMANDS), command
            elif command and "apt-get install -y nix-bin" not in command:
                assert command.startswith("uv run --locked nox "), command


def test_a_job_runs_the_real_nix_develop_on_mac_and_linux(workflow: dict) -> None:
    """Nix installed by a maintained action (pinned by commit, test above), then
    `nix flake check` and nox's verify inside `nix develop`, on macos-14 and ubuntu-latest."""
    job = workflow["jobs"][NIX_JOB]
    assert sorted(job["strategy"]["matrix"]["os"]) == ["macos-14", "ubuntu-latest"]
    assert job["runs-on"] == "${{ matrix.os }}"
    uses = [s["uses"].split("@")[0] for s in job["steps"] if "uses" in s]
    installers = {"cachix/install-nix-action", "DeterminateSystems/nix-installer-action"}
    assert len(installers & set(uses)) == 1, uses
    assert [s["run"] for s in job["steps"] if "run" in s] == NIX_COMMANDS
    assert "setup-python" not in " ".join(uses), "the flake brings the Python"


def nox_commands(workflow: dict) -> list[tuple[str, list[str]]]:
    """(job name, nox arguments) for every `uv run --locked nox ...` step, one per matrix Python."""
    commands = []
    for name, job in workflow["jobs"].items():
        pythons = job.get("strategy", {}).get("matrix", {}).get("python", [None])
        for step in job["steps"]:
            command = step.get("run", "").removeprefix(NIX_DEVELOP)
            if not command.startswith("uv run --locked nox "):
                continue
            for python in pythons:
                line = command.replace('"$PYTHON"', python) if python else command
                assert "$" not in line, f"{name}: unexpanded variable in {command!r}"
                commands.append((name, shlex.split(line)[4:]))
    assert commands
    return commands


def test_every_session_the_workflow_names_is_selected(workflow: dict) -> None:
    """nox drops a named session silently when another flag filters it out (e.g. `--python`
    drops sessions that declare no Python): ask nox which sessions each command selects."""
    for job, args in nox_commands(workflow):
        start = args.index("-s") + 1
        names = [a for a in args[start:] if not a.startswith("-")]
        assert names, f"{job}: `nox {' '.join(args)}` names no session"
        listing = run(sys.executable, "-m", "nox", *args, "--list", "--no-color")
        selected = re.findall(r"^\* (\S+)", listing, flags=re.MULTILINE)
        for name in names:
            runs = [s for s in selected if s == name or s.startswith(f"{name}-")]
            assert runs, f"{job}: `nox {' '.join(args)}` does not run {name}:\n{listing}"


def test_the_workflow_runs_the_default_selection_once(workflow: dict) -> None:
    """Together the jobs run what `nox` runs (so CI runs every test), and no session twice
    (but for the nix-develop job, which reruns `verify` in the flake's shell on purpose)."""
    steps: list[str] = []
    for name, job in workflow["jobs"].items():
        if name == NIX_JOB:
            continue
        for step in job["steps"]:
            command = step.get("run", "")
            if command.startswith("uv run --locked nox "):
                args = shlex.split(command)[4:]
                steps += [a for a in args[args.index("-s") + 1 :] if not a.startswith("-")]
    assert len(steps) == len(set(steps)), f"a session is named twice: {steps}"
    listing = run(sys.executable, "-m", "nox", "--list", "--no-color")
    default = {n.split("-")[0] for n in re.findall(r"^\* (\S+)", listing, flags=re.MULTILINE)}
    assert set(steps) == default
