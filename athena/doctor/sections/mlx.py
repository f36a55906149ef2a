"""The mlx section: whether mlx must work here, the MLX core checks from the probe's child
process (array ops, eval, laziness, default device, device info, quantization) and Metal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from athena.doctor.host import Host
from athena.doctor.probe import ProbeResult
from athena.doctor.report import Check, Report
from athena.doctor.sections.imports import (
    IMPORT_IDS,
    MLX_STEP_NAMES,
    import_checks,
    step_check,
)
from athena.doctor.sections.packages import MLX_DISTRIBUTIONS, SYNC_LINUX_MLX

TITLES = {
    "mlx.array_ops": "array ops (matmul, sum)",
    "mlx.eval": "mx.eval",
    "mlx.lazy": "lazy evaluation deferred",
    "mlx.default_device": "default device",
    "mlx.device_info": "mx.device_info()",
    "mlx.quantize": "quantize round trip (4-bit)",
}
CORE_STEPS = tuple(step for step in MLX_STEP_NAMES if step not in IMPORT_IDS)


def mlx_policy(host: Host, versions: Mapping[str, str | None]) -> tuple[bool, str]:
    """Whether mlx must work here, and why (or why it is skipped)."""
    if host.is_mac and host.is_apple_silicon:
        return True, "mlx and mlx-lm are main dependencies on Apple Silicon"
    if host.is_linux:
        present = [name for name in MLX_DISTRIBUTIONS if versions.get(name)]
        if present:
            return True, f"{', '.join(present)} installed (the mlx-cpu group): mlx runs on the CPU"
        return False, (
            "mlx is a main dependency on Apple Silicon only; on Linux it runs when the mlx-cpu "
            f"group is installed (`{SYNC_LINUX_MLX}`)"
        )
    return False, f"mlx has wheels for Apple Silicon Macs and Linux only, not {host.target}"


def mlx_core_checks(
    report: Report, host: Host, probe: ProbeResult | None, required: bool, why: str
) -> None:
    """The MLX core checks and Metal, from the child process's results."""
    for step in CORE_STEPS:
        step_check(report, host, probe, step, step, TITLES[step], required, why, _mlx_detail)
    _metal_check(report, host, probe is not None)


def mlx_checks(
    report: Report, host: Host, probe: ProbeResult | None, required: bool, why: str
) -> None:
    """The four imports, then the MLX core checks (the imports and mlx sections)."""
    import_checks(report, host, probe, required, why)
    mlx_core_checks(report, host, probe, required, why)


def _mlx_detail(step: str, result: Mapping[str, Any], host: Host) -> tuple[str, str, str | None]:
    if step == "mlx.lazy":
        return (
            f"building the graph allocated "
            f"{result['active_after_graph'] - result['active_before']} B, mx.eval "
            f"{result['active_after_eval'] - result['active_before']} B "
            f"(result {result['bytes_result']} B)",
            "pass",
            None,
        )
    if step == "mlx.default_device":
        device = str(result.get("device"))
        metal = host.metal.available if host.metal else result.get("metal_available")
        if host.is_mac and metal and result.get("device_type") != "gpu":
            return (
                device,
                "warn",
                "Metal is available but mlx defaults to the CPU: is MLX_DEFAULT_DEVICE or "
                "mx.set_default_device set?",
            )
        return device, "pass", None
    if step == "mlx.device_info":
        info = result.get("info") or {}
        return ", ".join(f"{k}={v}" for k, v in sorted(info.items())) or "empty", "pass", None
    if step == "mlx.quantize":
        return (
            f"max error {result['max_error_in_steps']:.3f} quantization steps (bound 1.05), mean "
            f"relative {result['mean_relative_error']:.3f}",
            "pass",
            None,
        )
    if step == "mlx.array_ops":
        return f"a @ b = {result.get('matmul')}", "pass", None
    if step == "mlx.eval":
        return "evaluated arange * exp(0)", "pass", None
    return "ok", "pass", None


def _metal_check(report: Report, host: Host, probed: bool) -> None:
    if not host.is_mac:
        detail = "no Metal on Linux: mlx runs on the CPU" if host.is_linux else "not a Mac"
        report.add(Check("mlx.metal", "Metal", "skip", detail))
        return
    if host.metal is None:
        report.add(
            Check(
                "mlx.metal",
                "Metal",
                "skip" if not probed else "warn",
                "unknown: mlx could not be asked",
                hint="see the import checks above" if probed else None,
            )
        )
        return
    if host.metal.available:
        name = host.metal.device_info.get("device_name", "a Metal device")
        report.add(
            Check(
                "mlx.metal",
                "Metal",
                "pass",
                f"available ({name})",
                data={"device_info": dict(host.metal.device_info)},
            )
        )
    else:
        report.add(
            Check(
                "mlx.metal",
                "Metal",
                "warn",
                "not available: mlx runs on the CPU",
                hint="expected in a VM (GitHub's hosted macOS runners); on a real Mac "
                "reinstall mlx-metal: `uv sync --locked --reinstall-package mlx-metal`",
            )
        )
