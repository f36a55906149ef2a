"""The checkout's pinning files (pyproject.toml, uv.lock, .python-version, flake.lock) and the
names, versions and wheel tags in them, read with the standard library (verify_env.py runs on
a bare Python >= 3.9): each reader returns what it read or raises ProjectFileError."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# athena/doctor/lock.py -> the checkout that holds pyproject.toml and uv.lock
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
PIN_FILE = ".python-version"
FIXES = {
    "pyproject.toml": "fix it, or restore it with `git checkout pyproject.toml`",
    "uv.lock": "restore it (`git checkout uv.lock`) or write it anew (`uv lock`)",
    PIN_FILE: "write the minor version the flake's Python has (`3.12`), or `git checkout "
    ".python-version`",
    "flake.lock": "restore it (`git checkout flake.lock`) or write it anew (`nix flake lock`)",
}


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


def is_project_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "uv.lock").is_file()


def find_project_root(start: Path | None = None) -> Path | None:
    """The athena checkout: the one this code runs from, else `start` (cwd) or a parent of it."""
    if is_project_root(PACKAGE_ROOT):
        return PACKAGE_ROOT
    start = (start or Path.cwd()).resolve()
    return next((path for path in (start, *start.parents) if is_project_root(path)), None)


class ProjectFileError(Exception):
    """A checkout file that cannot be read or is damaged (one sentence naming it)."""


def _problem(path: Path, what: str) -> ProjectFileError:
    return ProjectFileError(f"{path} {what}: {FIXES.get(path.name, 'restore it')}")


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        what = f"cannot be read ({error.strerror or error}; `ls -ld {path}`)"
        raise _problem(path, what) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _problem(path, f"is not text (byte {error.start} is not UTF-8)") from None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ImportError:  # Python 3.9/3.10 running scripts/verify_env.py
        version = ".".join(map(str, sys.version_info[:2]))
        raise ProjectFileError(
            f"reading TOML needs Python >= 3.11 (tomllib), and this is {version}: run the "
            "doctor with the project's Python (`uv run athena doctor`)"
        ) from None
    try:
        return tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise _problem(path, f"is not valid TOML ({error})") from None


@dataclass(frozen=True)
class LockedWheel:
    file: str  # mlx-0.32.4-cp312-cp312-macosx_14_0_arm64.whl
    sha256: str | None
    tags: tuple[str, ...]  # cp312-cp312-macosx_14_0_arm64


@dataclass
class Lock:
    """What uv.lock pins: each package's versions (one per platform fork) and their wheels."""

    versions: dict[str, set[str]] = field(default_factory=dict)
    wheels: dict[tuple[str, str], list[LockedWheel]] = field(default_factory=dict)


def read_lock(path: Path) -> Lock:
    """uv.lock's packages, versions and wheels, or ProjectFileError."""
    data = read_toml(path)
    if not isinstance(data.get("version"), int):  # uv writes `version = 1` first
        raise _problem(path, "is empty" if not data else "has no `version = N` (uv writes one)")
    packages = data.get("package", [])
    if not isinstance(packages, list):
        raise _problem(path, f"has `package = {packages!r}`, not a list of [[package]] tables")
    lock = Lock()
    for index, package in enumerate(packages):
        name = package.get("name") if isinstance(package, dict) else None
        wheels = package.get("wheels", []) if isinstance(package, dict) else None
        if not isinstance(name, str) or not isinstance(wheels, list):
            raise _problem(path, f"has a [[package]] entry (number {index + 1}) without a name")
        version = package.get("version")
        if version is None:  # a workspace member or virtual package: no version
            continue
        name, version = normalize(name), str(version)
        lock.versions.setdefault(name, set()).add(version)
        for wheel in wheels:
            if not isinstance(wheel, dict):
                raise _problem(path, f"has a wheel of {name} that is not a table")
            file = os.path.basename(str(wheel.get("url") or wheel.get("filename") or ""))
            digest = str(wheel.get("hash") or "")
            sha256 = digest[len("sha256:") :] if digest.startswith("sha256:") else None
            locked = LockedWheel(file, sha256, tuple(wheel_tags(file)))
            lock.wheels.setdefault((name, version), []).append(locked)
    return lock


def read_python_pin(root: Path | None) -> str | None:
    """The Python the checkout pins in .python-version, to the minor version ("3.12" of
    "3.12.7" or "cpython@3.12"), or only the major one ("3" of "3": any Python 3, as uv and
    pyenv read it); None without one."""
    if root is None or not os.path.lexists(root / PIN_FILE):
        return None
    path = root / PIN_FILE
    lines = [line.strip() for line in read_text(path).splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if not lines:
        raise _problem(path, "is empty")
    version = release(lines[0].split("@")[-1].rsplit("-", 1)[-1])
    if not version:
        raise _problem(path, f"does not name a Python version ({lines[0][:40]!r})")
    return ".".join(str(part) for part in version[:2])


def read_flake_lock(root: Path | None) -> str | None:
    """The nixpkgs revision flake.lock pins (None without a flake.lock)."""
    if root is None or not os.path.lexists(root / "flake.lock"):
        return None
    path = root / "flake.lock"
    try:
        nodes = json.loads(read_text(path))["nodes"]
        return str(nodes["nixpkgs"]["locked"]["rev"])
    except ValueError:
        raise _problem(path, "is not JSON") from None
    except (KeyError, TypeError):
        raise _problem(
            path, "has no nodes.nixpkgs.locked.rev (not a flake.lock nix wrote)"
        ) from None


def read_checkout(root: Path | None) -> tuple[Lock | None, str | None, str | None, dict[str, Any]]:
    """(uv.lock, the pinned Python, flake.lock's nixpkgs revision, each file -> its problem)."""
    readers: dict[str, Callable[[Path], Any]] = {
        "pyproject.toml": read_toml,
        "uv.lock": read_lock,
        PIN_FILE: lambda path: read_python_pin(path.parent),
        "flake.lock": lambda path: read_flake_lock(path.parent),
    }
    values: dict[str, Any] = {}
    problems: dict[str, str | None] = {}
    for name, reader in readers.items() if root else ():
        try:
            values[name], problems[name] = reader(root / name), None  # type: ignore[operator]
        except ProjectFileError as error:
            problems[name] = str(error)
    return values.get("uv.lock"), values.get(PIN_FILE), values.get("flake.lock"), problems


def damaged_file(root: Path) -> str | None:
    """The first of pyproject.toml and uv.lock that cannot be read, as a sentence; None when
    both read (or when this Python has no tomllib to tell)."""
    try:
        read_toml(root / "pyproject.toml")
        read_lock(root / "uv.lock")
    except ProjectFileError as error:
        return None if "tomllib" in str(error) else str(error)
    return None
