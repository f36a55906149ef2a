"""`athena doctor --compare`: two reports' fingerprints, side by side, differences only.

Each difference has a severity and, where one exists, the command that aligns the two
machines: what breaks reproducibility (uv.lock, a package's version or build, the Python
minor version or implementation, the platform, mlx's default device, a behaviour variable),
what may change numerics (chip, OS release, Metal, the nixpkgs pin) and what is informational
(memory, hostname, Python patch version, the wired limit). The exit code is 1 when something
that breaks reproducibility differs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena.doctor.report import SCHEMA_ID

SCHEMA_PREFIX = "athena-doctor/"
BREAKS, NUMERICS, INFO = "breaks reproducibility", "may change numerics", "informational"
SEVERITIES = (BREAKS, NUMERICS, INFO)
SYNC = "`uv sync --locked` on both (it makes .venv with the Python .python-version pins)"
COMMIT = "check out the same commit on both, then `uv sync --locked`"
DEVICE = "unset MLX_DEFAULT_DEVICE and ATHENA_MLX_DEVICE where they differ (or set them alike)"
FLAKE = "check out the same flake.lock on both, then `nix develop`"
# (label, dotted path in the fingerprint, severity, the command that aligns the two machines)
FIELDS = (
    ("uv.lock sha256", "uv_lock_sha256", BREAKS, COMMIT),
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
    """A doctor report of the current schema from `path`, or CompareError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise CompareError(f"{path} cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        text = ""  # not JSON either
    make = "make one with `athena doctor --json > FILE`"
    try:
        report = json.loads(text)
    except (ValueError, RecursionError):
        raise CompareError(f"{path} is not JSON, so not a doctor report: {make}") from None
    if not isinstance(report, dict) or "schema" not in report:
        raise CompareError(f"{path} is not an athena doctor report (no schema field): {make}")
    schema = report["schema"]
    if schema == SCHEMA_ID and isinstance(report.get("fingerprint"), dict):
        return report
    if schema == SCHEMA_ID:
        raise CompareError(f"{path} says {SCHEMA_ID} but has no fingerprint: {make}")
    if _schema_version(schema) < _schema_version(SCHEMA_ID):
        raise CompareError(
            f"{path} is an {schema} report, which has no fingerprint to compare: rerun "
            f"`athena doctor --json` with this athena ({SCHEMA_ID}) on that machine"
        )
    raise CompareError(
        f"{path} has schema {schema!r}, which this athena does not know (it reads {SCHEMA_ID}): "
        "compare with the athena that wrote it, or update this checkout"
    )


def _schema_version(schema: object) -> int:
    """2 for "athena-doctor/2"; a large number for anything else (unknown, not older)."""
    text = str(schema)
    number = text[len(SCHEMA_PREFIX) :] if text.startswith(SCHEMA_PREFIX) else ""
    return int(number) if number.isdigit() else 1 << 30


def _get(fingerprint: Any, path: str) -> Any:
    value: Any = fingerprint
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[list[Difference], list[Difference]]:
    """(breaking, expected) differences between two reports' fingerprints; `expected` holds
    what may change numerics, then what is informational."""
    fa, fb = _map(a.get("fingerprint")), _map(b.get("fingerprint"))
    rows = [
        Difference(what, _get(fa, path), _get(fb, path), severity=severity, fix=fix)
        for what, path, severity, fix in FIELDS
        if _get(fa, path) != _get(fb, path)
    ]
    if any(d.what == "Python minor version" for d in rows):  # said once, where it matters
        rows = [d for d in rows if d.what != "Python version"]
    packages_a, packages_b = _map(fa.get("packages")), _map(fb.get("packages"))
    for name in sorted(set(packages_a) | set(packages_b)):
        rows.extend(_package(name, _map(packages_a.get(name)), _map(packages_b.get(name)), fa, fb))
    env_a, env_b = _map(fa.get("env")), _map(fb.get("env"))
    for name in sorted(set(env_a) | set(env_b)):
        value_a, value_b = env_a.get(name), env_b.get(name)
        if value_a != value_b:
            fix = f"`unset {name}`" if value_b is None or value_a is None else None
            fix = fix or f"`export {name}=...` alike on both"
            rows.append(Difference(f"${name}", value_a, value_b, "(unset)", BREAKS, fix))
    breaking = [d for d in rows if d.severity == BREAKS]
    expected = [d for s in SEVERITIES[1:] for d in rows if d.severity == s]
    return breaking, expected


def _package(
    name: str, a: Mapping[str, Any], b: Mapping[str, Any], fa: Any, fb: Any
) -> list[Difference]:
    """A version difference, or the same version built differently (other wheel tags)."""
    reinstall = f"`uv sync --locked --reinstall-package {name}`"
    if a.get("installed") != b.get("installed"):
        off = [side for side, p in (("A", a), ("B", b)) if p.get("matches_lock") is False]
        where = f" on {' and '.join(off)}" if off else " on both"
        missing = "(not installed)"
        return [
            Difference(
                f"package {name}",
                a.get("installed"),
                b.get("installed"),
                missing,
                BREAKS,
                reinstall + where,
            )
        ]
    tags_a, tags_b = a.get("tags"), b.get("tags")
    wheel_a, wheel_b = _map(a.get("wheel")).get("sha256"), _map(b.get("wheel")).get("sha256")
    if not tags_a or not tags_b or (set(tags_a) == set(tags_b) and wheel_a == wheel_b):
        return []  # not installed, or a report without builds, or the same build
    os_a, os_b = _get(fa, "os.release"), _get(fb, "os.release")
    fix = reinstall + " on the side whose build is not from the lock"
    if wheel_a and wheel_b:
        fix = (
            f"uv installs the wheel for the newest OS each machine runs ({os_a} vs {os_b}): "
            "bring both to the same macOS major release for the same binary"
        )
    return [
        Difference(
            f"package {name} build",
            f"{', '.join(sorted(tags_a))} on {os_a}" + ("" if wheel_a else " (not from the lock)"),
            f"{', '.join(sorted(tags_b))} on {os_b}" + ("" if wheel_b else " (not from the lock)"),
            severity=BREAKS,
            fix=fix,
        )
    ]


def _show(value: Any, none: str = "(none)") -> str:
    if value is None:
        return none
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def render(names: tuple[str, str], breaking: list[Difference], expected: list[Difference]) -> str:
    """The differences as text, by severity, each with the command that aligns them."""
    rows = breaking + expected
    width = max([len(d.what) for d in rows] + [10])
    left = max([len(_show(d.a, d.none)) for d in rows] + [len(names[0])])
    header = f"  {'':{width}}  {names[0]:{left}}  |  {names[1]}"
    lines = [f"athena doctor --compare: {names[0]} vs {names[1]} (A vs B)"]
    for severity in SEVERITIES:
        group = [d for d in rows if d.severity == severity]
        lines += ["", f"{severity.capitalize()} ({len(group)}):"]
        lines += [header] if group else ["  nothing"]
        for d in group:
            lines.append(
                f"  {d.what:{width}}  {_show(d.a, d.none):{left}}  |  {_show(d.b, d.none)}"
            )
            if d.fix:
                lines.append(f"  {'':{width}}  -> {d.fix}")
    lines.append("")
    if breaking:
        lines.append(
            "NOT REPRODUCIBLE: run the -> commands above on the machine that differs; then "
            "compare again."
        )
    else:
        lines.append(
            "REPRODUCIBLE: the lock, the packages and their builds, Python, mlx's device and "
            "the behaviour variables agree."
        )
    return "\n".join(lines)


def to_dict(
    names: tuple[str, str], breaking: list[Difference], expected: list[Difference]
) -> dict[str, Any]:
    def rows(group: list[Difference]) -> list[dict[str, Any]]:
        return [
            {"what": d.what, "a": d.a, "b": d.b, "severity": d.severity, "fix": d.fix}
            for d in group
        ]

    return {
        "a": names[0],
        "b": names[1],
        "reproducible": not breaking,
        "breaking": rows(breaking),
        "expected": rows(expected),
    }
