"""Machine facts, and the one seam for what cannot exist on Linux (macOS, Rosetta, sysctl,
Metal): tests pass a `Host` to simulate a Mac. Also the installed backends and the memory
bandwidth (docs/preflight.md)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import itertools
import json
import os
import platform
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from athena.atomic import write_file
from athena.errors import LoadError, SourceError
from athena.source import read_json

# sysctl names read on a Mac: Rosetta, physical memory, the GPU's wired-memory ceiling, the chip.
SYSCTL_NAMES = ("sysctl.proc_translated", "hw.memsize", "iogpu.wired_limit_mb",
                "machdep.cpu.brand_string")  # fmt: skip


# The device mlx computes on, as the user asks: "cpu" or "gpu" (CPU on GitHub's macOS VMs,
# whose Metal is unusable); the mlx backend honours it, the preflight plans for it.
MLX_DEVICE_ENV = "ATHENA_MLX_DEVICE"


def mlx_device_wanted() -> str:
    """ATHENA_MLX_DEVICE as set now, lower-cased ("" when unset)."""
    return os.environ.get(MLX_DEVICE_ENV, "").strip().lower()


@dataclass(frozen=True)
class Metal:
    """`mx.metal.is_available()` and `mx.device_info()` (max_recommended_working_set_size...)."""

    available: bool
    device_info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Host:
    """The machine the doctor runs on."""

    system: str  # platform.system(): "Darwin", "Linux", "Windows"
    machine: str  # platform.machine(): "arm64", "x86_64", "aarch64"
    os_version: str  # macOS product version ("15.3.1") or the kernel release elsewhere
    total_memory: int | None = None  # bytes of physical RAM
    rosetta: bool | None = None  # a Mac only: this process is translated by Rosetta 2
    sysctl: Mapping[str, str] = field(default_factory=dict)  # a Mac only: SYSCTL_NAMES read
    metal: Metal | None = None  # None: unknown (mlx not importable or not probed)
    chip: str | None = None  # "Apple M3 Pro" (sysctl machdep.cpu.brand_string); Linux: cpuinfo
    mps: bool | None = None  # torch.backends.mps.is_available(); None: not asked yet

    @property
    def is_mac(self) -> bool:
        return self.system == "Darwin"

    @property
    def is_apple_silicon(self) -> bool:
        """An Apple Silicon Mac, also when this Python runs under Rosetta (x86_64)."""
        return self.is_mac and (self.machine == "arm64" or bool(self.rosetta))

    @property
    def is_linux(self) -> bool:
        return self.system == "Linux"

    @property
    def target(self) -> str:
        """`darwin-arm64`, `linux-x86_64`, ...: the names the doctor and the audit use."""
        return f"{self.system.lower()}-{self.machine.lower()}"

    @property
    def macos_version(self) -> tuple[int, ...] | None:
        if not self.is_mac:
            return None
        digits = ("".join(ch for ch in part if ch.isdigit()) for part in self.os_version.split("."))
        return tuple(int(part) for part in itertools.takewhile(bool, digits))


def read_sysctl(name: str) -> str | None:
    """`sysctl -n NAME`, or None where there is no sysctl or no such name."""
    import shutil
    import subprocess

    sysctl = shutil.which("sysctl") or ("/usr/sbin/sysctl" if sys.platform == "darwin" else None)
    if not sysctl or not os.path.exists(sysctl):
        return None
    try:
        completed = subprocess.run(
            [sysctl, "-n", name], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = completed.stdout.strip()
    return value if completed.returncode == 0 and value else None


def _total_memory() -> int | None:
    with contextlib.suppress(AttributeError, ValueError, OSError):  # no sysconf, or no such name
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    return None


def _linux_cpu() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None."""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", errors="replace") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return None


def cpu_name() -> str:
    """The CPU's marketing name: sysctl's brand string on a Mac, /proc/cpuinfo on Linux."""
    return probe_host().chip or platform.processor() or platform.machine()


def probe_host(metal: Metal | None = None) -> Host:
    """The real machine; `metal` comes from the mlx probe (run in a child process)."""
    return dataclasses.replace(_this_machine(), metal=metal)


@functools.cache
def _this_machine() -> Host:
    """Read once a process: on a Mac it is four `sysctl` runs, and every load's preflight asks."""
    system, machine = platform.system(), platform.machine()
    if system != "Darwin":
        chip = _linux_cpu() if system == "Linux" else (platform.processor() or None)
        return Host(system, machine, platform.release(), _total_memory(), chip=chip)
    values = {name: value for name in SYSCTL_NAMES if (value := read_sysctl(name))}
    memsize = values.get("hw.memsize")
    memory = int(memsize) if memsize and memsize.isdigit() else _total_memory()
    return Host(
        system, machine, platform.mac_ver()[0] or platform.release(), memory,
        rosetta=values.get("sysctl.proc_translated") == "1", sysctl=values,
        chip=values.get("machdep.cpu.brand_string"),
    )  # fmt: skip


# Where the transformers backend computes (OLMoEConfig.device, --device); mlx picks its own.
TORCH_DEVICES = ("auto", "cpu", "mps")


