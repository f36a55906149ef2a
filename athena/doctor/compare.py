"""`athena doctor --compare`: two reports' fingerprints, side by side, differences only.

Two groups: what breaks reproducibility (uv.lock, a package version, the Python minor version
or implementation, the platform, mlx's default device, a behaviour variable) and what is
expected to differ between two machines (chip, memory, hostname, OS release, Python patch
version, Metal, the wired limit). The exit code is 1 when the first group is not empty.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena.doctor.report import SCHEMA_ID

SCHEMA_PREFIX = "athena-doctor/"
# (label, path in the fingerprint) of the single values compared, by group
BREAKING = (
    ("uv.lock sha256", ("uv_lock_sha256",)),
    ("Python minor version", ("python", "minor")),
    ("Python implementation", ("python", "implementation")),
    ("platform", ("os", "target")),
    ("mlx default device", ("mlx_device",)),
)
EXPECTED = (
    ("chip", ("chip",)),
    ("memory (bytes)", ("total_memory",)),
    ("hostname", ("hostname",)),
    ("OS release", ("os", "release")),
    ("Python version", ("python", "version")),
    ("Metal", ("metal",)),
    ("wired limit", ("wired_limit",)),
)


class CompareError(Exception):
    """A file that cannot be compared (one sentence)."""


@dataclass(frozen=True)
class Difference:
    what: str
    a: Any
    b: Any
    none: str = "(none)"  # how a missing value reads: "(not installed)", "(unset)"


def load_report(path: Path) -> dict[str, Any]:
    """A doctor report of the current schema from `path`, or CompareError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CompareError(f"{path} cannot be read ({error.strerror or error})") from None
    make = "make one with `athena doctor --json > FILE`"
    try:
        report = json.loads(text)
    except ValueError:
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


def _get(fingerprint: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = fingerprint
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def compare(
    a: Mapping[str, Any], b: Mapping[str, Any]
) -> tuple[list[Difference], list[Difference]]:
    """(breaking, expected) differences between two reports' fingerprints."""
    fa, fb = a["fingerprint"], b["fingerprint"]
    breaking = [
        Difference(what, _get(fa, path), _get(fb, path))
        for what, path in BREAKING
        if _get(fa, path) != _get(fb, path)
    ]
    packages_a, packages_b = fa.get("packages") or {}, fb.get("packages") or {}
    for name in sorted(set(packages_a) | set(packages_b)):
        version_a = (packages_a.get(name) or {}).get("installed")
        version_b = (packages_b.get(name) or {}).get("installed")
        if version_a != version_b:
            breaking.append(Difference(f"package {name}", version_a, version_b, "(not installed)"))
    env_a, env_b = fa.get("env") or {}, fb.get("env") or {}
    for name in sorted(set(env_a) | set(env_b)):
        if env_a.get(name) != env_b.get(name):
            breaking.append(Difference(f"${name}", env_a.get(name), env_b.get(name), "(unset)"))
    expected = [
        Difference(what, _get(fa, path), _get(fb, path))
        for what, path in EXPECTED
        if _get(fa, path) != _get(fb, path)
    ]
    if any(d.what == "Python minor version" for d in breaking):  # said once, where it matters
        expected = [d for d in expected if d.what != "Python version"]
    return breaking, expected


def _show(value: Any, none: str = "(none)") -> str:
    if value is None:
        return none
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def render(names: tuple[str, str], breaking: list[Difference], expected: list[Difference]) -> str:
    """The differences as text, in two groups; nothing else."""
    rows = breaking + expected
    width = max([len(d.what) for d in rows] + [10])
    left = max([len(_show(d.a, d.none)) for d in rows] + [len(names[0])])
    header = f"  {'':{width}}  {names[0]:{left}}  |  {names[1]}"
    lines = [f"athena doctor --compare: {names[0]} vs {names[1]}"]
    for title, group in (
        ("Breaks reproducibility", breaking),
        ("Expected to differ between machines", expected),
    ):
        lines.append("")
        lines.append(f"{title} ({len(group)}):")
        if not group:
            lines.append("  nothing")
            continue
        lines.append(header)
        lines += [
            f"  {d.what:{width}}  {_show(d.a, d.none):{left}}  |  {_show(d.b, d.none)}"
            for d in group
        ]
    lines.append("")
    if breaking:
        lines.append(
            "NOT REPRODUCIBLE: on the machine that differs, `uv sync --locked` (in the pinned "
            "Python, .python-version) and unset the variables that differ; then compare again."
        )
    else:
        lines.append(
            "REPRODUCIBLE: the lock, the packages, Python, mlx's device and the "
            "behaviour variables agree."
        )
    return "\n".join(lines)


def to_dict(
    names: tuple[str, str], breaking: list[Difference], expected: list[Difference]
) -> dict[str, Any]:
    def rows(group: list[Difference]) -> list[dict[str, Any]]:
        return [{"what": d.what, "a": d.a, "b": d.b} for d in group]

    return {
        "a": names[0],
        "b": names[1],
        "reproducible": not breaking,
        "breaking": rows(breaking),
        "expected": rows(expected),
    }
