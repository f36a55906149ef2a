"""The machine a run was measured on: OS, kernel, CPU, cores, RAM, Python, package versions."""

from __future__ import annotations

import os
import platform
import re
import socket
import sys
from typing import Any

import psutil

from athena.host import cpu_name


def _os_name() -> str:
    if sys.platform == "darwin":
        return f"macOS {platform.mac_ver()[0]}".strip()
    try:
        release = platform.freedesktop_os_release()
        return str(release.get("PRETTY_NAME") or release.get("NAME") or platform.system())
    except OSError:
        return platform.system()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine shows here)."""
    return [round(x, 2) for x in os.getloadavg()]


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
        "cpu_model": cpu_name(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "ram_bytes": int(psutil.virtual_memory().total),
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
