"""encode() of many texts (issue 11, part 3): texts/s per mode (per_text, batched, fixed,
one_batch; wall and CPU seconds), and peak RSS growth against N. What each mode and figure is,
and the targets (reported, never asserted): bench/README.md, "Encode: many texts".
"""

from __future__ import annotations

import contextlib
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import (
    MiB,
    Results,
    Target,
    WorkerError,
    backend_importable,
    mx_memory,
    proc_status,
    reset_mx_peak,
    rss_bytes,
    run_worker,
)
from bench.runners import import_backend

MODES = ("per_text", "batched", "fixed", "one_batch")
# What this 2-core CPU can run in minutes (mlx's CPU build does ~600 tokens/s on `small` and
# under 10 on `medium`); on a Mac, raise n. `batch_size` is encode()'s default where n allows.
THROUGHPUT: dict[str, dict[str, Any]] = {
    "small": {"n": 128, "words": (5, 60), "rounds": 3, "batch_size": 32},
    "medium": {"n": 8, "words": (5, 20), "rounds": 3, "batch_size": 4},
    "tiny": {"n": 64, "words": (5, 60), "rounds": 3, "batch_size": 32},
    "quick": {"n": 8, "words": (5, 20), "rounds": 2, "batch_size": 4},
}
MEMORY_BASE = 256  # distinct texts in a memory run (repeated up to N)
MEMORY: dict[str, dict[str, Any]] = {
    "full": {"counts": (256, 1024, 4096), "words": (2, 8), "batch_size": 32},
    "quick": {"counts": (16, 48), "words": (2, 8), "batch_size": 4},
}
BATCHED_TARGET = Target(">=", 1.0, "batched texts/s >= 1.0x per-text")
ONE_BATCH_TARGET = Target(">=", 3.0, "batched texts/s >= 3x one big batch (transformers)")
FLAT_TARGET = Target("<=", 1.2, "peak RSS growth flat in N (largest / smallest <= 1.2)")
WORDS = (
    "the", "of", "and", "memory", "expert", "mixture", "router", "token", "layer", "attention",
    "model", "vector", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "research",
    "apple", "silicon", "unified", "bandwidth", "quantization", "gradient", "checkpoint",
    "language", "sparse", "dense", "embedding", "retrieval", "sentence", "paragraph", "document",
)  # fmt: skip


