"""`bench/run.py --quick`, the import, bandwidth, models and env groups (see conftest.py).

The env group's `uv sync --locked` into a fresh venv downloads what uv's cache lacks: the
`network` mark.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest

pytestmark = [pytest.mark.network, pytest.mark.slow]

GROUPS = ("import", "bandwidth", "models", "env")


def test_writes_a_well_formed_run(quick_run: Any) -> None:
    quick_run.check_well_formed()  # JSON + Markdown + PNG, the machine, every figure


def test_measures_what_this_environment_can(quick_run: Any) -> None:
    ids, skipped = quick_run.ids, quick_run.skipped
    assert {"import.athena", "bandwidth.athena"} <= ids
    if shutil.which("uv"):
        assert {"env.uv_sync_fresh", "env.uv_sync_noop"} <= ids
    assert {"env.pip_install", "env.nox_verify_reused"} <= skipped  # --quick says so
    if quick_run.importable("mlx_lm"):
        assert {"import.mlx_lm", "import.athena.ratio_to_mlx_lm", "bandwidth.mlx"} <= ids
        assert "throughput.tiny.mlx_lm.decode_share_of_ceiling" in ids
        assert "memory.tiny.mlx_lm-q4_over_fp32.mx_peak" in ids
        assert {"overhead.tiny.mlx.load_ratio", "overhead.tiny.mlx.generate_ratio"} <= ids
    if quick_run.importable("torch", "transformers"):
        assert "throughput.tiny.transformers.decode" in ids
        assert "overhead.tiny.transformers.generate_ratio" in ids


def test_decode_is_a_share_of_inspects_ceiling(quick_run: Any) -> None:
    """Every measured decode rate has its share of `athena inspect`'s ceiling: the rate over the
    ceiling's tokens/s, that ceiling being the bandwidth over the bytes read per token."""
    figures = {f["id"]: f for f in quick_run.run["figures"]}
    decodes = [fid for fid in figures if fid.startswith("throughput.") and fid.endswith(".decode")]
    assert decodes or not quick_run.importable("mlx_lm")
    for fid in decodes:
        share, rates = figures[f"{fid}_share_of_ceiling"], figures[fid]["values"]
        ctx = share["context"]
        per_token, bandwidth = ctx["bytes_per_token"], ctx["bandwidth"]["bytes_per_second"]
        assert ctx["ceiling_tokens_per_s"] == pytest.approx(bandwidth / per_token, abs=0.05)
        assert share["values"] == pytest.approx([r / ctx["ceiling_tokens_per_s"] for r in rates])
        assert 0 < share["median"] < 1, fid  # a tiny checkpoint is far from bandwidth-bound
