"""How fast, as a ceiling: decoding one token reads every active weight once, so tokens/s
cannot exceed memory bandwidth / bytes read per token. The active weights of OLMoE: attention,
the router, the top-k experts of every layer, one embedding row, the norms and the output
head, at the option's precision (see docs/preflight.md).

Bandwidth comes from Apple's published figure for the chip this machine reports, or, on any
other machine, from a short copy measured here and cached (with its date) in
`$ATHENA_CACHE_DIR` (default `~/.cache/athena`)/bandwidth.json. Every figure says which.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena.atomic import write_file
from athena.errors import SourceError
from athena.host import Host, probe_host
from athena.preflight.info import DTYPE_ITEMSIZE, EXPERT, ModelInfo
from athena.preflight.memory import Estimate
from athena.preflight.quantized import is_router
from athena.source import read_json

GB = 10**9
# Unified-memory bandwidth Apple publishes per chip, GB/s (for the Max chips whose two
# variants differ, the lower: M3 Max 300 or 400, M4 Max 410 or 546).
APPLE_BANDWIDTH_GBS: dict[str, float] = {
    "M1": 68.25, "M1 Pro": 200, "M1 Max": 400, "M1 Ultra": 800,
    "M2": 100, "M2 Pro": 200, "M2 Max": 400, "M2 Ultra": 800,
    "M3": 100, "M3 Pro": 150, "M3 Max": 300, "M3 Ultra": 819,
    "M4": 120, "M4 Pro": 273, "M4 Max": 410,
    "M5": 153,
}  # fmt: skip
_CHIP = re.compile(r"\bApple (M\d+)(?: (Pro|Max|Ultra))?\b")
COPY_BYTES = 64 * 1024**2  # per buffer of the copy measurement


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_second: float
    source: str  # "estimated" (a published figure) or "measured" (a copy here)
    detail: str  # "Apple M3 Pro's published 150 GB/s", "copy of 128 MiB, 2026-12-02"

    def describe(self) -> str:
        return f"{self.bytes_per_second / GB:.1f} GB/s, {self.source} ({self.detail})"


def apple_bandwidth(chip: str | None) -> Bandwidth | None:
    """The published bandwidth of an Apple chip named like sysctl's brand string."""
    match = _CHIP.search(chip or "")
    if match is None:
        return None
    name = " ".join(part for part in match.groups() if part)
    figure = APPLE_BANDWIDTH_GBS.get(name)
    if figure is None:
        return None
    return Bandwidth(figure * GB, "estimated", f"Apple {name}'s published {figure:g} GB/s")


def cache_dir() -> Path:
    configured = os.environ.get("ATHENA_CACHE_DIR")
    if configured:
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "athena"


def measure_copy_bandwidth(size: int = COPY_BYTES, repeats: int = 3) -> float:
    """Bytes per second of a memory copy (read + write counted), best of `repeats`."""
    source = bytearray(size)
    target = bytearray(size)
    target[:] = source  # fault both in before timing
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        target[:] = source
        best = min(best, time.perf_counter() - start)
    return 2 * size / max(best, 1e-9)


def machine_bandwidth(host: Host | None = None, *, measure: bool = True) -> Bandwidth | None:
    """This machine's bandwidth: the chip's published figure on Apple Silicon, else the cached
    copy measurement (made now, and cached, when there is none and `measure`)."""
    if host is None:
        host = probe_host()
    if host.is_apple_silicon and (published := apple_bandwidth(host.chip)) is not None:
        return published
    key = f"{host.chip or 'unknown CPU'}, {host.total_memory or 0} bytes"
    path = cache_dir() / "bandwidth.json"
    try:
        cached = read_json(path)
        if cached.get("machine") == key:
            return Bandwidth(
                float(cached["bytes_per_second"]),
                "measured",
                f"copy of {COPY_BYTES // 1024**2} MiB, {cached['date']}, cached in {path}",
            )
    except (SourceError, ValueError, KeyError, TypeError):
        pass
    if not measure:
        return None
    rate = measure_copy_bandwidth()
    date = time.strftime("%Y-%m-%d")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"machine": key, "bytes_per_second": rate, "date": date}
        # Whole or not at all: processes measuring at once each replace the file in one step.
        write_file(path, json.dumps(entry) + "\n")
    except OSError:
        pass
    return Bandwidth(rate, "measured", f"copy of {COPY_BYTES // 1024**2} MiB, {date}")


def bytes_per_token(info: ModelInfo, estimate: Estimate, group_size: int = 64) -> int:
    """Bytes of weights read to generate one token with this option: every weight except the
    experts (only top-k of them run) and the embedding (one row), at the option's
    precision; a quantized folder as stored."""
    config = info.config
    experts = int(config.get("num_experts") or 1)
    top_k = min(int(config.get("num_experts_per_tok") or experts), experts)
    vocab = int(config.get("vocab_size") or 1)
    size = DTYPE_ITEMSIZE.get(estimate.dtype, 4)
    total = 0.0
    stored = info.quantization is not None
    for tensor in info.tensors:
        name = tensor.name
        share = 1.0
        if EXPERT.match(name) or ".switch_mlp." in name:
            share = top_k / experts
        elif "embed_tokens." in name:
            share = 1 / vocab
        if stored:
            nbytes = float(tensor.nbytes)
        elif estimate.quantize_bits and _quantizable(tensor.shape, group_size):
            bits = estimate.quantize_bits
            if is_router(name) and estimate.router_bits:
                bits = estimate.router_bits
            nbytes = tensor.elements * (bits / 8 + 2 * size / group_size)
        elif tensor.dtype.startswith("F") or tensor.dtype == "BF16":
            nbytes = float(tensor.elements * size)
        else:
            nbytes = float(tensor.nbytes)
        total += nbytes * share
    return int(total)


def _quantizable(shape: tuple[int, ...], group_size: int) -> bool:
    return len(shape) >= 2 and shape[-1] % group_size == 0


def decode_ceiling(
    info: ModelInfo, estimate: Estimate, bandwidth: Bandwidth | None, group_size: int = 64
) -> dict[str, Any]:
    """The decode ceiling of one option, JSON-ready: tokens/s (None without a bandwidth),
    the bytes read per token, and where the bandwidth came from."""
    per_token = bytes_per_token(info, estimate, group_size)
    return {
        "bytes_per_token": per_token,
        "tokens_per_second": (
            None if bandwidth is None else round(bandwidth.bytes_per_second / per_token, 1)
        ),
        "bandwidth": None if bandwidth is None else bandwidth.bytes_per_second,
        "source": None if bandwidth is None else bandwidth.source,
    }
