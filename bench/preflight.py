"""The preflight's peak-memory estimate against the measured peak RSS of a real load (#16).

    nox -s bench -- --only preflight            # tiny, small and medium (or --sizes ...)

For each checkpoint size and each way to load it, a fresh child process
(`python bench/preflight.py '<spec>'`) imports the backend, records its RSS, runs
`OLMoEModel.load()` and reports its own peak RSS (the whole process, runtime included: VmHWM on
Linux, not ru_maxrss, which Linux carries across fork + exec; ru_maxrss of the fresh child on
macOS; `peak_method` in each row's context says which). The parent computes
`athena.preflight.estimate_peak` for the same load from the headers alone. Target: estimate /
measured within 0.8-1.25 (reported as max(r, 1/r) <= 1.25).

Rows: mlx float32 (the float32 checkpoint as athena loads it); mlx on the bfloat16 checkpoint
(upcast to float32 on mlx's CPU backend); transformers float32 and bfloat16 (dtype=
"bfloat16" from the float32 checkpoint); mlx 4-bit quantized at load (quantize_bits=4) and
pre-converted (mlx_lm.convert -q, 4-bit, group 64).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULT_MARK,
    Results,
    Target,
    WorkerError,
    load_spec_model,
    peak_rss,
    rss_bytes,
    run_worker,
)

MiB = 1 << 20
TARGET = Target("<=", 1.25, "estimate within 0.8-1.25x of the measured peak RSS")
SIZES = ("tiny", "small", "medium")


@dataclass(frozen=True)
class Row:
    name: str
    backend: str  # "mlx" | "transformers"
    checkpoint: str  # "fp32" | "bf16" | "q4"
    dtype: str | None = None
    quantize_bits: int | None = None


ROWS = (
    Row("mlx-float32", "mlx", "fp32"),
    Row("mlx-bf16-checkpoint", "mlx", "bf16"),
    Row("transformers-float32", "transformers", "fp32"),
    Row("transformers-bfloat16", "transformers", "fp32", dtype="bfloat16"),
    Row("mlx-q4-at-load", "mlx", "fp32", quantize_bits=4),
    Row("mlx-q4-converted", "mlx", "q4"),
)
# --quick (the suite's smoke run): one row of each backend, each estimate's own path (a
# float32 checkpoint on mlx, a bfloat16 load on transformers, a converted 4-bit folder).
QUICK_ROWS = ("mlx-float32", "transformers-bfloat16", "mlx-q4-converted")


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def measure(
    results: Results, work: Path, *, sizes: list[str], quick: bool = False
) -> dict[str, Any]:
    """Every row (QUICK_ROWS if `quick`) on every size; returns the per-row estimates and
    measurements."""
    from athena import preflight
    from athena.checkpoints import write_tiny_olmoe

    have = {"mlx": _have("mlx", "mlx_lm"), "transformers": _have("torch", "transformers")}
    out: dict[str, Any] = {}
    for size in sizes:
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"preflight-{size}-"))
        print(f"preflight {size}: writing checkpoints", flush=True)
        prepared = run_worker(
            {
                "task": "prepare",
                "size": size,
                "out": str(folder),
                "bits": [4] if have["mlx"] else [],
            }
        )
        paths = {"fp32": prepared["fp32"], "q4": prepared.get("q4")}
        paths["bf16"] = str(write_tiny_olmoe(folder / f"{size}-bf16", size=size, dtype="bfloat16"))
        rows: dict[str, Any] = {}
        for row in ROWS:
            if quick and row.name not in QUICK_ROWS:
                continue
            fid = f"preflight.{size}.{row.name}"
            path = paths.get(row.checkpoint)
            if not have[row.backend] or path is None:
                results.skip(
                    fid, f"{row.name} ({size})", f"{row.backend} not here", group="preflight"
                )
                continue
            info = preflight.inspect_model(path)
            estimate = preflight.estimate_peak(
                info, backend=row.backend, dtype=row.dtype, quantize_bits=row.quantize_bits
            )
            spec = {
                "model": path,
                "backend": row.backend,
                "dtype": row.dtype,
                "quantize_bits": row.quantize_bits,
            }
            try:
                measured = run_worker(spec, script=Path(__file__))
            except (WorkerError, TimeoutError) as error:
                results.skip(fid, f"{row.name} ({size})", str(error), group="preflight")
                continue
            ratio = estimate.peak / measured["peak_rss"]
            growth = measured["peak_rss"] - measured["rss_after_import"]
            context = {
                "checkpoint": row.checkpoint,
                "weight_bytes": info.weight_bytes,
                "estimate": {
                    "peak": estimate.peak,
                    "model": estimate.model,
                    "transient": estimate.transient,
                    "file_pages": estimate.file_pages,
                    "runtime": estimate.runtime,
                },
                "measured": measured,
                "estimate_without_runtime_over_rss_growth": (estimate.peak - estimate.runtime)
                / max(growth, 1),
            }
            results.add(
                f"{fid}.ratio",
                f"estimate / measured peak RSS, {row.name} ({size})",
                [ratio],
                "ratio",
                group="preflight",
                context=context,
            )
            results.add(
                f"{fid}.off_by",
                f"max(r, 1/r), {row.name} ({size})",
                [max(ratio, 1 / ratio)],
                "ratio",
                group="preflight",
                target=TARGET,
                context={
                    "estimate_MiB": estimate.peak / MiB,
                    "peak_MiB": measured["peak_rss"] / MiB,
                    "peak_method": measured["peak_method"],
                },
            )
            rows[row.name] = context
        out[size] = rows
    return out


# --- the child: one load, its peak RSS --------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the backend, then `OLMoEModel.load()`; peak RSS of the whole process."""
    if spec["backend"] == "mlx":
        import mlx.core  # noqa: F401
        import mlx_lm.models.olmoe  # noqa: F401
    else:
        import torch  # noqa: F401
        import transformers.models.olmoe.modeling_olmoe  # noqa: F401
    import athena.models.olmoe  # noqa: F401 (the import's memory counts before the load)

    after_import = rss_bytes()
    model, load_s = load_spec_model(spec)
    peak, method = peak_rss()
    return {
        "load_s": load_s,
        "rss_after_import": after_import,
        "rss_after_load": rss_bytes(),
        "peak_rss": peak,
        "peak_method": method,
        "backend": model.backend,
    }


if __name__ == "__main__":
    print(RESULT_MARK + json.dumps(child(json.loads(sys.argv[1]))), flush=True)
