"""The packages section: each package's installed version against uv.lock."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from athena.doctor.lock import Lock
from athena.doctor.names import normalize
from athena.doctor.probe import ProbeResult, run_probe
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
    wanted = sorted(
        {normalize(n) for n in names} or {n for n in present if lock is None or n in lock.versions}
    )
    absent = [name for name in wanted if name not in present]
    started = time.monotonic()
    probe = run_probe(python, ("files", *(n for n in wanted if n in present)), timeout=timeout)
    seconds = round(time.monotonic() - started, 2)
    results = {k[len("files ") :]: v for k, v in probe.steps.items() if k.startswith("files ")}
    differences = {
        name: {kind: result[kind] for kind in ("changed", "missing", "added") if result.get(kind)}
        for name, result in sorted(results.items())
        if any(result.get(kind) for kind in ("changed", "missing", "added"))
    }
    files = sum(int(result.get("files") or 0) for result in results.values())
    data = {
        "packages": len(results),
        "files": files,
        "seconds": seconds,
        "not_installed": absent,
        "differences": differences,
    }
    title = "installed files = RECORD"
    if probe.returncode != 0:
        tail = " | ".join(probe.stderr.strip().splitlines()[-2:])
        detail = f"the file check in {probe.python} ended with code {probe.returncode}: {tail}"
        report.add(
            Check(
                "packages.files",
                title,
                "fail",
                detail,
                required=True,
                hint="run it again with a larger --timeout, or report the error",
                data=data,
            )
        )
        return
    if not differences and not absent:
        detail = f"{files} files of {len(results)} packages match their RECORD sha256 ({seconds} s)"
        report.add(Check("packages.files", title, "pass", detail, required=True, data=data))
        return
    parts = [
        f"{name}: "
        + ", ".join(
            f"{len(paths)} {kind} ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})"
            for kind, paths in found.items()
        )
        for name, found in differences.items()
    ]
    parts += [f"{name}: not installed here" for name in absent]
    hints = []
    if differences:
        reinstall = " ".join(f"--reinstall-package {name}" for name in differences)
        hints.append(f"put back what the wheels shipped: `uv sync --locked {reinstall}`")
    if absent:
        hints.append("check the names (`--verify-files` alone checks every locked package)")
    report.add(
        Check(
            "packages.files",
            title,
            "fail",
            "; ".join(parts),
            required=True,
            hint="; ".join(hints),
            data=data,
        )
    )


def distributions(env: ProbeResult) -> list[dict[str, Any]]:
    """The checked Python's installed distributions (name, version, requires), from the probe."""
    return list((env.step("env") or {}).get("distributions") or [])


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
        check_id = f"packages.{name}"
        data = {"installed": version, "locked": sorted(locked.get(name, ())) if locked else None}
        title = name
        if version is None:
            mac_only = name == "mlx-metal" and not host.is_mac
            linux_only = name == "mlx-cpu" and not host.is_linux
            if mac_only or linux_only:
                where_ok = "a Mac" if mac_only else "Linux"
                report.add(
                    Check(check_id, title, "skip", f"not installed (only on {where_ok})", data=data)
                )
            elif name in ("mlx", "mlx-lm", "mlx-metal") and host.is_apple_silicon:
                report.add(
                    Check(
                        check_id,
                        title,
                        "fail",
                        f"not installed ({where})",
                        required=True,
                        hint=f"install the locked env: `{SYNC_MAC}`",
                        data=data,
                    )
                )
            elif name in MAIN_DEPENDENCIES:
                report.add(
                    Check(
                        check_id,
                        title,
                        "fail" if project_env else "warn",
                        f"not installed ({where})",
                        required=project_env,
                        hint=f"install the locked env: `{sync}`",
                        data=data,
                    )
                )
            else:
                group = "torch" if name == "torch" else "mlx-cpu"
                report.add(
                    Check(
                        check_id,
                        title,
                        "skip",
                        f"not installed ({where})",
                        hint=f"optional: `uv sync --locked --group {group}`",
                        data=data,
                    )
                )
            continue
        if locked is None:
            report.add(
                Check(
                    check_id, title, "info", f"{version} (not compared: {lock_problem})", data=data
                )
            )
        elif version in locked.get(name, ()):
            report.add(
                Check(
                    check_id,
                    title,
                    "pass",
                    f"{version} (= uv.lock)",
                    required=project_env,
                    data=data,
                )
            )
        else:
            pinned = ", ".join(sorted(locked.get(name, ()))) or "not in uv.lock"
            required = project_env or (mlx_required and name in MLX_DISTRIBUTIONS)
            report.add(
                Check(
                    check_id,
                    title,
                    "fail" if required else "warn",
                    f"{version}, but uv.lock pins {pinned}",
                    required=required,
                    hint=f"reinstall from the lock: `{sync}`",
                    data=data,
                )
            )