def torch_device(wanted: str = "auto", host: Host | None = None) -> str:
    """ "cpu" or "mps" (the Mac's GPU through torch) for `wanted`: auto is mps on Apple Silicon
    when torch reports it available, else cpu. LoadError (one sentence) for mps where there
    is none. Asks torch (importing it) only on Apple Silicon."""
    if wanted == "cpu":
        return "cpu"
    host = host or probe_host()
    if not host.is_apple_silicon:
        if wanted == "mps":
            raise LoadError(
                f"device='mps' needs an Apple Silicon Mac, and this is {host.target}; "
                "use device='cpu' or 'auto'"
            )
        return "cpu"
    available = host.mps if host.mps is not None else _torch_mps_available()
    if wanted == "mps" and not available:
        raise LoadError(
            "device='mps' but torch reports no MPS device here (a macOS virtual machine, such "
            "as GitHub's hosted runners, has no GPU); use device='cpu' or 'auto'"
        )
    return "mps" if available else "cpu"


def _torch_mps_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.backends.mps.is_available())


def mps_dtype_problem(dtype: str, host: Host | None = None) -> str | None:
    """Why torch's MPS cannot compute in `dtype` on this Mac's macOS, or None."""
    host = host or probe_host()
    version = host.macos_version or ()
    if dtype == "bfloat16" and version < (14,):
        return (
            f"bfloat16 on the Mac's GPU (MPS) needs macOS 14 or newer, and this Mac runs "
            f"{host.os_version}; use dtype='float16' or 'float32', or device='cpu'"
        )
    return None


# glibc's mallopt parameters, and the mmap threshold glibc's own adjustment stops growing at.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
GLIBC_MMAP_MAX = 32 * 1024**2


@contextlib.contextmanager
def freed_memory_returned(threshold: int = 1024**2) -> Iterator[None]:
    """On glibc, every buffer of `threshold` bytes or more is mapped on its own while inside, so
    a freed one goes back to the system at once. Otherwise glibc, once it has freed a buffer of
    a few MiB, serves the next ones from its heaps, keeps them after they are freed, and a
    transformers load (thousands of per-expert tensors, materialized by worker threads) ended
    holding 13.3 to 17.4 GiB for the same 12.9 GiB model (bench `fit`). A no-op elsewhere."""
    import ctypes

    libc = ctypes.CDLL(None) if platform.libc_ver()[0] == "glibc" else None
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, threshold)
    try:
        yield
    finally:
        libc.malloc_trim(0)
        # Where glibc's own adjustment ends, which mallopt switched off: the trim threshold
        # too, or every step of generate gave its activations back and faulted them in again.
        libc.mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * GLIBC_MMAP_MAX)


def installed_backends() -> list[str]:
    """The backends installed here, in load() order, not imported (a broken one counts)."""

    def found(name: str) -> bool:
        with contextlib.suppress(ImportError, ValueError):
            return importlib.util.find_spec(name) is not None
        return True

    modules = {"mlx": ("mlx", "mlx_lm"), "transformers": ("torch", "transformers")}
    return [backend for backend, names in modules.items() if all(map(found, names))]


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
APPLE_CHIP = re.compile(r"\bApple (M\d+)(?: (Pro|Max|Ultra))?\b")
COPY_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class Bandwidth:
    bytes_per_second: float
    source: str  # "estimated" (a published figure) or "measured" (a copy here)
    detail: str  # "Apple M3 Pro's published 150 GB/s", "copy of 64 MiB, 2026-12-02"


def apple_bandwidth(chip: str | None) -> Bandwidth | None:
    """The published bandwidth of an Apple chip named like sysctl's brand string."""
    match = APPLE_CHIP.search(chip or "")
    name = " ".join(part for part in match.groups() if part) if match else ""
    if (figure := APPLE_BANDWIDTH_GBS.get(name)) is None:
        return None
    return Bandwidth(figure * GB, "estimated", f"Apple {name}'s published {figure:g} GB/s")


def copy_seconds(size: int = COPY_BYTES, repeats: int = 3) -> list[float]:
    """Seconds of each of `repeats` copies of `size` bytes (standard library: no numpy)."""
    import timeit

    source, target = bytearray(size), bytearray(size)
    target[:] = source  # fault both in before timing
    return timeit.repeat("target[:] = source", globals=locals(), number=1, repeat=repeats)


def cache_dir() -> Path:
    if configured := os.environ.get("ATHENA_CACHE_DIR"):
        return Path(configured)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "athena"


def machine_bandwidth(host: Host | None = None, *, measure: bool = True) -> Bandwidth | None:
    """The chip's published bandwidth on Apple Silicon, else a copy measured here (now, and
    cached, when there is none and `measure`)."""
    host = host or probe_host()
    if host.is_apple_silicon and (published := apple_bandwidth(host.chip)) is not None:
        return published
    key = f"{host.chip or 'unknown CPU'}, {host.total_memory or 0} bytes"
    path = cache_dir() / "bandwidth.json"
    copy = f"copy of {COPY_BYTES // 1024**2} MiB"
    with contextlib.suppress(SourceError, ValueError, KeyError, TypeError):
        cached = read_json(path)
        if cached.get("machine") == key:
            detail = f"{copy}, {cached['date']}, cached in {path}"
            return Bandwidth(float(cached["bytes_per_second"]), "measured", detail)
    if not measure:
        return None
    rate, date = 2 * COPY_BYTES / max(min(copy_seconds()), 1e-9), time.strftime("%Y-%m-%d")
    # whole or not at all: processes measuring at once each replace the file in one step
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(path, json.dumps({"machine": key, "bytes_per_second": rate, "date": date}))
    return Bandwidth(rate, "measured", f"{copy}, {date}")