def make_texts(n: int, words: tuple[int, int], seed: int = 0) -> list[str]:
    """`n` deterministic texts of words[0]..words[1] words each."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))) for _ in range(n)]


# --- the parent: bench/run.py --only encode --------------------------------------------------


def measure(results: Results, work: Path, *, quick: bool, sizes: list[str] | None) -> None:
    backends = [b for b in ("mlx", "transformers") if backend_importable(b)]
    for backend in {"mlx", "transformers"} - set(backends):
        reason = "not importable here (install the torch / mlx-cpu groups)"
        results.skip(f"encode.{backend}", f"encode, {backend}", reason)
    # --quick: one backend's memory (its fresh processes are the smoke run's longest).
    memory_backends = backends[:1] if quick else backends
    for backend in backends[len(memory_backends) :]:
        reason = f"--quick measures the memory of one backend ({backends[0]})"
        results.skip(f"encode_memory.{backend}", f"encode memory, {backend}", reason)
    sizes = sizes or (["tiny"] if quick else ["small", "medium"])
    plan = {size: THROUGHPUT["quick" if quick else size] for size in sizes if size in THROUGHPUT}
    memory_size, memory = (sizes[0] if quick else "small"), MEMORY["quick" if quick else "full"]
    for size in dict.fromkeys([*sizes, memory_size]):
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"encode-{size}-"))
        try:
            prepared = run_worker({"task": "prepare", "size": size, "out": str(folder), "bits": []})
            for backend in backends if size in plan else ():
                _throughput(results, size, backend, prepared["fp32"], plan[size])
            for backend in memory_backends if size == memory_size else ():
                _memory(results, size, backend, prepared["fp32"], memory)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _throughput(
    results: Results, size: str, backend: str, model: str, plan: dict[str, Any]
) -> None:
    print(f"encode {size} {backend}: {plan['n']} texts x {len(MODES)} modes x {plan['rounds']}")
    spec = {"task": "encode", "what": "throughput", "model": model, "backend": backend, **plan}
    try:
        out = run_worker(spec, timeout=3600)
    except (WorkerError, TimeoutError) as error:
        results.skip(f"encode.{size}.{backend}", f"encode ({size}, {backend})", str(error))
        return
    ctx: dict[str, Any] = {
        "texts": plan["n"],
        "words_per_text": plan["words"],
        "tokens": out["tokens"],
    }
    ctx.update(batch_size=plan["batch_size"], batch_shapes=out["batch_shapes"])
    ctx.update(max_abs_diff_vs_per_text=out["max_abs_diff"], device=out["device"])
    ctx["load_average"] = out["load_average"]
    rates = {mode: [plan["n"] / s for s in out["seconds"][mode]] for mode in MODES}
    cpu_rates = {mode: [plan["n"] / s for s in out["cpu_seconds"][mode]] for mode in MODES}
    fid, of = f"encode.{size}.{backend}", f"{backend} ({size})"

    def ratio(per: dict[str, list[float]], a: str, b: str) -> list[float]:
        return [x / y for y, x in zip(per[b], per[a], strict=True)]

    for mode in MODES:
        label = f"encode texts/s, {mode}, {of}"
        results.add(f"{fid}.{mode}", label, rates[mode], "texts/s", None, ctx)
    for clock, per in (("", rates), (".cpu", cpu_rates)):
        label = "" if not clock else ", CPU time"
        values = ratio(per, "batched", "per_text")
        label_p = f"encode batched / per-text{label}, {of}"
        results.add(
            f"{fid}.batched_over_per_text{clock}", label_p, values, "ratio", BATCHED_TARGET, ctx
        )
        label_f = f"encode batched / fixed batches{label}, {of}"
        values = ratio(per, "batched", "fixed")
        results.add(f"{fid}.batched_over_fixed{clock}", label_f, values, "ratio", None, ctx)
    target = ONE_BATCH_TARGET if backend == "transformers" else None
    values, label = ratio(rates, "batched", "one_batch"), f"encode batched / one big batch, {of}"
    results.add(f"{fid}.batched_over_one_batch", label, values, "ratio", target, ctx)


def _memory(results: Results, size: str, backend: str, model: str, plan: dict[str, Any]) -> None:
    counts, words = plan["counts"], plan["words"]
    print(f"encode memory {size} {backend}: N = {counts}, {words[0]}-{words[1]} words a text")
    growth: dict[int, float] = {}
    fid, of = f"encode_memory.{size}.{backend}", f"{backend} ({size})"
    for n in counts:
        spec = {"task": "encode", "what": "memory", "model": model, "backend": backend, "n": n}
        spec.update(words=words, batch_size=plan["batch_size"])
        try:
            out = run_worker(spec, timeout=3600)
        except (WorkerError, TimeoutError) as error:
            results.skip(f"{fid}.n{n}", f"encode memory N={n} ({backend})", str(error))
            continue
        growth[n] = (out["peak_rss"] - out["rss_before"]) / MiB
        mx_peak = None if out["mx_peak"] is None else out["mx_peak"] / MiB
        ctx: dict[str, Any] = {
            "texts": n,
            "words_per_text": words,
            "batch_size": plan["batch_size"],
        }
        ctx.update(tokens=out["tokens"], output_MiB=out["output_bytes"] / MiB)
        ctx.update(rss_before_MiB=out["rss_before"] / MiB, peak_method=out["peak_method"])
        ctx.update(mx_peak_MiB=mx_peak, seconds=out["seconds"])
        label = f"encode peak RSS growth, N={n}, {of}"
        results.add(f"{fid}.n{n}.rss_growth", label, [growth[n]], "MiB", None, ctx)
    if len(growth) < 2:
        return
    smallest, largest = min(growth), max(growth)
    label = f"encode peak RSS growth, largest / smallest N, {of}"
    if growth[smallest] <= 0:
        # The encode fit in pages the process already held (the allocator's noise can even
        # make it negative): a ratio to it is meaningless, and a negative one would be "met".
        reason = f"no growth at N={smallest} ({growth[smallest]:.2f} MiB): a ratio to it says "
        results.skip(f"{fid}.flatness", label, reason + "nothing; see the per-N figures")
        return
    ctx = {"growth_MiB": {str(n): g for n, g in growth.items()}}
    ratio = [growth[largest] / growth[smallest]]
    results.add(f"{fid}.flatness", label, ratio, "ratio", FLAT_TARGET, ctx)


# --- the child: bench/worker.py '{"task": "encode", ...}' ------------------------------------


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    backend = spec["backend"]
    import_backend(backend)
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(OLMoEConfig(model_name=spec["model"], use_mlx=backend == "mlx"))
    if not model.load() or model.backend != backend:
        raise RuntimeError(f"could not load {spec['model']} on {backend}: {model.load_error}")
    (low, high), n = spec["words"], int(spec["n"])
    if spec["what"] == "memory":
        # The same 256 texts over and over: every N has the same longest text, so the largest
        # batch (rows x longest text) is the same and only N changes.
        base = make_texts(min(n, MEMORY_BASE), (int(low), int(high)))
        texts = [base[i % len(base)] for i in range(n)]
    else:
        texts = make_texts(n, (int(low), int(high)))
    # Warm-up with one full batch at the measured batch size: a warm-up of 2 texts left a batch
    # of 32's first-time costs (torch's thread pools, arenas) in the smallest N's growth.
    warm = texts[: int(spec["batch_size"])]
    model.encode(warm, batch_size=len(warm), show_progress=False)
    out: dict[str, Any] = {"tokens": sum(len(model.tokenize(t)) for t in texts)}
    out["device"] = _device(model)
    if spec["what"] == "throughput":
        return _throughput_runs(model, texts, spec, out)
    out["rss_before"] = rss_bytes()
    reset_mx_peak()
    with peak_rss() as peak:
        start = time.perf_counter()
        vectors_n = model.encode(texts, batch_size=int(spec["batch_size"]), show_progress=False)
        out["seconds"] = time.perf_counter() - start
    out.update(peak)
    out["output_bytes"] = int(vectors_n.nbytes)
    out["mx_peak"] = mx_memory("peak") if backend == "mlx" else None
    return out


def _throughput_runs(
    model: Any, texts: list[str], spec: dict[str, Any], out: dict[str, Any]
) -> dict[str, Any]:
    """Every mode, `rounds` times in rotated order: wall and CPU seconds of each call."""
    import math
    import os

    import numpy as np

    from athena.backends import batching

    b = int(spec["batch_size"])
    sizes = {"per_text": 1, "batched": b, "fixed": b, "one_batch": len(texts)}
    uncapped = {"fixed", "one_batch"}  # batches of exactly `batch_size`, however padded
    # The (rows, longest) of each batch encode() ran, per mode, as batching planned them (the
    # uncapped modes with no padding limit, whatever the backend asks for).
    shapes: dict[str, list[list[int]]] = {}
    plan = batching.plan_batches

    def recording_plan(lengths: Any, batch_size: int, **kw: Any) -> list[Any]:
        if current in uncapped:
            kw["max_padding"], kw["max_tokens"] = math.inf, None
        batches = plan(lengths, batch_size, **kw)
        shapes[current] = [[len(i), int(lengths[i].max())] for i in batches]
        return batches

    batching.plan_batches = recording_plan
    current = ""
    out["load_average"] = {"before": os.getloadavg()[0]}
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    vectors: dict[str, Any] = {}
    for r in range(int(spec["rounds"])):
        for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
            current = mode
            start, start_cpu = time.perf_counter(), time.process_time()
            vectors[mode] = model.encode(texts, batch_size=sizes[mode], show_progress=False)
            seconds[mode].append(time.perf_counter() - start)
            cpu[mode].append(time.process_time() - start_cpu)
    batching.plan_batches = plan
    out["load_average"]["after"] = os.getloadavg()[0]
    out["seconds"], out["cpu_seconds"], out["batch_shapes"] = seconds, cpu, shapes
    out["max_abs_diff"] = max(float(np.abs(vectors[m] - vectors["per_text"]).max()) for m in MODES)
    return out


@contextlib.contextmanager
def peak_rss() -> Iterator[dict[str, Any]]:
    """{"peak_rss": bytes, "peak_method": str} of the block: Linux's VmHWM after resetting it
    (clear_refs 5), else the highest RSS a 2 ms sampler saw."""
    result: dict[str, Any] = {}
    if _reset_hwm():
        yield result
        method = "VmHWM after clear_refs 5 (Linux)"
        return result.update(peak_rss=proc_status()["VmHWM"], peak_method=method)
    highest = [rss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.002):
            highest[0] = max(highest[0], rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        result.update(peak_rss=max(highest[0], rss_bytes()), peak_method="psutil, every 2 ms")


def _reset_hwm() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux's clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return "VmHWM" in proc_status()


def _device(model: Any) -> str:
    if model.backend == "mlx":
        import mlx.core as mx

        return str(mx.default_device())
    return str(next(model.model.parameters()).device)
