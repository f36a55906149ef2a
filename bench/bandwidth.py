"""The machine's copy bandwidth, measured in the same run as decode speed.

Copy bandwidth = (bytes read + bytes written) / seconds for one large float32 array, with
numpy, mlx (its default device: the GPU on a Mac, the CPU here) and torch (MPS on a Mac, else
CPU). The decode bound of a backend uses the best median among the copies on its device: a
token cannot be decoded faster than its active weights can be read once.
"""

from __future__ import annotations

from typing import Any

from bench.common import Results, WorkerError, run_worker

GROUP = "bandwidth"
GB = 1e9


def measure(results: Results, *, quick: bool) -> dict[str, Any]:
    """Add the bandwidth figures; return the best copy per memory ("cpu"/"gpu") as
    {"best": {memory: {"id", "median", "values"}}, "mlx_device": memory, "torch_device": ...}."""
    nbytes = (64 if quick else 512) << 20
    repeats = 3 if quick else 10
    print(f"copy bandwidth ({nbytes >> 20} MiB float32, {repeats} repeats)", flush=True)
    try:
        out = run_worker({"task": "bandwidth", "bytes": nbytes, "repeats": repeats})
    except WorkerError as error:
        for lib in ("numpy", "mlx", "torch"):
            results.skip(f"bandwidth.{lib}", f"copy bandwidth, {lib}", str(error), group=GROUP)
        return {"best": {}, "mlx_device": None, "torch_device": None}
    best: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] = {"best": best, "mlx_device": None, "torch_device": None}
    for lib in ("numpy", "mlx", "torch"):
        entry = out[lib]
        if "skipped" in entry:
            results.skip(
                f"bandwidth.{lib}", f"copy bandwidth, {lib}", entry["skipped"], group=GROUP
            )
            continue
        device = memory_of(entry["device"])
        values = [2 * nbytes / s / GB for s in entry["seconds"]]
        context = {k: v for k, v in entry.items() if k != "seconds"}
        context.update(bytes=nbytes, counted="bytes read + bytes written", memory=device)
        figure = results.add(
            f"bandwidth.{lib}",
            f"copy bandwidth, {lib} ({device})",
            values,
            "GB/s",
            group=GROUP,
            context=context,
        )
        if device not in best or figure["median"] > best[device]["median"]:
            best[device] = {"id": figure["id"], "median": figure["median"], "values": values}
        if lib == "mlx":
            info["mlx_device"] = device
            info["mlx_device_info"] = entry.get("device_info")
        if lib == "torch":
            info["torch_device"] = device
    return info


def memory_of(device: str) -> str:
    """ "cpu" for host memory copies, "gpu" for Metal/MPS ones (unified memory, GPU path)."""
    d = device.lower()
    return "gpu" if ("gpu" in d or "mps" in d) else "cpu"
