"""`bench/run.py --quick`, the preflight, fit, router and files groups (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

GROUPS = ("preflight", "fit", "router", "files")


def test_writes_json_markdown_and_png_with_one_name(quick_run: Any) -> None:
    quick_run.check_files()


def test_describes_the_machine(quick_run: Any) -> None:
    quick_run.check_machine()


def test_every_figure_has_median_spread_unit_and_reported_target(quick_run: Any) -> None:
    quick_run.check_figures()


def test_measures_what_this_environment_can(quick_run: Any) -> None:
    ids = quick_run.ids
    assert {"files.verify_all", "files.count"} <= ids
    if quick_run.importable("mlx_lm"):
        assert "preflight.tiny.mlx-float32.off_by" in ids
        assert "fit.like.mlx-q4.off_by" in ids
        assert "router.tiny.router8.topk_match" in ids
    if quick_run.importable("torch", "transformers"):
        assert "preflight.tiny.transformers-bfloat16.off_by" in ids
        assert "fit.like.transformers-bfloat16.off_by" in ids
