"""Build the doctor's report: system, packages, the four imports, MLX core, memory, the CUDA
audit, and an optional smoke generation.

What cannot exist on Linux comes from `host.Host` (tests replace it to simulate a Mac); the
rest is real: the packages and imports are read from the Python being checked, and the MLX
checks run in a child process of it (see probe.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from athena import __version__
from athena.doctor import audit as cuda_audit
from athena.doctor.host import Host, Metal, probe_host
from athena.doctor.lock import LockError, find_project_root, locked_versions, normalize
from athena.doctor.probe import DEFAULT_TIMEOUT, ProbeResult, run_probe
from athena.doctor.probe_child import MLX_STEPS
from athena.doctor.report import Check, Report

GIB = 1024**3
MIN_MACOS = (14,)  # mlx's wheels
WIRED_LIMIT_MACOS = (15,)  # mx.set_wired_limit works from macOS 15
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
IMPORT_IDS = {
    "import mlx": "imports.mlx",
    "import mlx.core": "imports.mlx_core",
    "import mlx_lm": "imports.mlx_lm",
    "from mlx_lm import load, generate": "imports.mlx_lm_load_generate",
}
MLX_STEP_NAMES = tuple(step for step, _ in MLX_STEPS)
SYNC_MAC = "uv sync --locked"
SYNC_LINUX_MLX = "uv sync --locked --group mlx-cpu"


def _gib(value: Any) -> str:
    try:
        return f"{int(value) / GIB:.1f} GiB"
    except (TypeError, ValueError):
        return "unknown"


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


def _env_info(env: ProbeResult, root: Path | None) -> dict[str, Any]:
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


def _distributions(env: ProbeResult) -> list[dict[str, Any]]:
    return list((env.step("env") or {}).get("distributions") or [])


# ------------------------------------------------------------------------------- sections


def system_checks(report: Report, host: Host, python: Mapping[str, Any]) -> None:
    add = report.add
    if host.is_mac:
        version = host.macos_version or ()
        if version >= MIN_MACOS:
            add(Check("system.os", "OS", "pass", f"macOS {host.os_version}", required=True))
        else:
            add(
                Check(
                    "system.os",
                    "OS",
                    "fail",
                    f"macOS {host.os_version}: mlx's wheels need macOS 14 or newer",
                    required=True,
                    hint="update to macOS 14 (Sonoma) or newer",
                )
            )
    elif host.is_linux:
        add(
            Check(
                "system.os",
                "OS",
                "pass",
                f"Linux {host.os_version} (mlx runs here as its CPU build only)",
            )
        )
    else:
        add(
            Check(
                "system.os",
                "OS",
                "warn",
                f"{host.system} {host.os_version}",
                hint="athena supports Apple Silicon Macs and Linux",
            )
        )

    if host.is_mac and not host.is_apple_silicon:
        add(
            Check(
                "system.machine",
                "Machine",
                "fail",
                f"{host.machine}: an Intel Mac; mlx needs Apple Silicon",
                required=True,
                hint="use an Apple Silicon Mac (M1 or newer), or Linux with the mlx-cpu group",
            )
        )
    else:
        add(Check("system.machine", "Machine", "info", host.machine))

    if not host.is_mac:
        add(Check("system.rosetta", "Rosetta", "skip", "not a Mac"))
    elif host.rosetta:
        add(
            Check(
                "system.rosetta",
                "Rosetta",
                "fail",
                f"this Python is an x86_64 build translated by Rosetta 2 ({python['executable']})",
                required=True,
                hint="install a native arm64 Python (`uv python install` or `nix develop`), "
                "then recreate the venv: `rm -rf .venv && uv sync --locked`",
            )
        )
    else:
        add(Check("system.rosetta", "Rosetta", "pass", "native arm64 process", required=True))

    python_version = str(python.get("version") or "unknown")
    if python.get("probe_ok"):
        too_old = tuple(int(p) for p in python_version.split(".")[:2]) < (3, 11)
        add(
            Check(
                "system.python",
                "Python",
                "warn" if too_old else "pass",
                f"{python_version} at {python['executable']}",
                hint="athena needs Python >= 3.11 (this one can run the doctor only); "
                "use the project's venv: `uv sync --locked`"
                if too_old
                else None,
            )
        )
    else:
        add(
            Check(
                "system.python",
                "Python",
                "fail",
                f"cannot run {python['executable']}: {python.get('probe_error')}",
                required=True,
                hint="pass a working interpreter with --python",
            )
        )

    if python.get("project_venv"):
        add(Check("system.venv", "Virtualenv", "pass", f"the project's venv ({python['prefix']})"))
    elif python.get("in_venv"):
        add(
            Check(
                "system.venv",
                "Virtualenv",
                "info",
                f"a venv that is not the project's .venv ({python['prefix']})",
            )
        )
    else:
        add(
            Check(
                "system.venv",
                "Virtualenv",
                "warn",
                f"not inside a virtualenv ({python['prefix']})",
                hint="create the locked env and use it: `uv sync --locked`, then "
                "`.venv/bin/python scripts/verify_env.py` (or `uv run athena doctor`)",
            )
        )

    nix = []
    if python.get("nix_shell"):
        nix.append(f"inside a nix shell (IN_NIX_SHELL={python['nix_shell']})")
    if python.get("nix_python"):
        nix.append("Python from the nix store")
    add(Check("system.nix", "Nix", "info", "; ".join(nix) or "not in a nix shell"))


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


def _mlx_hint(step: str, error: str, host: Host) -> str:
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
    """The four imports and the MLX core checks, from the child process's results."""
    titles = {
        "mlx.array_ops": "array ops (matmul, sum)",
        "mlx.eval": "mx.eval",
        "mlx.lazy": "lazy evaluation deferred",
        "mlx.default_device": "default device",
        "mlx.device_info": "mx.device_info()",
        "mlx.quantize": "quantize round trip (4-bit)",
    }
    for step in MLX_STEP_NAMES:
        check_id = IMPORT_IDS.get(step, step)
        title = step if step in IMPORT_IDS else titles[step]
        if probe is None:
            report.add(Check(check_id, title, "skip", why))
            continue
        result = probe.step(step) or {"ok": False, "error": "no result from the probe"}
        data = {k: v for k, v in result.items() if k not in ("ok", "error")}
        if not result.get("ok"):
            error = str(result.get("error"))
            report.add(
                Check(
                    check_id,
                    title,
                    "fail" if required else "warn",
                    error,
                    required=required,
                    hint=_mlx_hint(step, error, host),
                    data=data,
                )
            )
            continue
        detail, status, hint = _mlx_detail(step, result, host)
        report.add(Check(check_id, title, status, detail, required=required, hint=hint, data=data))
    _metal_check(report, host, probe is not None)


