"""The project checkout and what uv.lock pins (read with tomllib, no uv needed)."""

from __future__ import annotations

import re
from pathlib import Path

# athena/doctor/lock.py -> the checkout that holds pyproject.toml and uv.lock
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def normalize(name: str) -> str:
    """PEP 503 name: `Mlx_LM` -> `mlx-lm`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_project_root(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "uv.lock").is_file()


def find_project_root(start: Path | None = None) -> Path | None:
    """The athena checkout: the one this code runs from, else `start` (cwd) or a parent of it."""
    if is_project_root(PACKAGE_ROOT):
        return PACKAGE_ROOT
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if is_project_root(candidate):
            return candidate
    return None


class LockError(Exception):
    """uv.lock is missing or cannot be read (one sentence, for the report)."""


def locked_versions(lock_path: Path) -> dict[str, set[str]]:
    """Package name -> the versions uv.lock pins (a name can have one per platform fork)."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as error:
            raise LockError(
                "reading uv.lock needs Python >= 3.11 (tomllib) or the tomli package"
            ) from error
    try:
        data = tomllib.loads(lock_path.read_text(encoding="utf-8"))
    except OSError as error:
        raise LockError(f"cannot read {lock_path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise LockError(f"{lock_path} is not valid TOML ({error}); run `uv lock`") from error
    versions: dict[str, set[str]] = {}
    for package in data.get("package", []):
        name, version = package.get("name"), package.get("version")
        if name and version:
            versions.setdefault(normalize(name), set()).add(str(version))
    return versions
