"""The doctor's sections but the audit (audit.py) and smoke (numerics.py), composed by checks.py:
system, memory, packages (and --verify-files), imports, mlx, model (--model) and models."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from athena.doctor.lock import PIN_FILE, Lock, normalize, release
from athena.doctor.probe import MLX_STEPS, ProbeResult, run_probe
from athena.doctor.report import Check, Report, shown
from athena.errors import SourceError
from athena.host import Host
from athena.source import file_digest

MIN_MACOS = (14,)  # mlx's wheels
GIB = 1024**3
WIRED_LIMIT_MACOS = (15,)  # mx.set_wired_limit works from macOS 15


def env_info(env: ProbeResult, root: Path | None) -> dict[str, Any]:
    """The report's `python` block, from the probe's `env` step."""
    step = env.step("env") or {}
    prefix = step.get("prefix") or ""
    base = step.get("base_prefix") or prefix
    in_venv = bool(prefix) and prefix != base
    venv = os.path.realpath(root / ".venv") if root else None  # realpath raises no OSError
    project_venv = in_venv and os.path.realpath(prefix) == venv
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
    report.add(
        Check("system.project", title, status, detail, status == "fail", hint, dict(problems))
    )


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


def mlx_policy(host: Host, versions: Mapping[str, str | None]) -> tuple[bool, str]:
    """Whether mlx must work here, and why (or why it is skipped)."""
    if host.is_mac and host.is_apple_silicon:
        return True, "mlx and mlx-lm are main dependencies on Apple Silicon"
    if host.is_linux:
        if present := [name for name in MLX_DISTRIBUTIONS if versions.get(name)]:
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


OPTION_IDS = {
    "dtype='float32'": "float32",
    "dtype='bfloat16'": "bfloat16",
    "quantize_bits=8": "q8",
    "quantize_bits=4": "q4",
}
FIX = {"unverified": "run `athena models verify`", "missing": "run `athena models sync`"}
STATUS = {"fits": "pass", "tight": "warn", "does not fit": "warn", "unknown": "info"}


def model_checks(report: Report, host: Host, model: str) -> None:
    """Add the model section for `model` (a folder, or a hub id in the local cache)."""
    from athena import preflight
    from athena.host import machine_bandwidth

    hint: str | None = "pass a model folder (config.json, model*.safetensors, tokenizer files)"
    try:
        info = preflight.inspect_model(model)
    except Exception as error:  # the doctor must not be what breaks: say it, with the type
        detail = f"{model} could not be read: {type(error).__name__}: {error}"
        detail = str(error) if isinstance(error, SourceError) else detail
        report.add(Check("model.folder", "model folder", "fail", detail, True, hint=hint))
        return
    budget, on_cpu = preflight.machine_budget(host), preflight.mlx_on_cpu(host)
    data = preflight.describe(info, budget=budget, on_cpu=on_cpu, bandwidth=machine_bandwidth(host))
    detail = (
        f"{data['path']}: {data['parameters']:,} parameters, {', '.join(data['stored_dtypes'])}, "
        f"{preflight.gib(data['disk_bytes'])} on disk"
    )
    folder = {k: data[k] for k in ("path", "parameters", "stored_dtypes", "disk_bytes")}
    report.add(Check("model.folder", "model folder", "pass", detail, True, data=folder))
    problem: str | None = info.config_problem
    detail = problem or "agrees with the weights (layers, hidden size, experts, vocabulary)"
    hint = "use the config.json that belongs to these weights" if problem else None
    status, title, config = "fail" if problem else "pass", "config.json vs weights", data["config"]
    report.add(Check("model.config", title, status, detail, True, hint, {"config": config}))
    problem, tokenizer = info.tokenizer_problem, data["tokenizer"]
    detail = problem or f"{tokenizer['kind']}, {tokenizer['vocab']} ids"
    hint = "re-download the folder or copy its tokenizer files" if problem else None
    status = "fail" if problem else "pass"
    report.add(Check("model.tokenizer", "tokenizer", status, detail, True, hint, tokenizer))
    if (this := data["this_load"]) is not None:
        refused = this["status"] == "does not fit"
        hint = None
        if this["status"] in ("does not fit", "tight"):
            hint = data["problems"][-1] if refused else "it loads; other programs may swap"
        title = f"this load ({this['backend']}, {this['option']})"
        status = "fail" if refused else STATUS[this["status"]]
        detail = f"estimated resident {preflight.gib(this['resident'])}: {this['status']}"
        report.add(Check("model.load", title, status, detail, True, hint, this))
    for row in data["estimates"]:
        name = OPTION_IDS.get(row["option"], row["option"])
        status = STATUS[row["status"]]
        hint = None if status in ("pass", "info") else "pick an option that fits"
        detail = f"estimated resident {preflight.gib(row['resident'])}: {row['status']}"
        title = f"{row['option']} on {row['backend']}"
        report.add(Check(f"model.memory.{name}", title, status, detail, hint=hint, data=row))


def models_checks(
    report: Report, root: Path | None, head: Path | None
) -> tuple[dict[str, dict[str, str]], dict[str, str] | None]:
    """Add the models section; return the fingerprint's `models` and `action_head`."""
    statuses: list[tuple[str, str, str]] = []
    if root is None or not (root / "models.lock").exists():
        report.add(Check("models.lock", "models.lock", "skip", "no models.lock: no model locked"))
    else:
        try:
            from athena import modellock
        except ImportError:  # scripts/verify_env.py on Python < 3.11: no tomllib
            report.add(Check("models.lock", "models.lock", "info", "not read (needs Python 3.11+)"))
        else:
            try:
                statuses = list(modellock.locked_status(root))
            except SourceError as error:
                hint = "run `athena models lock --upgrade`"
                report.add(Check("models.lock", "models.lock", "fail", str(error), hint=hint))
    models: dict[str, dict[str, str]] = {}
    for name, commit, state in statuses:
        models[name] = {"commit": commit, "state": state}
        detail = f"{shown(commit[:12] if len(commit) == 40 else commit)} {state}"
        status = "pass" if state == "verified" else "warn"
        title = f"model {shown(name, 60)}"
        report.add(Check(f"models.{shown(name, 60)}", title, status, detail, hint=FIX.get(state)))
    if head is None:
        return models, None
    try:
        sha = file_digest(head)["sha256"]
    except OSError as error:
        detail = f"{shown(str(head))} cannot be read ({error.strerror or error})"
        hint = "pass the head file the runs attach (OLMoEConfig.action_head_path)"
        report.add(Check("models.action_head", "action head", "fail", detail, True, hint))
        return models, None
    report.add(Check("models.action_head", "action head", "pass", f"sha256 {sha[:12]}"))
    return models, {"sha256": sha}
