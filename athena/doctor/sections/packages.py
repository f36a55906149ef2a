"""The packages section (each package's installed version against uv.lock), and the imports
and mlx sections, from the probe (probe.MLX_STEPS), with Metal."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from athena.doctor.lock import Lock, normalize
from athena.doctor.probe import MLX_STEPS, ProbeResult, run_probe
from athena.doctor.report import Check, Report
from athena.host import Host

# Distribution -> (which install provides it, where it belongs)
PACKAGES: dict[str, str] = {
    "mlx": "main dependency on Apple Silicon; the mlx-cpu group on Linux",
    "mlx-metal": "pulled by mlx on a Mac",
    "mlx-cpu": "the mlx-cpu group (Linux)",
    "mlx-lm": "main dependency on Apple Silicon; the mlx-cpu group on Linux",
    "transformers": "main dependency",
    "torch": "the torch group",
    "tokenizers": "main dependency",
    "safetensors": "main dependency",
    "numpy": "main dependency",
}
MAIN_DEPENDENCIES = ("transformers", "tokenizers", "safetensors", "numpy")
MLX_DISTRIBUTIONS = ("mlx", "mlx-cpu", "mlx-lm")
SYNC_MAC = "uv sync --locked"
SYNC_LINUX_MLX = "uv sync --locked --group mlx-cpu"
MLX_STEP_NAMES = tuple(step for step, *_ in MLX_STEPS)


def package_checks(
    report: Report,
    host: Host,
    versions: Mapping[str, str | None],
    locked: Mapping[str, set[str]] | None,
    lock_problem: str | None,
    project_env: bool,
    mlx_required: bool,
) -> None:
    """One check per package: installed version, and whether uv.lock pins that version."""
    sync = SYNC_LINUX_MLX if host.is_linux else SYNC_MAC
    for name, where in PACKAGES.items():
        version = versions.get(name)
        data = {"installed": version, "locked": sorted(locked.get(name, ())) if locked else None}
        required, hint = False, None
        if version is None:
            only = {"mlx-metal": "a Mac", "mlx-cpu": "Linux"}.get(name)
            detail = f"not installed ({where})"
            if only and not (host.is_mac if only == "a Mac" else host.is_linux):
                status, detail = "skip", f"not installed (only on {only})"
            elif name in ("mlx", "mlx-lm", "mlx-metal") and host.is_apple_silicon:
                status, required, hint = "fail", True, f"install the locked env: `{SYNC_MAC}`"
            elif name in MAIN_DEPENDENCIES:
                status, required = "fail" if project_env else "warn", project_env
                hint = f"install the locked env: `{sync}`"
            else:
                group = "torch" if name == "torch" else "mlx-cpu"
                status, hint = "skip", f"optional: `uv sync --locked --group {group}`"
        elif locked is None:
            status, detail = "info", f"{version} (not compared: {lock_problem})"
        elif version in locked.get(name, ()):
            status, detail, required = "pass", f"{version} (= uv.lock)", project_env
        else:
            pinned = ", ".join(sorted(locked.get(name, ()))) or "not in uv.lock"
            required = project_env or (mlx_required and name in MLX_DISTRIBUTIONS)
            status, detail = "fail" if required else "warn", f"{version}, but uv.lock pins {pinned}"
            hint = f"reinstall from the lock: `{sync}`"
        report.add(Check(f"packages.{name}", name, status, detail, required, hint=hint, data=data))


def files_check(
    report: Report,
    python: str | None,
    timeout: float,
    lock: Lock | None,
    names: list[str],
    installed: list[dict[str, Any]],
) -> None:
    """`--verify-files`: every installed file of the locked packages (or of `names`) against
    the sha256 its RECORD lists, in a child process of the checked Python."""
    present = {normalize(str(d["name"])) for d in installed}
    every = {n for n in present if lock is None or n in lock.versions}
    wanted = sorted({normalize(n) for n in names} or every)
    absent = [name for name in wanted if name not in present]
    started = time.monotonic()
    probe = run_probe(python, ("files", *(n for n in wanted if n in present)), timeout=timeout)
    seconds = round(time.monotonic() - started, 2)
    results = {k[len("files ") :]: v for k, v in probe.steps.items() if k.startswith("files ")}
    kinds = ("changed", "missing", "added")
    differences = {
        name: {kind: result[kind] for kind in kinds if result.get(kind)}
        for name, result in sorted(results.items())
        if any(result.get(kind) for kind in kinds)
    }
    files = sum(int(result.get("files") or 0) for result in results.values())
    data: dict[str, Any] = {"packages": len(results), "files": files, "seconds": seconds}
    data.update(not_installed=absent, differences=differences)
    hints = []
    if probe.returncode != 0:
        tail = " | ".join(probe.stderr.strip().splitlines()[-2:])
        detail = f"the file check in {probe.python} ended with code {probe.returncode}: {tail}"
        hints.append("run it again with a larger --timeout, or report the error")
    elif not differences and not absent:
        detail = f"{files} files of {len(results)} packages match their RECORD sha256 ({seconds} s)"
    else:
        parts = [
            f"{name}: "
            + ", ".join(f"{len(paths)} {kind} ({_first(paths)})" for kind, paths in found.items())
            for name, found in differences.items()
        ]
        detail = "; ".join(parts + [f"{name}: not installed here" for name in absent])
        if differences:
            reinstall = " ".join(f"--reinstall-package {name}" for name in differences)
            hints.append(f"put back what the wheels shipped: `uv sync --locked {reinstall}`")
        if absent:
            hints.append("check the names (`--verify-files` alone checks every locked package)")
    status, hint = "fail" if hints else "pass", "; ".join(hints) or None
    title = "installed files = RECORD"
    report.add(Check("packages.files", title, status, detail, True, hint=hint, data=data))


def _first(paths: list[str], count: int = 3) -> str:
    return ", ".join(paths[:count]) + (", ..." if len(paths) > count else "")


def distributions(env: ProbeResult) -> list[dict[str, Any]]:
    """The checked Python's installed distributions (name, version, requires), from the probe."""
    return list((env.step("env") or {}).get("distributions") or [])


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
