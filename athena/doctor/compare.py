"""The report's fingerprint, what makes two machines compute alike, and `athena doctor
--compare` of two reports' fingerprints: differences only, by severity, each with its fix
(docs/doctor.md, "Two machines"). Reports are read bounded, checked, shown escaped."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena.doctor.lock import Lock, normalize
from athena.doctor.probe import ProbeResult
from athena.doctor.report import SCHEMA_ID, SCHEMA_PATH, schema_problem, shareable, shown
from athena.doctor.sections import WIRED_LIMIT_MACOS, python_minor
from athena.host import Host
from athena.source import file_digest

SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # what every report is held to
FINGERPRINT = SCHEMA["properties"]["fingerprint"]
# The behaviour variables (schema.json's fingerprint.env): each one listed, and no other.
ENV_NAMES = tuple(FINGERPRINT["properties"]["env"]["required"])


def lock_sha256(path: Path) -> str | None:
    try:
        return str(file_digest(path)["sha256"])
    except OSError:
        return None


def behaviour_env(
    environ: Mapping[str, str], root: Path | None, home: str | None = None
) -> dict[str, str | None]:
    """The behaviour variables, set (value) or unset (None), safe to share (`shareable`; a
    secret is "(set)"). The checkout's path is written `$PROJECT` and the home folder `~`,
    so two machines' values compare as what they mean."""
    home = home if home is not None else os.path.expanduser("~")
    result: dict[str, str | None] = dict.fromkeys(ENV_NAMES)
    for name in (name for name in ENV_NAMES if name in environ):
        value = shareable(name, environ[name]) or "(set)"
        value = value if root is None else value.replace(str(root), "$PROJECT")
        result[name] = value.replace(home, "~") if home and home != "/" else value
    return result


def locked_packages(
    lock: Lock | None, distributions: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]] | None:
    """For each package in uv.lock: the installed version (None: not here), whether uv.lock pins
    it, its wheel tags, and the locked wheel with those tags (None: not from the lock)."""
    if lock is None:
        return None
    installed = {normalize(str(d["name"])): d for d in distributions}
    packages: dict[str, dict[str, Any]] = {}
    for name in sorted(lock.versions):
        dist = installed.get(name)
        version = None if dist is None else str(dist["version"])
        tags = None if dist is None else list(dist.get("tags") or [])
        wheels = lock.wheels.get((name, str(version)), [])  # the one built for its tags, if any
        wheel = next((w for w in wheels if set(w.tags) & set(tags or [])), None)
        packages[name] = {
            "installed": version,
            "matches_lock": None if version is None else version in lock.versions[name],
            "tags": tags,
            "wheel": None if wheel is None else {"file": wheel.file, "sha256": wheel.sha256},
        }
    return packages


