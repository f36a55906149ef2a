"""The preflight's peak-memory estimate against the measured peak RSS of a real load (#16): each
row of ROWS loads in a fresh child (this file) that reports its own peak RSS (bench/README.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from athena.host import Bandwidth

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULT_MARK,
    MiB,
    Results,
    Target,
    WorkerError,
    backend_importable,
    load_spec_model,
    peak_rss,
    rss_bytes,
    run_worker,
)
from bench.runners import import_backend

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


def measure(
    results: Results, work: Path, *, sizes: list[str], quick: bool = False
) -> dict[str, Any]:
    """Every row (QUICK_ROWS if `quick`) on every size; the per-row estimates and measurements."""
    from athena import preflight
    from athena.checkpoints import write_tiny_olmoe

    have = {backend: backend_importable(backend) for backend in ("mlx", "transformers")}
    out: dict[str, Any] = {}
    for size in sizes:
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"preflight-{size}-"))
        print(f"preflight {size}: writing checkpoints", flush=True)
        bits = [4] if have["mlx"] else []
        prepared = run_worker({"task": "prepare", "size": size, "out": str(folder), "bits": bits})
        paths = {"fp32": prepared["fp32"], "q4": prepared.get("q4")}
        paths["bf16"] = str(write_tiny_olmoe(folder / f"{size}-bf16", size=size, dtype="bfloat16"))
        rows: dict[str, Any] = {}
        for row in ROWS:
            if quick and row.name not in QUICK_ROWS:
                continue
            fid, of = f"preflight.{size}.{row.name}", f"{row.name} ({size})"
            if not have[row.backend] or (path := paths.get(row.checkpoint)) is None:
                results.skip(fid, of, f"{row.backend} not here")
                continue
            info = preflight.inspect_model(path)
            estimate = preflight.estimate_peak(
                info, backend=row.backend, dtype=row.dtype, quantize_bits=row.quantize_bits
            )
            spec = {"model": path, "backend": row.backend, "dtype": row.dtype}
            try:
                measured = run_worker(
                    {**spec, "quantize_bits": row.quantize_bits}, script=Path(__file__)
                )
            except (WorkerError, TimeoutError) as error:
                results.skip(fid, of, str(error))
                continue
            ratio = estimate.peak / measured["peak_rss"]
            growth = measured["peak_rss"] - measured["rss_after_import"]
            context = {"checkpoint": row.checkpoint, "weight_bytes": info.weight_bytes}
            context.update(estimate=estimate_parts(estimate), measured=measured)
            context["estimate_without_runtime_over_rss_growth"] = (
                estimate.peak - estimate.runtime
            ) / max(growth, 1)
            label = f"estimate / measured peak RSS, {of}"
            results.add(f"{fid}.ratio", label, [ratio], "ratio", None, context)
            ctx = {"estimate_MiB": estimate.peak / MiB, "peak_MiB": measured["peak_rss"] / MiB}
            ctx["peak_method"] = measured["peak_method"]
            results.add(
                f"{fid}.off_by", f"max(r, 1/r), {of}", [max(ratio, 1 / ratio)], "ratio", TARGET, ctx
            )
            rows[row.name] = context
        out[size] = rows
    return out


def estimate_parts(estimate: Any) -> dict[str, int]:
    """What an `athena.preflight` Estimate is made of (bytes), for a figure's context."""
    parts = ("resident", "peak", "model", "transient", "file_pages", "runtime")
    return {part: getattr(estimate, part) for part in parts}


def add_share_of_ceiling(
    results: Results,
    fid: str,
    of: str,
    rates: list[float],
    ceiling: dict[str, Any],
    bandwidth: Bandwidth | None,
) -> None:
    """`{fid}.decode_share_of_ceiling`: each decode rate over `athena inspect`'s decode ceiling
    for the same option on this machine (`ceiling`: athena.preflight.speed.decode_ceiling's)."""
    fid, label = f"{fid}.decode_share_of_ceiling", f"decode / inspect's ceiling, {of}"
    if bandwidth is None or not (best := ceiling["tokens_per_second"]):
        results.skip(fid, label, "no bandwidth from athena.host.machine_bandwidth()")
        return
    ctx = {"ceiling_tokens_per_s": best, "bytes_per_token": ceiling["bytes_per_token"]}
    ctx["bandwidth"] = asdict(bandwidth)  # bytes_per_second, source, detail
    results.add(fid, label, [rate / best for rate in rates], "ratio", None, ctx)


# --- the child: one load, its peak RSS --------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Import the backend, then `OLMoEModel.load()`; peak RSS of the whole process."""
    import_backend(spec["backend"])
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
