"""Know that a model folder is whole, consistent and fits before any backend builds it.

    from athena import preflight

    info = preflight.inspect_model("models/olmoe-tiny")   # SourceError: one sentence
    info.parameters, info.stored_dtypes, info.disk_bytes, info.tokenizer.kind
    info.problems                                           # [] when it can be loaded
    preflight.estimate_peak(info, backend="mlx", quantize_bits=4).peak  # bytes

Everything comes from config.json, the safetensors headers, model.safetensors.index.json and
the tokenizer files: no weight is read, nothing but the standard library is imported, so this
runs in milliseconds even for a 28 GB checkpoint. `OLMoEModel.load()` calls `check_load` on
both backends and `athena inspect` prints what `describe` found.

The peak-memory estimate (the process's peak resident memory while loading, per backend, from
the bytes of the weights) is explained in docs/preflight.md; `nox -s bench -- --only
preflight` measures it against the real peak RSS of a child process.

The package, by concern: info (what a folder holds), files (reading headers, index and
tokenizer), agreement (config.json against the weights), memory (the budget and the
estimates), checks (what load() checks), speed (the decode ceiling), report (`athena
inspect`'s data and text).
"""

from __future__ import annotations

from athena.preflight.checks import Preflight, check_load, check_sequence
from athena.preflight.files import inspect_model
from athena.preflight.info import ModelInfo
from athena.preflight.memory import (
    Estimate,
    GiB,
    MemoryBudget,
    MiB,
    estimate_peak,
    gib,
    machine_budget,
    mlx_on_cpu,
)
from athena.preflight.report import describe, render

__all__ = [
    "Estimate",
    "GiB",
    "MemoryBudget",
    "MiB",
    "ModelInfo",
    "Preflight",
    "check_load",
    "check_sequence",
    "describe",
    "estimate_peak",
    "gib",
    "inspect_model",
    "machine_budget",
    "mlx_on_cpu",
    "render",
]
