"""The memory section: RAM, Metal's recommended working set, the wired limit (macOS 15+)."""

from __future__ import annotations

from typing import Any

from athena.doctor.report import Check, Report
from athena.host import Host

GIB = 1024**3
WIRED_LIMIT_MACOS = (15,)  # mx.set_wired_limit works from macOS 15


def gib(value: Any) -> str:
    try:
        return f"{int(value) / GIB:.1f} GiB"
    except (TypeError, ValueError):
        return "unknown"


def memory_checks(report: Report, host: Host) -> None:
    data: dict[str, Any] = {"bytes": host.total_memory}
    report.add(Check("memory.total", "RAM", "info", gib(host.total_memory), data=data))
    info = dict(host.metal.device_info) if host.metal else {}
    working_set = info.get("max_recommended_working_set_size")
    title = "recommended working set"
    if working_set:
        detail, data = f"{gib(working_set)} (mx.device_info)", {"bytes": working_set}
        report.add(Check("memory.working_set", title, "info", detail, data=data))
    else:
        detail = "Metal only (mx.device_info()['max_recommended_working_set_size'])"
        report.add(Check("memory.working_set", title, "skip", detail))
    if not host.is_mac:
        detail = "macOS 15+ only (mx.set_wired_limit, sysctl iogpu.wired_limit_mb)"
        report.add(Check("memory.wired_limit", "wired limit", "skip", detail))
        return
    sysctl_value = host.sysctl.get("iogpu.wired_limit_mb")
    ceiling = (
        f"; sysctl iogpu.wired_limit_mb = {sysctl_value}"
        + (" (0: the macOS default)" if sysctl_value == "0" else "")
        if sysctl_value is not None
        else "; sysctl iogpu.wired_limit_mb not present"
    )
    supported = (host.macos_version or ()) >= WIRED_LIMIT_MACOS
    detail = (
        "supported (macOS 15+): mlx-lm wires the recommended working set"
        if supported
        else "not supported before macOS 15: mx.set_wired_limit does nothing"
    ) + ceiling
    data = {"supported": supported, "iogpu.wired_limit_mb": sysctl_value}
    report.add(Check("memory.wired_limit", "wired limit", "info", detail, data=data))
