"""The one seam for what cannot exist on Linux: the OS, the Mac's version, Rosetta, sysctl
values and Metal.

`probe_host()` reads the real machine. Tests replace the `Host` it returns to simulate a Mac
(their names say "simulated"); everything else the doctor checks is real.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# sysctl names read on a Mac: Rosetta, physical memory, the GPU's wired-memory ceiling, the chip.
SYSCTL_NAMES = (
    "sysctl.proc_translated",
    "hw.memsize",
    "iogpu.wired_limit_mb",
    "machdep.cpu.brand_string",
)


# The device mlx computes on, as the user asks: "cpu" or "gpu" (CPU on GitHub's macOS VMs,
# whose Metal is unusable); the mlx backend honours it, the preflight plans for it.
MLX_DEVICE_ENV = "ATHENA_MLX_DEVICE"


def mlx_device_wanted() -> str:
    """ATHENA_MLX_DEVICE as set now, lower-cased ("" when unset)."""
    return os.environ.get(MLX_DEVICE_ENV, "").strip().lower()


@dataclass(frozen=True)
class Metal:
    """What mlx says about Metal: `available` from `mx.metal.is_available()`, `device_info`
    from `mx.device_info()` (on Metal: device_name, architecture, memory_size,
    max_recommended_working_set_size, ...)."""

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
        return _version_tuple(self.os_version)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def read_sysctl(name: str) -> str | None:
    """`sysctl -n NAME`, or None where there is no sysctl or no such name."""
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
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _linux_cpu() -> str | None:
    """The CPU's model name from /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's marketing name: sysctl's brand string on a Mac, /proc/cpuinfo on Linux."""
    if platform.system() == "Darwin":
        return read_sysctl("machdep.cpu.brand_string") or platform.machine()
    return _linux_cpu() or platform.processor() or platform.machine()


def probe_host(metal: Metal | None = None) -> Host:
    """The real machine; `metal` comes from the mlx probe (run in a child process)."""
    system = platform.system()
    machine = platform.machine()
    if system == "Darwin":
        values = {name: value for name in SYSCTL_NAMES if (value := read_sysctl(name))}
        memsize = values.get("hw.memsize")
        return Host(
            system=system,
            machine=machine,
            os_version=platform.mac_ver()[0] or platform.release(),
            total_memory=int(memsize) if memsize and memsize.isdigit() else _total_memory(),
            rosetta=values.get("sysctl.proc_translated") == "1",
            sysctl=values,
            metal=metal,
            chip=values.get("machdep.cpu.brand_string"),
        )
    return Host(
        system=system,
        machine=machine,
        os_version=platform.release(),
        total_memory=_total_memory(),
        metal=metal,
        chip=_linux_cpu() if system == "Linux" else (platform.processor() or None),
    )
