"""Package names, versions and wheel tags via `packaging`; below each ImportError fallback,
the same for well-formed input under a bare Python >= 3.9 (scripts/verify_env.py)."""

from __future__ import annotations

import re

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
    from packaging.version import InvalidVersion, Version
except ImportError:  # a bare Python running scripts/verify_env.py
    Requirement = None  # type: ignore[assignment,misc]


def normalize(name: str) -> str:
    """PEP 503 name: `Mlx_LM` -> `mlx-lm`."""
    if Requirement is not None:
        return str(canonicalize_name(name))
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str | None:
    """The normalized name of a requirement string (`numpy>=2; extra == "x"` -> `numpy`)."""
    if Requirement is not None:
        try:
            return normalize(Requirement(requirement).name)
        except InvalidRequirement:
            return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return normalize(match.group(1)) if match else None


def release(version: object) -> tuple[int, ...] | None:
    """(3, 12, 7) of "3.12.7", or None when it is not a version."""
    if Requirement is not None:
        try:
            return Version(str(version)).release
        except InvalidVersion:
            return None
    match = re.match(r"\d+(\.\d+)*", str(version or ""))
    return tuple(int(part) for part in match.group(0).split(".")) if match else None


def wheel_tags(filename: str) -> list[str]:
    """The tags of a wheel file name, `cp312-cp312-macosx_14_0_arm64`; [] if it is not one."""
    if Requirement is not None:
        try:
            return sorted(str(tag) for tag in parse_wheel_filename(filename)[3])
        except InvalidWheelFilename:
            return []
    parts = filename[: -len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) < 5:
        return []
    python, abi, platform = (part.split(".") for part in parts[-3:])
    return sorted(f"{p}-{a}-{m}" for p in python for a in abi for m in platform)
