"""`bench/run.py --quick` writes a well-formed result: JSON, Markdown and PNG.

Only the shape is checked (keys, types, a machine description, median and spread for every
figure, targets reported as fields); no speed is asserted: numbers belong to bench/results.
The env group's `uv sync --locked` into a fresh venv downloads what uv's cache lacks: the
`network` mark.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from athena.versions import installed_versions

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parents[2]
FIGURE_KEYS = {"id", "group", "label", "unit", "median", "min", "max", "q1", "q3", "iqr", "n"}
MACHINE_KEYS = {"os", "kernel", "cpu_model", "cores_logical", "ram_bytes", "python", "packages"}


def _importable(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    # A hang guard only (a stuck subprocess must not stall the suite); nothing is timed.
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = sorted(out.glob("*.json"))
    assert len(results) == 1, [p.name for p in out.iterdir()]
    return results[0], json.loads(results[0].read_text())


@pytest.mark.slow
def test_writes_json_markdown_and_png_with_one_name(quick_run: tuple[Path, dict]) -> None:
    path, run = quick_run
    assert path.name.endswith(f"-{run['machine']['hostname']}.json")
    markdown = path.with_suffix(".md").read_text()
    assert "## Targets" in markdown
    assert all(f["label"] in markdown for f in run["figures"])
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (path.parent / "tmp").exists() or not any((path.parent / "tmp").iterdir())


@pytest.mark.slow
def test_describes_the_machine(quick_run: tuple[Path, dict]) -> None:
    _, run = quick_run
    assert run["schema_version"] == 1
    assert run["mode"] == "quick"
    machine = run["machine"]
    assert machine.keys() >= MACHINE_KEYS
    assert isinstance(machine["cores_logical"], int) and machine["cores_logical"] >= 1
    assert isinstance(machine["ram_bytes"], int) and machine["ram_bytes"] > 0
    assert machine["python"].count(".") == 2
    assert machine["packages"] == installed_versions()
    assert run["duration_s"] > 0


@pytest.mark.slow
def test_every_figure_has_median_spread_unit_and_reported_target(
    quick_run: tuple[Path, dict],
) -> None:
    _, run = quick_run
    figures = run["figures"]
    assert figures
    ids = [f["id"] for f in figures]
    assert len(ids) == len(set(ids)), "figure ids are unique"
    for f in figures:
        assert f.keys() >= FIGURE_KEYS, f["id"]
        assert isinstance(f["unit"], str) and f["unit"], f["id"]
        assert f["n"] == len(f["values"]) >= 1, f["id"]
        assert f["min"] <= f["q1"] <= f["median"] <= f["q3"] <= f["max"], f["id"]
        assert f["iqr"] == pytest.approx(f["q3"] - f["q1"]), f["id"]
        if f["target"] is None:
            assert f["passed"] is None, f["id"]
        else:
            assert {"op", "threshold", "text"} <= f["target"].keys(), f["id"]
            assert isinstance(f["passed"], bool), f["id"]
    summary = run["targets_summary"]
    assert summary["met"] + summary["not_met"] == sum(1 for f in figures if f["target"])
    for skipped in run["skipped"]:
        assert skipped["reason"] and skipped["id"] not in ids


@pytest.mark.slow
def test_measures_what_this_environment_can(quick_run: tuple[Path, dict]) -> None:
    _, run = quick_run
    ids = {f["id"] for f in run["figures"]}
    skipped = {s["id"] for s in run["skipped"]}
    assert {"import.athena", "bandwidth.numpy"} <= ids
    if shutil.which("uv"):
        assert {"env.uv_sync_fresh", "env.uv_sync_noop"} <= ids
    assert {"env.pip_install", "env.nox_verify_reused"} <= skipped  # --quick says so
    if _importable("mlx_lm"):
        assert {"import.mlx_lm", "import.athena.ratio_to_mlx_lm", "bandwidth.mlx"} <= ids
        assert {"throughput.tiny.mlx_lm.decode", "throughput.tiny.mlx_lm.decode_bound"} <= ids
        assert "memory.tiny.mlx_lm-q4_over_fp32.mx_peak" in ids
        if _importable("athena.models.olmoe"):
            assert {"overhead.tiny.mlx.load_ratio", "overhead.tiny.mlx.generate_ratio"} <= ids
    if _importable("mlx", "athena.heads"):
        assert {"train.1rank.steps_per_s", "train.2rank.communication_share"} <= ids
    if _importable("torch", "transformers"):
        assert "throughput.tiny.transformers.decode" in ids
        if _importable("athena.models.olmoe"):
            assert "overhead.tiny.transformers.generate_ratio" in ids
    for backend, modules in (("mlx", ("mlx_lm",)), ("transformers", ("torch", "transformers"))):
        if _importable(*modules):
            assert {
                f"encode.tiny.{backend}.{mode}" for mode in ("per_text", "one_batch", "batched")
            } <= ids
            assert {
                f"encode.tiny.{backend}.batched_over_per_text",
                f"encode_memory.tiny.{backend}.flatness",
            } <= ids
