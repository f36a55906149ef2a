"""The system section (OS, machine, Rosetta, the checked Python, its venv, Nix) and the memory
section (RAM, Metal's recommended working set, the wired limit on macOS 15+)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from athena.doctor.lock import PIN_FILE, release
from athena.doctor.probe import ProbeResult
from athena.doctor.report import Check, Report
from athena.host import Host

MIN_MACOS = (14,)  # mlx's wheels
GIB = 1024**3
WIRED_LIMIT_MACOS = (15,)  # mx.set_wired_limit works from macOS 15


def env_info(env: ProbeResult, root: Path | None) -> dict[str, Any]:
    """The report's `python` block, from the probe's `env` step."""
    step = env.step("env") or {}
    prefix = step.get("prefix") or ""
    base = step.get("base_prefix") or prefix
    in_venv = bool(prefix) and prefix != base
    project_venv = bool(root) and in_venv and _same_path(prefix, root / ".venv")  # type: ignore[operator]
    executable = str(step.get("executable") or env.python)
    return {
        "executable": executable,
        "version": step.get("version"),
        "implementation": step.get("implementation"),
        "prefix": prefix,
        "in_venv": in_venv,
        "project_venv": project_venv,
        "nix_shell": os.environ.get("IN_NIX_SHELL") or None,
        "nix_python": executable.startswith("/nix/store/"),
        "probe_ok": bool(step.get("ok")),
        "probe_error": step.get("error") or (None if step else _probe_failure(env)),
    }


def _probe_failure(env: ProbeResult) -> str:
    tail = " | ".join(env.stderr.strip().splitlines()[-2:])
    if env.returncode == 0 or not tail:
        return f"it printed no result (exit code {env.returncode}): is it a Python >= 3.9?"
    return f"exit code {env.returncode}: {tail}"


def _same_path(a: str | Path, b: str | Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def system_checks(report: Report, host: Host, python: Mapping[str, Any]) -> None:
    def add(check_id: str, title: str, status: str, detail: str, **fields: Any) -> None:
        report.add(Check(f"system.{check_id}", title, status, detail, **fields))

    if host.is_mac and (host.macos_version or ()) >= MIN_MACOS:
        add("os", "OS", "pass", f"macOS {host.os_version}", required=True)
    elif host.is_mac:
        detail = f"macOS {host.os_version}: mlx's wheels need macOS 14 or newer"
        add("os", "OS", "fail", detail, required=True, hint="update to macOS 14 (Sonoma) or newer")
    elif host.is_linux:
        add("os", "OS", "pass", f"Linux {host.os_version} (mlx runs here as its CPU build only)")
    else:
        hint = "athena supports Apple Silicon Macs and Linux"
        add("os", "OS", "warn", f"{host.system} {host.os_version}", hint=hint)

    if host.is_mac and not host.is_apple_silicon:
        detail = f"{host.machine}: an Intel Mac; mlx needs Apple Silicon"
        hint = "use an Apple Silicon Mac (M1 or newer), or Linux with the mlx-cpu group"
        add("machine", "Machine", "fail", detail, required=True, hint=hint)
    else:
        add("machine", "Machine", "info", host.machine)

    if not host.is_mac:
        add("rosetta", "Rosetta", "skip", "not a Mac")
    elif host.rosetta:
        detail = f"this Python is an x86_64 build translated by Rosetta 2 ({python['executable']})"
        hint = "install a native arm64 Python (`uv python install` or `nix develop`), then "
        hint += "recreate the venv: `rm -rf .venv && uv sync --locked`"
        add("rosetta", "Rosetta", "fail", detail, required=True, hint=hint)
    else:
        add("rosetta", "Rosetta", "pass", "native arm64 process", required=True)

    python_version = str(python.get("version") or "unknown")
    if python.get("probe_ok"):
        old = (release(python_version) or ()) < (3, 11)
        hint = "athena needs Python >= 3.11 (this one can run the doctor only); use the "
        hint += "project's venv: `uv sync --locked`"
        detail = f"{python_version} at {python['executable']}"
        add("python", "Python", "warn" if old else "pass", detail, hint=hint if old else None)
    else:
        detail = f"cannot run {python['executable']}: {python.get('probe_error')}"
        hint = "pass a working interpreter with --python"
        add("python", "Python", "fail", detail, required=True, hint=hint)

    if python.get("project_venv"):
        add("venv", "Virtualenv", "pass", f"the project's venv ({python['prefix']})")
    elif python.get("in_venv"):
        detail = f"a venv that is not the project's .venv ({python['prefix']})"
        add("venv", "Virtualenv", "info", detail)
    else:
        hint = "create the locked env and use it: `uv sync --locked`, then "
        hint += "`.venv/bin/python scripts/verify_env.py` (or `uv run athena doctor`)"
        detail = f"not inside a virtualenv ({python['prefix']})"
        add("venv", "Virtualenv", "warn", detail, hint=hint)

    nix = []
    if python.get("nix_shell"):
        nix.append(f"inside a nix shell (IN_NIX_SHELL={python['nix_shell']})")
    if python.get("nix_python"):
        nix.append("Python from the nix store")
    add("nix", "Nix", "info", "; ".join(nix) or "not in a nix shell")


def project_check(report: Report, root: Path | None, problems: Mapping[str, str | None]) -> None:
    """The checkout's files: pyproject.toml, uv.lock, .python-version, flake.lock. A damaged
    one fails (flake.lock, which only nix reads, warns), naming the file and what to do; a
    Python without tomllib (3.9, 3.10) cannot read the TOML ones (info)."""
    title = "project files"
    found = {name: problem for name, problem in problems.items() if problem}
    if root is None:
        report.add(Check("system.project", title, "skip", "not a checkout (no uv.lock found)"))
        return
    if not found:
        detail = f"{', '.join(n for n in problems if os.path.lexists(root / n))} read"
        report.add(Check("system.project", title, "pass", detail, data={"root": str(root)}))
        return
    damaged = [name for name, problem in found.items() if "tomllib" not in problem]
    status = "info" if not damaged else "warn" if damaged == ["flake.lock"] else "fail"
    sentences = [problem.rsplit(": ", 1) for problem in found.values()]
    detail = "; ".join(s[0] for s in sentences)
    if not damaged:
        detail = f"{' and '.join(found)} not read: {next(iter(found.values()))}"
    hint = "; ".join(s[-1] for s in sentences) if damaged else None
    required = status == "fail"
    data = dict(problems)
    report.add(Check("system.project", title, status, detail, required, hint=hint, data=data))


def python_minor(version: object) -> str | None:
    """ "3.12" of "3.12.7", or None."""
    parts = release(version) if version else None
    return f"{parts[0]}.{parts[1]}" if parts and len(parts) >= 2 else None


def python_pin_check(report: Report, python: Mapping[str, Any], pin: str | None) -> None:
    """Warn when the checked Python is not the minor version the project pins."""
    minor = python_minor(python.get("version"))
    data = {"pinned": pin, "minor": minor}
    hint = None
    if pin is None:
        status, detail = "skip", f"no {PIN_FILE} here (not a checkout, or see system.project)"
    elif not python.get("probe_ok") or minor is None:
        status, detail = "skip", "the checked Python could not be run (see system.python)"
    elif minor == pin or minor.split(".")[0] == pin:  # a pin of "3": any Python 3
        status, detail = "pass", f"{minor} = {PIN_FILE} (and the flake's Python)"
        if minor != pin:
            detail = f"{minor}: {PIN_FILE} pins any Python {pin}"
    else:
        status, detail = "warn", f"Python {minor}, but {PIN_FILE} pins {pin} (the flake's Python, "
        detail += "what every teammate and CI's checks run)"
        hint = f"`uv sync --locked` replaces .venv with a Python {pin} one (if uv finds none: "
        hint += f"`uv python install {pin}`), or use `nix develop`"
    report.add(Check("system.python_pin", "Python pin", status, detail, hint=hint, data=data))


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
    supported = (host.macos_version or ()) >= WIRED_LIMIT_MACOS
    detail = "supported (macOS 15+): mlx-lm wires the recommended working set"
    if not supported:
        detail = "not supported before macOS 15: mx.set_wired_limit does nothing"
    detail += f"; sysctl iogpu.wired_limit_mb = {sysctl_value}" if sysctl_value is not None else ""
    detail += " (0: the macOS default)" if sysctl_value == "0" else ""
    detail += "; sysctl iogpu.wired_limit_mb not present" if sysctl_value is None else ""
    data = {"supported": supported, "iogpu.wired_limit_mb": sysctl_value}
    report.add(Check("memory.wired_limit", "wired limit", "info", detail, data=data))
