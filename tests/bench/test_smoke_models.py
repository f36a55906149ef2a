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
        assert {"throughput.tiny.mlx_lm.decode", "throughput.tiny.mlx_lm.decode_share_of_ceiling"} <= ids
        assert "memory.tiny.mlx_lm-q4_over_fp32.mx_peak" in ids
        assert {"overhead.tiny.mlx.load_ratio", "overhead.tiny.mlx.generate_ratio"} <= ids
    if quick_run.importable("torch", "transformers"):
        assert "throughput.tiny.transformers.decode" in ids
        assert "overhead.tiny.transformers.generate_ratio" in ids
