"""The CUDA-package audit of uv.lock per target (`uv tree`) and of the installed
distributions (docs/doctor.md, "The CUDA audit")."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from athena.doctor.lock import damaged_file
from athena.doctor.names import normalize, requirement_name
from athena.doctor.probe_child import distributions as installed_distributions
from athena.doctor.uvtree import (
    TARGETS,
    Target,
    UvError,
    chains_from_inverted,
    parse_tree,
    run_uv_tree,
)

# Package names (PEP 503 normalized) that only make sense with an NVIDIA GPU.
CUDA_PATTERNS = ("nvidia-*", "bitsandbytes", "triton", "cuda-*", "cupy-cuda*", "*-cu11", "*-cu12",
                 "*-cu13", "mlx-cuda*", "jax-cuda*", "onnxruntime-gpu", "tensorrt*")  # fmt: skip
CUDA_LOCAL_VERSION = re.compile(r"\+cu(da)?\d", re.IGNORECASE)  # torch 2.6.0+cu124
MAX_CHAINS = 3


def cuda_reason(name: str, version: str | None = None) -> str | None:
    """Why `name` (at `version`) is a CUDA package, or None when it is not."""
    normalized = normalize(name)
    for pattern in CUDA_PATTERNS:
        if fnmatch.fnmatchcase(normalized, pattern):
            return f"name matches {pattern}"
    if version and CUDA_LOCAL_VERSION.search(version):
        return f"version {version} is a CUDA build (+cu local version)"
    return None


@dataclass
class Offender:
    name: str
    version: str
    reason: str
    chains: list[list[str]] = field(default_factory=list)  # lock: project -> ... -> offender
    chain_count: int = 0  # how many chains uv shows (only MAX_CHAINS are kept)
    required_by: list[str] = field(default_factory=list)  # installed: direct dependents


@dataclass
class AuditResult:
    """One level of the audit for one target (lock) or one environment (installed)."""

    level: str  # "lock" or "installed"
    target: str  # "darwin-arm64", "linux-x86_64", or the interpreter for "installed"
    scope: str
    ok: bool
    packages: int = 0  # how many packages were examined
    offenders: list[Offender] = field(default_factory=list)
    error: str | None = None  # the audit could not run (no uv, stale lock, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.error:
            return f"could not audit: {self.error}"
        if not self.offenders:
            return f"{self.packages} packages, no CUDA package"
        names = ", ".join(f"{o.name} {o.version}" for o in self.offenders)
        return f"{len(self.offenders)} CUDA package(s) among {self.packages}: {names}"


# ---------------------------------------------------------------------------- the lock level


def audit_lock(root: Path, target: Target, *, uv: str | None = None) -> AuditResult:
    """The packages uv would install from `root`/uv.lock for `target`, checked for CUDA."""
    result = AuditResult(level="lock", target=target.name, scope=target.scope, ok=False)
    try:
        lines = parse_tree(run_uv_tree(root, target, uv=uv))
        seen: dict[str, str] = {}
        for line in lines:
            if line.depth == 0 and line.version is None:
                continue  # the project itself
            seen.setdefault(line.name, line.version or "")
        result.packages = len(seen)
        for name, version in sorted(seen.items()):
            reason = cuda_reason(name, version)
            if reason is None:
                continue
            inverted = run_uv_tree(
                root, target, "--invert", "--no-dedupe", "--package", name, uv=uv
            )
            chains = chains_from_inverted(parse_tree(inverted))
            result.offenders.append(
                Offender(name, version, reason, chains[:MAX_CHAINS], len(chains))
            )
    except UvError as error:
        result.error = damaged_file(root) or str(error)
        return result
    result.ok = not result.offenders
    return result


# ----------------------------------------------------------------------- the installed level


def _requirement_names(requires: Iterable[str]) -> set[str]:
    return {name for name in map(requirement_name, requires) if name}


def audit_installed(
    distributions: Iterable[Mapping[str, Any]], *, environment: str = "installed"
) -> AuditResult:
    """The CUDA packages among `distributions` (dicts with name, version, requires)."""
    dists = {normalize(d["name"]): d for d in distributions}
    dependents: dict[str, list[str]] = {}
    for name, dist in dists.items():
        for required in _requirement_names(dist.get("requires") or []):
            dependents.setdefault(required, []).append(name)
    offenders = []
    for name, dist in sorted(dists.items()):
        reason = cuda_reason(name, str(dist.get("version") or ""))
        if reason:
            required_by = sorted(d for d in dependents.get(name, []) if d in dists)
            offenders.append(Offender(name, str(dist.get("version")), reason, [], 0, required_by))
    scope = "every installed distribution"
    return AuditResult("installed", environment, scope, not offenders, len(dists), offenders)


def explained_by_torch(result: AuditResult, distributions: Iterable[Mapping[str, Any]]) -> bool:
    """True when every installed offender is torch's own CUDA build or what torch pulls in
    (PyPI's Linux torch wheel depends on nvidia-* and triton)."""
    dists = {normalize(d["name"]): d for d in distributions}
    if "torch" not in dists or not result.offenders:
        return False
    closure, todo = set(), ["torch"]
    while todo:
        name = todo.pop()
        if name in closure or name not in dists:
            continue
        closure.add(name)
        todo.extend(_requirement_names(dists[name].get("requires") or []))
    return all(offender.name in closure for offender in result.offenders)


# ------------------------------------------------------------------------------ the command


def run_audit(
    root: Path | None,
    *,
    targets: Sequence[Target] = TARGETS,
    lock: bool = True,
    installed: bool = True,
    uv: str | None = None,
) -> list[AuditResult]:
    """Both levels; `root` is the project checkout (None: no lock to audit)."""
    results = []
    missing = "no pyproject.toml + uv.lock found here or above; run it from the athena checkout "
    for target in targets if lock else ():
        if root is None:
            error = missing + "or pass --project"
            results.append(AuditResult("lock", target.name, target.scope, False, error=error))
        else:
            results.append(audit_lock(root, target, uv=uv))
    if installed:
        import sys

        results.append(audit_installed(installed_distributions(), environment=sys.executable))
    return results


def format_result(result: AuditResult) -> list[str]:
    """Human-readable lines for one result."""
    status = "ok  " if result.ok else "FAIL"
    lines = [f"{status} {result.level} {result.target} ({result.scope}): {result.summary()}"]
    for offender in result.offenders:
        lines.append(f"     - {offender.name} {offender.version}: {offender.reason}")
        for chain in offender.chains:
            lines.append(f"         {' -> '.join(chain)}")
        if offender.chain_count > len(offender.chains):
            lines.append(f"         (and {offender.chain_count - len(offender.chains)} more)")
        if offender.required_by:
            lines.append(f"         required by: {', '.join(offender.required_by)}")
    return lines


def hint(result: AuditResult) -> str | None:
    """What to do about a failed result."""
    if result.ok:
        return None
    if result.error:
        return result.error
    if result.level == "lock":
        return (
            "remove the CUDA dependency or give it a marker that keeps it off "
            f"{result.target} (see the chain above), then `uv lock`"
        )
    return (
        "this environment has CUDA packages: recreate it from the lock with the default groups "
        "(`uv sync --locked`; add `--group mlx-cpu` on Linux, not `--group torch`)"
    )


AUDIT_SCHEMA_ID = "athena-audit/1"


def audit_report(results: Sequence[AuditResult]) -> dict[str, Any]:
    """`athena audit --json`: {schema, ok, patterns, results: [AuditResult...]}."""
    return {
        "schema": AUDIT_SCHEMA_ID,
        "ok": all(result.ok for result in results),
        "patterns": [*CUDA_PATTERNS, "+cu local versions"],
        "results": [result.to_dict() for result in results],
    }


def render_audit(results: Sequence[AuditResult]) -> str:
    lines = [f"CUDA-package audit; patterns: {', '.join(CUDA_PATTERNS)}, +cu local versions"]
    for result in results:
        lines.extend(format_result(result))
        text = hint(result)
        if text and not result.error:
            lines.append(f"     -> {text}")
    lines.append("OK: no CUDA package." if all(r.ok for r in results) else "FAILED: see above.")
    return "\n".join(lines)
