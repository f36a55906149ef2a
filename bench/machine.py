"""The machine a run was measured on: OS, kernel, CPU, cores, RAM, Python, package versions."""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _ram_bytes() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return None


def _physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def _os_name() -> str:
    if sys.platform == "darwin":
        version = platform.mac_ver()[0]
        return f"macOS {version}" if version else "macOS"
    try:
        release = platform.freedesktop_os_release()
        return str(release.get("PRETTY_NAME") or release.get("NAME") or platform.system())
    except OSError:
        return platform.system()


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (other work on the machine shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict[str, Any]:
    """The machine description stored in every result JSON."""
    from athena.versions import installed_versions

    return {
        "hostname": socket.gethostname(),
        "os": _os_name(),
        "system": platform.system(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": _physical_cores(),
        "ram_bytes": _ram_bytes(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "packages": installed_versions(),
        "load_average_at_start": load_average(),
    }


def machine_kind(machine: dict[str, Any]) -> str:
    """What a reference run is named for: the kind of machine, not the host or the hour.

    The OS, the architecture and the logical cores, e.g. `linux-x86_64-2core`; on a Mac also
    the chip, which matters most there: `macos-arm64-apple-m2-pro-12core`.
    """
    system = "macos" if machine["system"] == "Darwin" else str(machine["system"]).lower()
    parts = [system, str(machine["arch"])]
    if system == "macos":
        parts.append(str(machine["cpu_model"]))
    parts.append(f"{machine['cores_logical']}core")
    return re.sub(r"[^a-z0-9_]+", "-", "-".join(parts).lower()).strip("-")
