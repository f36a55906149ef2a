"""The GitHub Actions workflow: valid for GitHub, clean under zizmor, and calling only nox."""

from __future__ import annotations

import re
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


def test_ci_only_calls_nox(workflow: dict) -> None:
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            command = step.get("run", "")
            if command and "apt-get install -y nix-bin" not in command:
                assert command.startswith("uv run --locked nox "), command
