"""The imports and mlx sections, from the probe (probe.MLX_STEPS), and Metal."""

from __future__ import annotations

from collections.abc import Mapping

from athena.doctor.probe import MLX_STEPS, ProbeResult
from athena.doctor.report import Check, Report
from athena.doctor.sections.packages import MLX_DISTRIBUTIONS, SYNC_LINUX_MLX, SYNC_MAC
from athena.host import Host

MLX_STEP_NAMES = tuple(step for step, *_ in MLX_STEPS)


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


def mlx_hint(step: str, error: str, host: Host) -> str:
    """What to do about a failed probe step."""
    if "libmlx" in error and host.is_linux:
        return f"plain mlx has no Linux library; install its CPU build: `{SYNC_LINUX_MLX}`"
    if "No module named" in error:
        return f"install the locked env: `{SYNC_MAC if host.is_mac else SYNC_LINUX_MLX}`"
    if "mlx_lm" in step:
        return "mlx-lm imports transformers: see packages.transformers, then `uv sync --locked`"
    return (
        "mlx is installed but does not work: reinstall it from the lock "
        "(`uv sync --locked --reinstall-package mlx`); if it persists, report the error text"
    )


def mlx_checks(
    report: Report, host: Host, probe: ProbeResult | None, required: bool, why: str
) -> None:
    """One check per probe step (skipped, `why`, when mlx was not probed), then Metal."""
    for step, check_id, title, _ in MLX_STEPS:
        if probe is None:
            report.add(Check(check_id, title, "skip", why))
            continue
        result = probe.step(step) or {"ok": False, "error": "no result from the probe"}
        data = {k: v for k, v in result.items() if k not in ("ok", "error", "detail")}
        if result.get("ok"):
            text, status, hint = str(result.get("detail", "ok")), "pass", None
            metal = host.metal.available if host.metal else result.get("metal_available")
            gpu = result.get("device_type") == "gpu"
            if step == "mlx.default_device" and host.is_mac and metal and not gpu:
                status, hint = "warn", "Metal is available but mlx defaults to the CPU: is "
                hint += "MLX_DEFAULT_DEVICE or mx.set_default_device set?"
        else:
            text, status = str(result.get("error")), "fail" if required else "warn"
            hint = mlx_hint(step, text, host)
        report.add(Check(check_id, title, status, text, required=required, hint=hint, data=data))
    _metal_check(report, host, probe is not None)


def _metal_check(report: Report, host: Host, probed: bool) -> None:
    if not host.is_mac:
        detail = "no Metal on Linux: mlx runs on the CPU" if host.is_linux else "not a Mac"
        report.add(Check("mlx.metal", "Metal", "skip", detail))
    elif host.metal is None:
        status, hint = ("warn", "see the import checks above") if probed else ("skip", None)
        detail = "unknown: mlx could not be asked"
        report.add(Check("mlx.metal", "Metal", status, detail, hint=hint))
    elif host.metal.available:
        name = host.metal.device_info.get("device_name", "a Metal device")
        data = {"device_info": dict(host.metal.device_info)}
        report.add(Check("mlx.metal", "Metal", "pass", f"available ({name})", data=data))
    else:
        hint = (
            "expected in a VM (GitHub's hosted macOS runners); on a real Mac reinstall "
            "mlx-metal: `uv sync --locked --reinstall-package mlx-metal`"
        )
        detail = "not available: mlx runs on the CPU"
        report.add(Check("mlx.metal", "Metal", "warn", detail, hint=hint))
