"""The machine's copy bandwidth (athena's, mlx's, torch's): headline figures (bench/README.md)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.common import Results, WorkerError, run_worker, torch_device

GROUP = "bandwidth"
GB = 1e9


def measure(results: Results, *, quick: bool) -> str | None:
    """Add the bandwidth figures; return mlx's default device (None without mlx)."""
    nbytes = (64 if quick else 512) << 20
    repeats = 3 if quick else 10
    print(f"copy bandwidth ({nbytes >> 20} MiB float32, {repeats} repeats)", flush=True)
    try:
        out = run_worker({"task": "bandwidth", "bytes": nbytes, "repeats": repeats})
    except WorkerError as error:
        out = {lib: {"skipped": str(error)} for lib in ("athena", "mlx", "torch")}
    for lib in ("athena", "mlx", "torch"):
        entry, fid = out[lib], f"bandwidth.{lib}"
        if "skipped" in entry:
            results.skip(fid, f"copy bandwidth, {lib}", entry["skipped"], group=GROUP)
            continue
        device = memory_of(entry["device"])
        values = [2 * nbytes / s / GB for s in entry["seconds"]]
        ctx = {k: v for k, v in entry.items() if k != "seconds"}
        ctx.update(bytes=nbytes, counted="bytes read + bytes written", memory=device)
        label = f"copy bandwidth, {lib} ({device})"
        results.add(fid, label, values, "GB/s", None, ctx, group=GROUP)
    return out["mlx"].get("device")


def memory_of(device: str) -> str:
    """ "cpu" for host memory copies, "gpu" for Metal/MPS ones (unified memory, GPU path)."""
    d = device.lower()
    return "gpu" if ("gpu" in d or "mps" in d) else "cpu"


# --- in the worker (bench/worker.py's `bandwidth` task) ---------------------------------


def copy_task(spec: dict[str, Any]) -> dict[str, Any]:
    from athena.host import copy_seconds

    nbytes, repeats = int(spec["bytes"]), int(spec["repeats"])
    seconds = copy_seconds(nbytes, repeats)
    out: dict[str, Any] = {"bytes": nbytes}
    out["athena"] = {"seconds": seconds, "method": "athena.host.copy_seconds (bytearray)"}
    out["athena"]["device"] = "cpu"
    for lib, copy in (("mlx", _mlx_copy), ("torch", _torch_copy)):
        try:
            out[lib] = copy(nbytes, repeats)
        except ImportError as error:
            out[lib] = {"skipped": f"{lib} is not importable ({error})"}
    return out


def _mlx_copy(nbytes: int, repeats: int) -> dict[str, Any]:
    import mlx.core as mx

    src = mx.ones((nbytes // 4,), dtype=mx.float32)
    mx.eval(src)
    dst = src + 1  # warm-up: the allocator keeps the buffer for the timed repeats
    mx.eval(dst)
    del dst
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst = src + 1
        mx.eval(dst)
        seconds.append(time.perf_counter() - start)
        del dst
    out = {"seconds": seconds, "method": "mx: dst = src + 1 (reads and writes n bytes), float32"}
    out["device"] = str(mx.default_device())
    info: dict[str, Any] = {"default_device": str(mx.default_device())}
    try:
        info["metal_available"] = bool(mx.metal.is_available())
    except AttributeError:
        info["metal_available"] = False
    with contextlib.suppress(AttributeError, RuntimeError):
        info.update({k: v for k, v in mx.device_info().items() if isinstance(v, str | int)})
    return {**out, "device_info": info}


def _torch_copy(nbytes: int, repeats: int) -> dict[str, Any]:
    import torch

    device = torch_device()
    src = torch.ones(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _sync(device)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        dst.copy_(src)
        _sync(device)
        seconds.append(time.perf_counter() - start)
    threads = torch.get_num_threads()
    return {
        "seconds": seconds,
        "method": "dst.copy_(src), float32",
        "device": device,
        "threads": threads,
    }


def _sync(device: str) -> None:
    import torch

    if device == "mps":
        torch.mps.synchronize()
