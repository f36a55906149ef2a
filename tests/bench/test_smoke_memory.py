"""`bench/run.py --quick`, the preflight, fit, router and files groups (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

GROUPS = ("preflight", "fit", "router", "files")


def test_writes_a_well_formed_run(quick_run: Any) -> None:
    quick_run.check_well_formed()  # JSON + Markdown + PNG, the machine, every figure


def test_measures_what_this_environment_can(quick_run: Any) -> None:
    ids = quick_run.ids
    assert {"files.verify_all", "files.count"} <= ids
    if quick_run.importable("mlx_lm"):
        assert "preflight.tiny.mlx-float32.off_by" in ids
        assert "router.tiny.router8.topk_match" in ids
    if quick_run.importable("torch", "transformers"):
        assert "preflight.tiny.transformers-bfloat16.off_by" in ids
        assert "fit.like.transformers-bfloat16.off_by" in ids