def fingerprint(
    *,
    host: Host,
    python: Mapping[str, Any],
    root: Path | None,
    lock: Lock | None,
    distributions: Iterable[Mapping[str, Any]],
    probe: ProbeResult | None,
    pin: str | None,
    flake: str | None = None,
    environ: Mapping[str, str] | None = None,
    models: Mapping[str, Any] | None = None,
    action_head: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fingerprint block of a report (schema.json's `fingerprint`)."""
    device = (probe.step("mlx.default_device") or {}) if probe else {}  # as the probe saw it
    wired: dict[str, Any] = {"supported": (host.macos_version or ()) >= WIRED_LIMIT_MACOS}
    wired["iogpu_wired_limit_mb"] = host.sysctl.get("iogpu.wired_limit_mb")
    return {
        "uv_lock_sha256": lock_sha256(root / "uv.lock") if root else None,
        "models_lock_sha256": lock_sha256(root / "models.lock") if root else None,
        "models": dict(models or {}),
        "action_head": None if action_head is None else dict(action_head),
        "packages": locked_packages(lock, distributions),
        "python": {
            "version": python.get("version"),
            "minor": python_minor(python.get("version")),
            "implementation": python.get("implementation"),
            "pinned": pin,
        },
        "os": {
            "system": host.system,
            "target": host.target,
            "release": host.os_version,
            "macos_version": host.os_version if host.is_mac else None,
        },
        "chip": host.chip,
        "hostname": platform.node() or None,
        "total_memory": host.total_memory,
        "metal": None if host.metal is None else host.metal.available,
        "mlx_device": str(device["device"]) if device.get("ok") and device.get("device") else None,
        "wired_limit": wired if host.is_mac else None,
        "env": behaviour_env(os.environ if environ is None else environ, root),
        "flake_nixpkgs": flake,
    }


MAX_REPORT_BYTES = 8 << 20  # a real report is ~100 KB
BREAKS, NUMERICS, INFO = "breaks reproducibility", "may change numerics", "informational"
SEVERITIES = (BREAKS, NUMERICS, INFO)
SYNC = "`uv sync --locked` on both (it makes .venv with the Python .python-version pins)"
COMMIT = "check out the same commit on both, then `uv sync --locked`"
DEVICE = "set ATHENA_MLX_DEVICE alike on both (or unset it on both)"
FLAKE = "check out the same flake.lock on both, then `nix develop`"
MODELS = "check out the same models.lock on both, then `athena models sync`"
HEAD = "copy the same action head file to both (the one OLMoEConfig.action_head_path names)"
# (label, dotted path in the fingerprint, severity, the command that aligns the two machines)
FIELDS = (
    ("uv.lock sha256", "uv_lock_sha256", BREAKS, COMMIT),
    ("models.lock sha256", "models_lock_sha256", BREAKS, MODELS),
    ("action head sha256", "action_head.sha256", BREAKS, HEAD),
    ("Python minor version", "python.minor", BREAKS, SYNC),
    ("Python implementation", "python.implementation", BREAKS, SYNC),
    ("platform", "os.target", BREAKS, None),
    ("mlx default device", "mlx_device", BREAKS, DEVICE),
    ("flake.lock nixpkgs", "flake_nixpkgs", NUMERICS, FLAKE),
    ("chip", "chip", NUMERICS, None),
    ("OS release", "os.release", NUMERICS, "update both to the same OS release"),
    ("Metal", "metal", NUMERICS, None),
    ("memory (bytes)", "total_memory", INFO, None),
    ("hostname", "hostname", INFO, None),
    ("Python version", "python.version", INFO, None),
    ("wired limit", "wired_limit", INFO, None),
)
# What a verdict needs beyond schema.json: null (or empty) in either report, nothing to compare.
NEEDED = ("uv_lock_sha256", "packages", "python.minor", "python.implementation", "os.target")
PACKAGE_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)  # PEP 508
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
NOT_A_NAME = "not a valid name, so no command: the report was edited or damaged"


class CompareError(Exception):
    """A file that cannot be compared (one sentence)."""


@dataclass(frozen=True)
class Difference:
    what: str
    a: Any
    b: Any
    none: str = "(none)"  # how a missing value reads: "(not installed)", "(unset)"
    severity: str = BREAKS
    fix: str | None = None  # the command that aligns the two machines, where one exists


def load_report(path: Path) -> dict[str, Any]:
    """A doctor report of the current schema from `path`, ready to compare, or CompareError."""
    make = "make one with `athena doctor --json > FILE`"
    try:
        with path.open("rb") as file:
            data = file.read(MAX_REPORT_BYTES + 1)
    except OSError as error:
        raise CompareError(f"{path} cannot be read ({error.strerror or error})") from None
    if len(data) > MAX_REPORT_BYTES:
        raise CompareError(f"{path} is over {MAX_REPORT_BYTES >> 20} MiB, so not a doctor report")
    try:
        report = json.loads(data.decode("utf-8"))
    except (ValueError, RecursionError):
        raise CompareError(f"{path} is not JSON, so not a doctor report: {make}") from None
    if not isinstance(report, dict) or "schema" not in report:
        raise CompareError(f"{path} is not an athena doctor report (no schema field): {make}")
    if report["schema"] != SCHEMA_ID:
        raise CompareError(
            f"{path} has schema {shown(report['schema'])}, and this athena reads {SCHEMA_ID}: "
            "rerun `athena doctor --json` with the same athena on both machines"
        )
    return check_report(report, str(path))


def check_report(report: dict[str, Any], name: str) -> dict[str, Any]:
    """`report` if schema.json admits it and it holds what a verdict needs, else CompareError."""
    problem = schema_problem(report, SCHEMA)
    fingerprint = _map(report.get("fingerprint"))
    empty = next((path for path in NEEDED if _get(fingerprint, path) in (None, {}, "")), None)
    if problem is None and empty is not None:
        problem = f"fingerprint.{empty} is empty (uv.lock or the Python could not be read there)"
    if problem is not None:
        raise CompareError(
            f"cannot compare: in {name}, {problem}; rerun `athena doctor --json` with this "
            "athena in the checkout on that machine"
        )
    return report


def _get(fingerprint: Any, path: str) -> Any:
    value: Any = fingerprint
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _package(name: str, a: Any, b: Any, fa: Any, fb: Any) -> list[Difference]:
    """A version difference, or the same version built differently (other wheel tags)."""
    a, b = _map(a), _map(b)
    quoted = shlex.quote(name) if PACKAGE_NAME.match(name) else None
    reinstall = f"`uv sync --locked --reinstall-package {quoted}`"
    if a.get("installed") != b.get("installed"):
        off = [side for side, p in (("A", a), ("B", b)) if p.get("matches_lock") is False]
        where = f" on {' and '.join(off)}" if off else " on both"
        fix = reinstall + where if quoted else NOT_A_NAME
        installed = a.get("installed"), b.get("installed")
        return [Difference(f"package {name}", *installed, "(not installed)", fix=fix)]
    tags_a, tags_b = a.get("tags") or [], b.get("tags") or []
    wheel_a, wheel_b = _map(a.get("wheel")).get("sha256"), _map(b.get("wheel")).get("sha256")
    if set(tags_a) == set(tags_b) and wheel_a == wheel_b:
        return []  # not installed on either side, or the same build
    os_a, os_b = shown(_get(fa, "os.release")), shown(_get(fb, "os.release"))
    fix = reinstall + " on the side whose build is not from the lock" if quoted else NOT_A_NAME
    if wheel_a and wheel_b:
        fix = (
            f"uv installs the wheel for the newest OS each machine runs ({os_a} vs {os_b}): "
            "bring both to the same macOS major release for the same binary"
        )
    build_a, build_b = (
        f"{', '.join(sorted(tags))} on {release}" + ("" if wheel else " (not from the lock)")
        for tags, release, wheel in ((tags_a, os_a, wheel_a), (tags_b, os_b, wheel_b))
    )
    return [Difference(f"package {name} build", build_a, build_b, fix=fix)]


def _variable(name: str, a: Any, b: Any, fa: Any, fb: Any) -> list[Difference]:
    if a == b:
        return []
    quoted = shlex.quote(name) if ENV_NAME.match(name) else None
    fix = f"`unset {quoted}`" if None in (a, b) else f"`export {quoted}=...` alike on both"
    return [Difference(f"${name}", a, b, "(unset)", BREAKS, fix if quoted else NOT_A_NAME)]


def _model(name: str, a: Any, b: Any, fa: Any, fb: Any) -> list[Difference]:
    """Another commit (or the model on one side only), or its files not verified on a side.
    The commands take no name: `athena models verify` and `sync` check every locked model."""
    a, b = _map(a), _map(b)
    if a.get("commit") != b.get("commit"):
        commits = a.get("commit"), b.get("commit")
        fix = "`athena models sync` on both after aligning models.lock"
        return [Difference(f"model {name}", *commits, "(not locked)", fix=fix)]
    fixes = [
        f"`athena models {'verify' if m.get('state') == 'unverified' else 'sync'}` on {side}"
        for side, m in (("A", a), ("B", b))
        if m.get("state") != "verified"
    ]
    if not fixes:
        return []
    return [Difference(f"model {name} files", a.get("state"), b.get("state"), fix="; ".join(fixes))]


# The keyed sections of a fingerprint: (its key, the rows for one name found on either side).
SECTIONS = (("packages", _package), ("env", _variable), ("models", _model))


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[list[Difference], list[Difference]]:
    """(breaking, expected) differences of two fingerprints; expected: numerics, then info."""
    fa, fb = _map(a.get("fingerprint")), _map(b.get("fingerprint"))
    rows = [
        Difference(what, _get(fa, path), _get(fb, path), severity=severity, fix=fix)
        for what, path, severity, fix in FIELDS
        if _get(fa, path) != _get(fb, path)
    ]
    if any(d.what == "Python minor version" for d in rows):  # said once, where it matters
        rows = [d for d in rows if d.what != "Python version"]
    for key, differences in SECTIONS:
        section_a, section_b = _map(fa.get(key)), _map(fb.get(key))
        for name in sorted(set(section_a) | set(section_b)):
            rows.extend(differences(name, section_a.get(name), section_b.get(name), fa, fb))
    breaking = [d for d in rows if d.severity == BREAKS]
    expected = [d for s in SEVERITIES[1:] for d in rows if d.severity == s]
    return breaking, expected


def _show(value: Any, none: str = "(none)") -> str:
    return none if value is None else shown(value)


def render(names: tuple[str, str], breaking: list[Difference], expected: list[Difference]) -> str:
    """The differences as text, by severity, each with the command that aligns them."""
    rows = breaking + expected
    names = (shown(names[0]), shown(names[1]))
    width = max([len(shown(d.what)) for d in rows] + [10])
    left = max([len(_show(d.a, d.none)) for d in rows] + [len(names[0])])
    header = f"  {'':{width}}  {names[0]:{left}}  |  {names[1]}"
    lines = [f"athena doctor --compare: {names[0]} vs {names[1]} (A vs B)"]
    for severity in SEVERITIES:
        group = [d for d in rows if d.severity == severity]
        lines += ["", f"{severity.capitalize()} ({len(group)}):"]
        lines += [header] if group else ["  nothing"]
        for d in group:
            a, b = _show(d.a, d.none), _show(d.b, d.none)
            lines.append(f"  {shown(d.what):{width}}  {a:{left}}  |  {b}")
            if d.fix:
                lines.append(f"  {'':{width}}  -> {d.fix}")
    bad = "NOT REPRODUCIBLE: run the -> commands above on the machine that differs; then compare "
    good = "REPRODUCIBLE: the lock, the packages and their builds, Python, mlx's device and the "
    lines += ["", bad + "again." if breaking else good + "behaviour variables agree."]
    return "\n".join(lines)


def to_dict(
    names: tuple[str, str], breaking: list[Difference], expected: list[Difference]
) -> dict[str, Any]:
    def value(v: Any) -> Any:
        return v if v is None or isinstance(v, (bool, int, float)) else shown(v)

    def rows(group: list[Difference]) -> list[dict[str, Any]]:
        return [
            {"what": shown(d.what), "a": value(d.a), "b": value(d.b)}
            | {"severity": d.severity, "fix": d.fix}
            for d in group
        ]

    return {
        "a": shown(names[0]),
        "b": shown(names[1]),
        "reproducible": not breaking,
        "breaking": rows(breaking),
        "expected": rows(expected),
    }
