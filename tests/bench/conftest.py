"""The benchmarks' smoke runs: `bench/run.py --quick --only GROUPS`, one per test file.

The groups are split over three files (test_smoke_*.py, each naming its GROUPS) so that the
test workers (pytest-xdist, a file to a worker) run them side by side: as one file the smoke
run took three minutes on one worker, the suite's longest path, while the other worker idled
for the last two. The `quick_run` fixture runs the module's GROUPS once and returns a
QuickRun; each file calls its check of the run's shape (keys, types, a machine description,
median and spread for every figure, targets reported as fields) and names the figures its
groups must produce. No speed is asserted: numbers belong to bench/results.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from athena.versions import installed_versions

ROOT = Path(__file__).resolve().parents[2]
FIGURE_KEYS = {"id", "group", "label", "unit", "median", "min", "max", "q1", "q3", "iqr", "n"}
MACHINE_KEYS = {"os", "kernel", "cpu_model", "cores_logical", "ram_bytes", "python", "packages"}


@dataclass(frozen=True)
class QuickRun:
    """One `--quick` run: the JSON's path and its content, and the groups it ran."""

    path: Path
    run: dict[str, Any]
    groups: tuple[str, ...]

    @staticmethod
    def importable(*modules: str) -> bool:
        """Whether this environment has every one of `modules` (what the run could measure)."""
        return all(importlib.util.find_spec(m) is not None for m in modules)

    @property
    def ids(self) -> set[str]:
        return {f["id"] for f in self.run["figures"]}

    @property
    def skipped(self) -> set[str]:
        return {s["id"] for s in self.run["skipped"]}

    def check_well_formed(self) -> None:
        """The files, the machine, and every figure (each check's message says which)."""
        self.check_files()
        self.check_machine()
        self.check_figures()

    def check_files(self) -> None:
        """JSON, Markdown and PNG with one name; every figure in the Markdown."""
        assert self.path.name.endswith(f"-{self.run['machine']['hostname']}.json")
        markdown = self.path.with_suffix(".md").read_text()
        assert all(f["label"] in markdown for f in self.run["figures"])
        if any(f["target"] for f in self.run["figures"]):
            assert "## Targets" in markdown
        assert self.path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        tmp = self.path.parent / "tmp"
        assert not tmp.exists() or not any(tmp.iterdir())

    def check_machine(self) -> None:
        run = self.run
        assert run["schema_version"] == 1 and run["mode"] == "quick"
        assert run["settings"]["groups"] == sorted(self.groups)
        machine = run["machine"]
        assert machine.keys() >= MACHINE_KEYS
        assert isinstance(machine["cores_logical"], int) and machine["cores_logical"] >= 1
        assert isinstance(machine["ram_bytes"], int) and machine["ram_bytes"] > 0
        assert machine["python"].count(".") == 2
        assert machine["packages"] == installed_versions()
        assert run["duration_s"] > 0

    def check_figures(self) -> None:
        """Every figure of these groups: unique id, unit, median and spread, a target
        reported as fields (never asserted); every skip has its reason."""
        figures = self.run["figures"]
        assert figures
        ids = [f["id"] for f in figures]
        assert len(ids) == len(set(ids)), "figure ids are unique"
        for f in figures:
            assert f.keys() >= FIGURE_KEYS, f["id"]
            assert f["id"].split(".")[0] in self.figure_groups, f["id"]
            assert isinstance(f["unit"], str) and f["unit"], f["id"]
            assert f["n"] == len(f["values"]) >= 1, f["id"]
            assert f["min"] <= f["q1"] <= f["median"] <= f["q3"] <= f["max"], f["id"]
            assert f["iqr"] == pytest.approx(f["q3"] - f["q1"]), f["id"]
            if f["target"] is None:
                assert f["passed"] is None, f["id"]
            else:
                assert {"op", "threshold", "text"} <= f["target"].keys(), f["id"]
                assert isinstance(f["passed"], bool), f["id"]
        summary = self.run["targets_summary"]
        assert summary["met"] + summary["not_met"] == sum(1 for f in figures if f["target"])
        for skipped in self.run["skipped"]:
            assert skipped["reason"] and skipped["id"] not in ids

    @property
    def figure_groups(self) -> set[str]:
        """The figure id prefixes these groups write (models and encode write several)."""
        kinds = {
            "models": {"load", "overhead", "generate", "throughput", "memory"},
            "encode": {"encode_memory"},
        }
        return set(self.groups).union(*(kinds.get(g, set()) for g in self.groups))


@pytest.fixture(scope="module")
def quick_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    """`bench/run.py --quick --only GROUPS` (the test module's GROUPS), run once per module."""
    groups: tuple[str, ...] = request.module.GROUPS
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)]
    # A hang guard only (a stuck subprocess must not stall the suite); nothing is timed.
    proc = subprocess.run(
        [*command, "--only", ",".join(groups)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = sorted(out.glob("*.json"))
    assert len(results) == 1, [p.name for p in out.iterdir()]
    return QuickRun(results[0], json.loads(results[0].read_text()), groups)
