"""The CUDA-package audit (docs/doctor.md, "The CUDA audit"): uv.lock per platform view, read
with `uv tree`, and the installed distributions; `athena audit` and the doctor's audit section."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from athena.doctor.lock import FIXES, damaged_file, normalize, requirement_name
from athena.doctor.probe import distributions as installed_distributions
from athena.doctor.report import Check, Report, shareable, shown
from athena.host import Host


@dataclass(frozen=True)
class Target:
    """One platform view of uv.lock."""

    name: str  # darwin-arm64, linux-x86_64
    python_platform: str  # uv's --python-platform
    group_args: tuple[str, ...]  # which dependency groups uv includes
    scope: str  # said in the report


TARGETS = (
    Target("darwin-arm64", "aarch64-apple-darwin", ("--all-groups",), "every group and extra"),
    Target(
        "linux-x86_64",
        "x86_64-unknown-linux-gnu",
        ("--all-groups", "--no-group=torch"),
        "every group but torch, and every extra: the opt-in torch group is left out because "
        "PyPI's Linux torch is a CUDA build (nvidia-*, triton) by design",
    ),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


@dataclass(frozen=True)
class TreeLine:
    depth: int
    name: str
    version: str | None
    label: str  # as a chain shows it: "mlx[cpu] 0.32.4 (group: mlx-cpu)", "triton 3.1.0 (*)"


_TREE_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?(?: v(?P<version>\S+))?"
    r"(?P<rest>.*)$"
)


def parse_tree(text: str) -> list[TreeLine]:
    """`uv tree`'s text output: one entry per line, four characters of indent per level."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.lstrip("│├└─ \u00a0")
        match = _TREE_ENTRY.match(stripped)
        if not stripped or not match:
            continue
        depth = (len(raw) - len(stripped)) // 4
        name, version = normalize(match["name"]), match["version"]
        label = name + (match["extras"] or "") + (f" {version}" if version else "")
        lines.append(TreeLine(depth, name, version, f"{label} {match['rest'].strip()}".strip()))
    return lines


def uv_executable() -> str | None:
    """The uv that runs this (`uv run` sets $UV), else the one on PATH (or behind pyenv's shim)."""
    if (candidate := os.environ.get("UV")) and Path(candidate).is_file():
        return candidate
    found = shutil.which("uv")
    if found and Path(found).parent.name == "shims" and "pyenv" in found:
        return pyenv_uv() or found
    return found