def _mlx_detail(step: str, result: Mapping[str, Any], host: Host) -> tuple[str, str, str | None]:
    if step in ("import mlx.core", "import mlx_lm"):
        return f"ok ({result.get('version')})", "pass", None
    if step == "import mlx":
        return f"ok ({result.get('path')})", "pass", None
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


def memory_checks(report: Report, host: Host) -> None:
    report.add(
        Check(
            "memory.total",
            "RAM",
            "info",
            _gib(host.total_memory),
            data={"bytes": host.total_memory},
        )
    )
    info = dict(host.metal.device_info) if host.metal else {}
    working_set = info.get("max_recommended_working_set_size")
    if working_set:
        report.add(
            Check(
                "memory.working_set",
                "recommended working set",
                "info",
                f"{_gib(working_set)} (mx.device_info)",
                data={"bytes": working_set},
            )
        )
    else:
        report.add(
            Check(
                "memory.working_set",
                "recommended working set",
                "skip",
                "Metal only (mx.device_info()['max_recommended_working_set_size'])",
            )
        )
    if not host.is_mac:
        report.add(
            Check(
                "memory.wired_limit",
                "wired limit",
                "skip",
                "macOS 15+ only (mx.set_wired_limit, sysctl iogpu.wired_limit_mb)",
            )
        )
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
    report.add(
        Check(
            "memory.wired_limit",
            "wired limit",
            "info",
            detail,
            data={"supported": supported, "iogpu.wired_limit_mb": sysctl_value},
        )
    )


