"""Package names, versions and wheel tags, read with the standard library alone: the doctor
runs on a bare Python >= 3.9 (scripts/verify_env.py), and what it reads is well-formed."""

from __future__ import annotations

import re


def normalize(name: str) -> str:
    """PEP 503 name: `Mlx_LM` -> `mlx-lm`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str | None:
    """The normalized name of a requirement string (`numpy>=2; extra == "x"` -> `numpy`)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return normalize(match.group(1)) if match else None


def release(version: object) -> tuple[int, ...] | None:
    """(3, 12, 7) of "3.12.7", or None when it is not a version."""
    match = re.match(r"\d+(\.\d+)*", str(version or ""))
    return tuple(int(part) for part in match.group(0).split(".")) if match else None


def wheel_tags(filename: str) -> list[str]:
    """The tags of a wheel file name, `cp312-cp312-macosx_14_0_arm64`; [] if it is not one."""
    parts = filename[: -len(".whl")].split("-") if filename.endswith(".whl") else []
    if len(parts) < 5:
        return []
    python, abi, platform = (part.split(".") for part in parts[-3:])
    return sorted(f"{p}-{a}-{m}" for p in python for a in abi for m in platform)
