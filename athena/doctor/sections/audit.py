"""The audit section: the CUDA-package audit of uv.lock (per target) and of the installed
packages (athena/doctor/audit.py does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from athena.doctor import audit as cuda_audit
from athena.doctor.report import Check, Report
from athena.doctor.uvtree import TARGETS, uv_executable
from athena.host import Host


def audit_checks(
    report: Report,
    host: Host,
    root: Path | None,
    distributions: list[dict[str, Any]],
    environment: str,
) -> None:
    uv = uv_executable()
    for target in TARGETS:
        check_id, title = f"audit.lock.{target.name}", f"lock, {target.name}"
        hint: str | None
        if root is None:
            detail = "no pyproject.toml + uv.lock here (not a checkout)"
            hint = "run from the athena checkout, or `athena audit --project DIR`"
            report.add(Check(check_id, title, "skip", detail, hint=hint))
            continue
        if uv is None:
            hint = "install uv to audit uv.lock (https://docs.astral.sh/uv/)"
            report.add(Check(check_id, title, "skip", "uv is not on PATH", hint=hint))
            continue
        result = cuda_audit.audit_lock(root, target, uv=uv)
        detail = f"{result.summary()} [{target.scope}]"
        if result.offenders:
            chains = [" -> ".join(o.chains[0]) if o.chains else o.name for o in result.offenders]
            detail += f"; pulled in by: {'; '.join(chains)}"
        status, hint = "pass" if result.ok else "fail", cuda_audit.hint(result)
        report.add(Check(check_id, title, status, detail, True, hint, result.to_dict()))
    installed = cuda_audit.audit_installed(distributions, environment=environment)
    data = installed.to_dict()
    detail, hint = installed.summary(), cuda_audit.hint(installed)
    status = "pass" if installed.ok else "fail"
    torch = host.is_linux and cuda_audit.explained_by_torch(installed, distributions)
    if not installed.ok and torch:
        data["explained_by_torch"] = True
        status = "warn"
        detail = (
            f"{len(installed.offenders)} CUDA packages, all pulled in by torch: PyPI's Linux "
            "torch is a CUDA build, installed here by the opt-in torch group"
        )
        hint = (
            "fine on Linux (torch uses the CPU when there is no GPU); for a CUDA-free env sync "
            "without the torch group (`uv sync --locked --group mlx-cpu`); `athena audit` fails "
            "on this environment on purpose"
        )
    required = status != "warn"
    report.add(Check("audit.installed", "installed packages", status, detail, required, hint, data))