def audit_checks(
    report: Report,
    host: Host,
    root: Path | None,
    distributions: list[dict[str, Any]],
    environment: str,
) -> None:
    if root is None:
        for target in cuda_audit.TARGETS:
            report.add(
                Check(
                    f"audit.lock.{target.name}",
                    f"lock, {target.name}",
                    "skip",
                    "no pyproject.toml + uv.lock here (not a checkout)",
                    hint="run from the athena checkout, or `athena audit --project DIR`",
                )
            )
    else:
        uv = cuda_audit.uv_executable()
        for target in cuda_audit.TARGETS:
            check_id = f"audit.lock.{target.name}"
            title = f"lock, {target.name}"
            if uv is None:
                report.add(
                    Check(
                        check_id,
                        title,
                        "skip",
                        "uv is not on PATH",
                        hint="install uv to audit uv.lock (https://docs.astral.sh/uv/)",
                    )
                )
                continue
            result = cuda_audit.audit_lock(root, target, uv=uv)
            detail = f"{result.summary()} [{target.scope}]"
            if result.offenders:
                chains = "; ".join(
                    " -> ".join(o.chains[0]) if o.chains else o.name for o in result.offenders
                )
                detail += f"; pulled in by: {chains}"
            report.add(
                Check(
                    check_id,
                    title,
                    "pass" if result.ok else "fail",
                    detail,
                    required=True,
                    hint=cuda_audit.hint(result),
                    data=result.to_dict(),
                )
            )
    installed = cuda_audit.audit_installed(distributions, environment=environment)
    data = installed.to_dict()
    if installed.ok:
        report.add(
            Check(
                "audit.installed",
                "installed packages",
                "pass",
                installed.summary(),
                required=True,
                data=data,
            )
        )
    elif host.is_linux and cuda_audit.explained_by_torch(installed, distributions):
        data["explained_by_torch"] = True
        report.add(
            Check(
                "audit.installed",
                "installed packages",
                "warn",
                f"{len(installed.offenders)} CUDA packages, all pulled in by torch: PyPI's Linux "
                "torch is a CUDA build, installed here by the opt-in torch group",
                hint="fine on Linux (torch uses the CPU when there is no GPU); for a CUDA-free env "
                "sync without the torch group (`uv sync --locked --group mlx-cpu`); `athena audit` "
                "fails on this environment on purpose",
                data=data,
            )
        )
    else:
        report.add(
            Check(
                "audit.installed",
                "installed packages",
                "fail",
                installed.summary(),
                required=True,
                hint=cuda_audit.hint(installed),
                data=data,
            )
        )


def smoke_check(report: Report) -> None:
    """Write a tiny OLMoE checkpoint, load it with the chosen backend, generate 4 tokens."""
    import tempfile

    title = "tiny OLMoE: load + 4 tokens"
    try:
        from athena.checkpoints import write_tiny_olmoe
        from athena.models.olmoe import OLMoEConfig, OLMoEModel

        with tempfile.TemporaryDirectory(prefix="athena-doctor-") as tmp:
            path = write_tiny_olmoe(Path(tmp) / "tiny-olmoe", size="tiny", seed=0)
            model = OLMoEModel(
                OLMoEConfig(
                    model_name=str(path),
                    mlx_model_path=str(path),
                    max_tokens=4,
                    temperature=0.0,
                    seed=0,
                )
            )
            if not model.load():
                raise RuntimeError(f"OLMoEModel.load() returned False for {path} (see the log)")
            text = model.generate("Hello", max_tokens=4, temperature=0.0)
            backend = model._backend
    except Exception as error:
        report.add(
            Check(
                "smoke.generate",
                title,
                "fail",
                f"{type(error).__name__}: {error}",
                required=True,
                hint="fix the failed checks above first; then run "
                "`pytest tests/loader` for details",
            )
        )
        return
    report.add(
        Check(
            "smoke.generate",
            title,
            "pass",
            f"backend {backend}: generated {text!r}",
            required=True,
            data={"backend": backend, "text": text},
        )
    )


