"""The GitHub Actions workflow: valid for GitHub, clean under zizmor, and calling only nox."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib

import pytest
import yaml

from .conftest import ROOT, require_tool, run

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"

# Every action the workflow uses: (action, tag, the tag's commit, where that commit was checked).
# Checked 2026-12-02 in a clone of each action's own repository: `git rev-parse TAG^{commit}`,
# and `runs.using` of action.yml at that commit (GitHub removed Node 20 from its runners on
# 2026-09-16: a JavaScript action must declare node24). Bump a pin here and in ci.yml together.
PINS = [
    (
        "actions/checkout",
        "v7.0.1",
        "3d3c42e5aac5ba805825da76410c181273ba90b1",
        "github.com/actions/checkout, tag v7.0.1; action.yml: using: node24",
    ),
    (
        "actions/setup-python",
        "v7.0.0",
        "5fda3b95a4ea91299a34e894583c3862153e4b97",
        "github.com/actions/setup-python, tag v7.0.0; action.yml: using: node24",
    ),
    (
        "astral-sh/setup-uv",
        "v10.0.1",
        "20cfd1bf945f4377ade1205e4dbc17946fc9a30d",
        "github.com/astral-sh/setup-uv, tag v10.0.1; action.yml: using: node24",
    ),
    (
        "cachix/install-nix-action",
        "v31.11.0",
        "630ae543ea3a38a9a4166f03376c02c50f408342",
        "github.com/cachix/install-nix-action, tag v31.11.0; action.yml: composite (no Node)",
    ),
]
# Fixed images that exist (github.com/actions/runner-images): macOS arm64 on 15 and 26 (macos-14
# was retired on 2026-11-02, runner-images#13518), Linux on one Ubuntu (ubuntu-latest moved to
# 26.04 in Oct-Nov 2026, runner-images#14748; 26.04 is GA since 2026-09-17).
RUNNERS = ["macos-15", "macos-26", "ubuntu-26.04"]
USES = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w.-]+)@(\S+)(?:\s+#\s*(\S+))?\s*$", re.MULTILINE)


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_matches_githubs_schema() -> None:
    check = require_tool("check-jsonschema", "the dev group installs it")
    run(check, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))


def test_zizmor_finds_nothing() -> None:
    """Online where a token is (GH_TOKEN, which CI's lint step sets): zizmor then checks each
    pin against the action's repository (impostor commits, a tag comment that names another
    commit). Offline here, where only the pins' shape is checked."""
    zizmor = require_tool("zizmor", "the dev group installs it")
    mode = [] if os.environ.get("GH_TOKEN") else ["--offline"]
    out = run(zizmor, *mode, "--no-progress", str(WORKFLOW))
    assert "No findings" in out


def test_actions_are_pinned_by_commit(workflow: dict) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    unpinned = [u for u in uses if not re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u)]
    assert unpinned == []


def pin_problems(text: str) -> list[str]:
    """Where the workflow's `uses:` lines and PINS disagree; empty when they agree."""
    table = {(action, tag): sha for action, tag, sha, _ in PINS}
    used = set()
    problems = []
    for action, ref, tag in USES.findall(text):
        used.add((action, tag))
        if (action, tag) not in table:
            problems.append(f"{action}@{ref} # {tag or '(no tag comment)'} is not in PINS")
        elif table[action, tag] != ref:
            problems.append(f"{action} {tag} is pinned to {ref}, PINS says {table[action, tag]}")
    problems += [
        f"PINS lists {a} {t}, which the workflow does not use" for a, t in table.keys() - used
    ]
    return problems


def test_every_pin_is_the_commit_of_the_tag_its_comment_names() -> None:
    assert len(USES.findall(WORKFLOW.read_text())) >= len(PINS)
    assert pin_problems(WORKFLOW.read_text()) == []


def test_a_pin_that_is_not_its_tags_commit_is_caught() -> None:
    """The bug of #23: setup-uv pinned to a commit its v5.4.2 is not."""
    text = WORKFLOW.read_text()
    action, tag, sha, _ = PINS[2]
    wrong = text.replace(f"{action}@{sha} # {tag}", f"{action}@{'f0b9a6de' * 5} # {tag}")
    expected = f"{action} {tag} is pinned to {'f0b9a6de' * 5}, PINS says {sha}"
    assert set(pin_problems(wrong)) == {expected}
    untagged = text.replace(f"{action}@{sha} # {tag}", f"{action}@{sha}")
    assert pin_problems(untagged)[0] == f"{action}@{sha} # (no tag comment) is not in PINS"


def test_runners_are_fixed_images_that_exist(workflow: dict) -> None:
    for name, job in workflow["jobs"].items():
        assert job["runs-on"] == "${{ matrix.os }}", name
        assert job["strategy"]["matrix"]["os"] == RUNNERS, name
    assert "-latest" not in WORKFLOW.read_text()


def test_only_pull_requests_cancel_their_older_runs(workflow: dict) -> None:
    assert workflow["concurrency"]["cancel-in-progress"] == (
        "${{ github.event_name == 'pull_request' }}"
    )


def test_jobs_may_only_read_the_repository(workflow: dict) -> None:
    assert workflow["permissions"] == {}
    for name, job in workflow["jobs"].items():
        assert job["permissions"] == {"contents": "read"}, name


def test_the_workflows_environment_does_not_break_nox(workflow: dict) -> None:
    """The tests' own `nox --list --no-color`, under the workflow's `env:` block (FORCE_COLOR=1
    made nox refuse it: "Can not specify both --no-color and --force-color")."""
    env = {**os.environ, **{k: str(v) for k, v in workflow["env"].items()}}
    run(sys.executable, "-m", "nox", "--list", "--no-color", env=env)
    broken = {**env, "FORCE_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "nox", "--list", "--no-color"],
        cwd=ROOT,
        env=broken,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0 and "force-color" in result.stderr + result.stdout


def test_matrix_is_mac_arm64_and_linux_times_supported_pythons(workflow: dict) -> None:
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    pythons = sorted(
        c.rsplit(" ", 1)[1]
        for c in classifiers
        if c.startswith("Programming Language :: Python :: 3.")
    )
    matrix = workflow["jobs"]["tests"]["strategy"]["matrix"]
    assert matrix["os"] == RUNNERS
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
    `nix flake check` and nox's verify inside `nix develop`, on every runner."""
    job = workflow["jobs"][NIX_JOB]
    assert job["strategy"]["matrix"]["os"] == RUNNERS
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
