"""`bench/run.py --quick`, the encode and train groups (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

GROUPS = ("encode", "train")


def test_writes_json_markdown_and_png_with_one_name(quick_run: Any) -> None:
    quick_run.check_files()


def test_describes_the_machine(quick_run: Any) -> None:
    quick_run.check_machine()


def test_every_figure_has_median_spread_unit_and_reported_target(quick_run: Any) -> None:
    quick_run.check_figures()


def test_measures_what_this_environment_can(quick_run: Any) -> None:
    ids = quick_run.ids
    if quick_run.importable("mlx"):
        assert {"train.1rank.steps_per_s", "train.2rank.communication_share"} <= ids
    for backend, modules in (("mlx", ("mlx_lm",)), ("transformers", ("torch", "transformers"))):
        if quick_run.importable(*modules):
            modes = ("per_text", "one_batch", "batched")
            assert {f"encode.tiny.{backend}.{mode}" for mode in modes} <= ids
            assert f"encode.tiny.{backend}.batched_over_per_text" in ids
            # A figure, or a skip that says why (no growth at the smallest N: no ratio).
            flatness = f"encode_memory.tiny.{backend}.flatness"
            assert flatness in ids | quick_run.skipped
