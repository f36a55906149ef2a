"""Know that a model folder is whole, consistent and fits before any backend builds it, from
config.json, the safetensors headers, the index and the tokenizer files only (no weight read,
standard library only). docs/preflight.md explains it and the peak-memory estimate."""

from __future__ import annotations

from athena.preflight.checks import Preflight, check_load, check_sequence
from athena.preflight.files import inspect_model
from athena.preflight.memory import (
    GiB,
    MemoryBudget,
    MiB,
    estimate_peak,
    gib,
    machine_budget,
    mlx_on_cpu,
)
from athena.preflight.report import describe, render