# ------------------------------------------------------------------------------- the doctor


def run_doctor(
    *,
    host: Host | None = None,
    python: str | None = None,
    root: Path | None = None,
    audit: bool = True,
    smoke: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Report:
    """Every check, on `python` (default: this interpreter) and the checkout at `root`
    (default: found from this file or the working directory). `host` replaces the real
    machine (the simulated-Mac tests)."""
    root = root or find_project_root()
    env = run_probe(python, ("env",), timeout=timeout)
    python_info = _env_info(env, root)
    distributions = _distributions(env)
    versions: dict[str, str | None] = dict.fromkeys(PACKAGES)
    for dist in distributions:
        name = normalize(dist["name"])
        if name in versions or name == "athena":
            versions[name] = dist["version"]
    project_env = bool(python_info["in_venv"] and versions.get("athena"))
    python_info["project_env"] = project_env

    real_host = host or probe_host()
    required, why = mlx_policy(real_host, versions)
    probe = None
    if required:
        probe = run_probe(python, ("mlx",), timeout=timeout, expected_steps=MLX_STEP_NAMES)
    if host is None and probe is not None:
        device = probe.step("mlx.default_device") or {}
        info = probe.step("mlx.device_info") or {}
        if device.get("ok") and device.get("metal_available") is not None:
            real_host = replace(
                real_host,
                metal=Metal(bool(device["metal_available"]), dict(info.get("info") or {})),
            )
    host = real_host

    locked: dict[str, set[str]] | None = None
    lock_problem = None
    if root is None:
        lock_problem = "no uv.lock found (not a checkout)"
    else:
        try:
            locked = locked_versions(root / "uv.lock")
        except LockError as error:
            lock_problem = str(error)

    report = Report(
        athena_version=__version__,
        host={
            "system": host.system,
            "machine": host.machine,
            "os_version": host.os_version,
            "target": host.target,
            "rosetta": host.rosetta,
            "total_memory": host.total_memory,
            "metal": None if host.metal is None else host.metal.available,
        },
        python=python_info,
        project={"root": str(root) if root else None, "uv_lock": locked is not None},
    )
    system_checks(report, host, python_info)
    package_checks(report, host, versions, locked, lock_problem, project_env, required)
    mlx_checks(report, host, probe, required, why)
    memory_checks(report, host)
    if audit:
        audit_checks(report, host, root, distributions, python_info["executable"])
    if smoke:
        smoke_check(report)
    return report


def main(argv: list[str] | None = None) -> int:
    """scripts/verify_env.py and `athena doctor`."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="verify_env.py",
        description="Check the athena environment: system, packages, mlx, memory, CUDA audit.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


def add_arguments(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON (CI)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="also load a tiny OLMoE checkpoint and generate 4 tokens",
    )
    parser.add_argument("--no-audit", action="store_true", help="skip the CUDA-package audit")
    parser.add_argument(
        "--python", metavar="PATH", help="check this interpreter instead of the running one"
    )
    parser.add_argument(
        "--project", metavar="DIR", type=Path, help="the athena checkout (default: found from here)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds allowed for each probe process (default %(default)s)",
    )


def usage_problem(args: Any) -> str | None:
    """One sentence about a bad --project or --python, or None."""
    if args.project is not None and not (args.project / "uv.lock").is_file():
        return f"{args.project} has no uv.lock: pass the athena checkout with --project"
    if args.python is not None and not Path(args.python).is_file():
        return f"--python {args.python} is not a file: pass the path of a Python interpreter"
    return None


def run(args: Any) -> int:
    """Print the report; the exit code is 0 when every required check passes."""
    problem = usage_problem(args)
    if problem:
        print(f"verify_env.py: {problem}", file=sys.stderr)
        return 2
    report = run_doctor(
        python=args.python,
        root=args.project,
        audit=not args.no_audit,
        smoke=args.smoke,
        timeout=args.timeout,
    )
    print(report.to_json() if args.json else report.render())
    return report.exit_code
