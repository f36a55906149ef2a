"""`bench/run.py --quick`, the encode and train groups (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.slow

GROUPS = ("encode", "train")


def test_writes_a_well_formed_run(quick_run: Any) -> None:
    quick_run.check_well_formed()  # JSON + Markdown + PNG, the machine, every figure


def test_measures_what_this_environment_can(quick_run: Any) -> None:
    ids = quick_run.ids
    if quick_run.importable("mlx"):
        assert {"train.1rank.steps_per_s", "train.2rank.communication_share"} <= ids
    backends = (("mlx", ("mlx_lm",)), ("transformers", ("torch", "transformers")))
    installed = [backend for backend, modules in backends if quick_run.importable(*modules)]
    for backend in installed:
        modes = ("per_text", "one_batch", "batched")
        assert {f"encode.tiny.{backend}.{mode}" for mode in modes} <= ids
        assert f"encode.tiny.{backend}.batched_over_per_text" in ids
    # --quick measures encode memory on the first backend installed, each other one skipped:
    # a figure, or a skip that says why (no growth at the smallest N: no ratio).
    if installed:
        assert f"encode_memory.tiny.{installed[0]}.flatness" in ids | quick_run.skipped
    assert {f"encode_memory.{backend}" for backend in installed[1:]} <= quick_run.skipped
