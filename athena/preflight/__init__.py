"""Know that a model folder is whole, consistent and fits before any backend builds it.

    from athena import preflight

    info = preflight.inspect_model("models/olmoe-tiny")   # SourceError: one sentence
    info.parameters, info.stored_dtypes, info.disk_bytes, info.tokenizer.kind
    info.problems                                           # [] when it can be loaded
    preflight.estimate_peak(info, backend="mlx", quantize_bits=4).peak  # bytes

Everything comes from config.json, the safetensors headers (8-byte length + JSON:
dtype, shape, data_offsets per tensor), model.safetensors.index.json and the tokenizer
files: no weight is read, nothing but the standard library is imported, so this runs in
milliseconds even for a 28 GB checkpoint. `OLMoEModel.load()` calls `check_load` on both
backends and `athena inspect` prints what `inspect_model` found.

The peak-memory estimate is the process's peak resident memory while loading, modelled per
backend from the bytes of the weights (see docs/preflight.md and `nox -s bench -- --only
preflight`, which measures it against the real peak RSS of a child process):

- mlx (athena's lazy `mlx_lm.load` + one `mx.eval` per array): the final arrays (in the
  dtype they end in, quantized where `quantize_bits` applies) plus the largest single
  evaluation's temporaries (the per-expert source arrays of one stacked expert tensor, and
  the stacked copy when it is then cast or quantized), plus the runtime.
- transformers (`from_pretrained`, safetensors memory-mapped): every page of the files is
  read (it counts in RSS), plus copies of what cannot stay a view of the file (the fused
  expert tensors always, everything when the dtype changes), plus the conversion's
  temporaries, plus the runtime.

The package, by concern: info (what a folder holds), files (reading headers, index and
tokenizer), agreement (config.json against the weights), memory (the budget and the
estimates), checks (what load() checks), report (`athena inspect`'s data and text).
`machine_budget` and `RUNTIME_BYTES` are read from this package at call time, so replacing
them here (tests, a child process with a fake budget) takes effect everywhere.
"""

from __future__ import annotations

from athena.preflight.agreement import CONFIG_SIZES
from athena.preflight.checks import (
    MLX_PREFILL_CHUNK,
    OversizeError,
    Preflight,
    check_load,
    check_sequence,
    sequence_memory,
)
from athena.preflight.files import TOKENIZER_KINDS, inspect_model
from athena.preflight.info import (
    DTYPE_ITEMSIZE,
    FLOAT_NAMES,
    ITEMSIZE,
    ModelInfo,
    Tensor,
    TokenizerInfo,
)
from athena.preflight.memory import (
    RUNTIME_ANON_BYTES,
    RUNTIME_BYTES,
    TIGHT_SHARE,
    Estimate,
    GiB,
    MemoryBudget,
    MiB,
    estimate_peak,
    gib,
    load_options,
    machine_budget,
    mlx_on_cpu,
)
from athena.preflight.report import available_backends, describe, render

__all__ = [
    "CONFIG_SIZES",
    "DTYPE_ITEMSIZE",
    "FLOAT_NAMES",
    "ITEMSIZE",
    "MLX_PREFILL_CHUNK",
    "RUNTIME_ANON_BYTES",
    "RUNTIME_BYTES",
    "TIGHT_SHARE",
    "TOKENIZER_KINDS",
    "Estimate",
    "GiB",
    "MemoryBudget",
    "MiB",
    "ModelInfo",
    "OversizeError",
    "Preflight",
    "Tensor",
    "TokenizerInfo",
    "available_backends",
    "check_load",
    "check_sequence",
    "describe",
    "estimate_peak",
    "gib",
    "inspect_model",
    "load_options",
    "machine_budget",
    "mlx_on_cpu",
    "render",
    "sequence_memory",
]