def pyenv_uv() -> str | None:
    """The real uv behind pyenv's shim. The shim follows the checkout's .python-version: with
    the pin it looks for uv in the pinned Python, and a uv that pip installed into another
    pyenv Python is not there ("pyenv: uv: command not found"). pyenv's global version, asked
    from outside the checkout, is where `pip install uv` put it."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYENV_VERSION"}
    try:
        completed = subprocess.run(
            [pyenv, "which", "uv"], cwd=Path.home(), env=env, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    path = completed.stdout.strip()
    return path if completed.returncode == 0 and Path(path).is_file() else None


class UvError(Exception):
    """uv is missing or refused to show the tree (one sentence, for the report)."""


def run_uv_tree(root: Path, target: Target, *extra: str, uv: str | None = None) -> str:
    uv = uv or uv_executable()
    if uv is None:
        raise UvError("uv is not on PATH; install uv (https://docs.astral.sh/uv/) to audit uv.lock")
    command = [uv, "tree", "--locked", "--offline", "--no-progress", "--color", "never"]
    command += ["--python-platform", target.python_platform, *target.group_args, *extra]
    # without credentials (it works offline), so that its messages cannot repeat them
    shared = {name: shareable(name, value) for name, value in os.environ.items()}
    env = {name: value for name, value in shared.items() if value is not None}
    try:
        completed = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise UvError(f"`{' '.join(command[:2])}` could not run: {error}") from error
    if "Failed to parse `uv.lock`" in completed.stderr:
        cause = completed.stderr.partition("cause:")[2].strip().splitlines()[:1] or ["?"]
        raise UvError(f"uv cannot parse {root / 'uv.lock'} ({shown(cause[0])}): {FIXES['uv.lock']}")
    if completed.returncode != 0:
        detail = " ".join(line.strip() for line in completed.stderr.strip().splitlines()[-3:])
        raise UvError(f"`uv tree --locked` failed in {root}: {detail}")
    return completed.stdout


def chains_from_inverted(lines: Sequence[TreeLine]) -> list[list[str]]:
    """Every root-to-leaf path of `uv tree --invert`, reversed: project first, offender last."""
    chains: list[list[str]] = []
    path: list[TreeLine] = []
    for index, line in enumerate(lines):
        del path[line.depth :]
        path.append(line)
        next_depth = lines[index + 1].depth if index + 1 < len(lines) else 0
        if next_depth <= line.depth and len(path) > 1:
            chains.append([entry.label for entry in reversed(path)])
    return sorted(chains, key=len)


# Package names (PEP 503 normalized) that only make sense with an NVIDIA GPU.
CUDA_PATTERNS = ("nvidia-*", "bitsandbytes", "triton", "cuda-*", "cupy-cuda*", "*-cu11", "*-cu12",
                 "*-cu13", "mlx-cuda*", "jax-cuda*", "onnxruntime-gpu", "tensorrt*")  # fmt: skip
CUDA_LOCAL_VERSION = re.compile(r"\+cu(da)?\d", re.IGNORECASE)  # torch 2.6.0+cu124
MAX_CHAINS = 3


def cuda_reason(name: str, version: str | None = None) -> str | None:
    """Why `name` (at `version`) is a CUDA package, or None when it is not."""
    if matched := [p for p in CUDA_PATTERNS if fnmatch.fnmatchcase(normalize(name), p)]:
        return f"name matches {matched[0]}"
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

    def summary(self) -> str:
        if self.error:
            return f"could not audit: {self.error}"
        if not self.offenders:
            return f"{self.packages} packages, no CUDA package"
        names = ", ".join(f"{o.name} {o.version}" for o in self.offenders)
        return f"{len(self.offenders)} CUDA package(s) among {self.packages}: {names}"

    def hint(self) -> str | None:
        """What to do about a failed self."""
        if self.ok:
            return None
        if self.error:
            return self.error
        if self.level == "lock":
            return (
                "remove the CUDA dependency or give it a marker that keeps it off "
                f"{self.target} (see the chain above), then `uv lock`"
            )
        return (
            "this environment has CUDA packages: recreate it from the lock with the default groups "
            "(`uv sync --locked`; add `--group mlx-cpu` on Linux, not `--group torch`)"
        )


def audit_lock(root: Path, target: Target, *, uv: str | None = None) -> AuditResult:
    """The packages uv would install from `root`/uv.lock for `target`, checked for CUDA."""
    result = AuditResult(level="lock", target=target.name, scope=target.scope, ok=False)
    try:
        lines = parse_tree(run_uv_tree(root, target, uv=uv))
        seen: dict[str, str] = {}
        for line in (line for line in lines if line.depth or line.version):  # not the project
            seen.setdefault(line.name, line.version or "")
        result.packages = len(seen)
        for name, version in sorted(seen.items()):
            if reason := cuda_reason(name, version):
                why = ("--invert", "--no-dedupe", "--package", name)  # project -> ... -> name
                chains = chains_from_inverted(parse_tree(run_uv_tree(root, target, *why, uv=uv)))
                offender = Offender(name, version, reason, chains[:MAX_CHAINS], len(chains))
                result.offenders.append(offender)
        result.ok = not result.offenders
    except UvError as error:
        result.error = damaged_file(root) or str(error)
    return result


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
        if reason := cuda_reason(name, str(dist.get("version") or "")):
            required_by = sorted(dependents.get(name, []))
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
        results.append(audit_installed(installed_distributions(), environment=sys.executable))
    return results


def format_result(result: AuditResult) -> list[str]:
    """Human-readable lines for one result."""
    status = "ok  " if result.ok else "FAIL"
    lines = [f"{status} {result.level} {result.target} ({result.scope}): {result.summary()}"]
    for offender in result.offenders:
        lines.append(f"     - {offender.name} {offender.version}: {offender.reason}")
        lines += [f"         {' -> '.join(chain)}" for chain in offender.chains]
        if offender.chain_count > len(offender.chains):
            lines.append(f"         (and {offender.chain_count - len(offender.chains)} more)")
        if offender.required_by:
            lines.append(f"         required by: {', '.join(offender.required_by)}")
    return lines


AUDIT_SCHEMA_ID = "athena-audit/1"


def audit_report(results: Sequence[AuditResult]) -> dict[str, Any]:
    """`athena audit --json`: {schema, ok, patterns, results: [AuditResult...]}."""
    return {
        "schema": AUDIT_SCHEMA_ID,
        "ok": all(result.ok for result in results),
        "patterns": [*CUDA_PATTERNS, "+cu local versions"],
        "results": [asdict(result) for result in results],
    }


def render_audit(results: Sequence[AuditResult]) -> str:
    lines = [f"CUDA-package audit; patterns: {', '.join(CUDA_PATTERNS)}, +cu local versions"]
    for result in results:
        lines.extend(format_result(result))
        if result.hint() and not result.error:
            lines.append(f"     -> {result.hint()}")
    lines.append("OK: no CUDA package." if all(r.ok for r in results) else "FAILED: see above.")
    return "\n".join(lines)


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
        result = audit_lock(root, target, uv=uv)
        detail = f"{result.summary()} [{target.scope}]"
        if result.offenders:
            chains = [" -> ".join(o.chains[0]) if o.chains else o.name for o in result.offenders]
            detail += f"; pulled in by: {'; '.join(chains)}"
        status, hint = "pass" if result.ok else "fail", result.hint()
        report.add(Check(check_id, title, status, detail, True, hint, asdict(result)))
    installed = audit_installed(distributions, environment=environment)
    data = asdict(installed)
    detail, hint = installed.summary(), installed.hint()
    status = "pass" if installed.ok else "fail"
    if host.is_linux and explained_by_torch(installed, distributions):  # False when none is CUDA
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
