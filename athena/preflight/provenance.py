"""A derived folder's provenance (`athena-provenance.json`, written by `athena convert`):
source, recipe, versions and each file's {size, sha256}. `check` reads it bounded and compares
it with the folder now (sizes for the weights, hashes for the rest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from athena.source import file_digest, parse_json

FILE = "athena-provenance.json"
SCHEMA = "athena-provenance/1"
MAX_BYTES = 1 << 20  # a larger provenance file is not read


def folder_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative posix path: {size, sha256}} of every file under `folder` but the provenance
    file and hidden ones (the form a lock can pin a local folder by)."""
    return {
        path.relative_to(folder).as_posix(): file_digest(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name != FILE
        and not any(p.startswith(".") for p in path.relative_to(folder).parts)
    }


def check(folder: Path) -> dict[str, Any] | None:
    """The folder's provenance (None: none) with `changed` (recorded files missing or differing
    now, "NAME (why)") and `problem` (why it cannot be read, else None)."""
    path = folder / FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ValueError(f"larger than {MAX_BYTES} bytes")
        data, problem = parse_json(raw)  # bounded: NaN, deep nesting and huge integers refused
        if problem is not None:
            raise ValueError(problem)
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise ValueError(f"not {SCHEMA}")
        files = data.get("files")
        if not isinstance(files, dict):
            raise ValueError("no 'files'")
    except (OSError, ValueError) as error:
        return {"problem": f"{FILE} is unreadable ({str(error)[:100]})", "changed": []}
    root = folder.resolve()
    changed = [
        f"{name} ({why})" for name, entry in files.items() if (why := _why(root, name, entry))
    ]
    return {**data, "changed": changed, "problem": None}


def _why(root: Path, name: str, recorded: object) -> str | None:
    """Why the file recorded as `name` is not as recorded now (None: it is)."""
    try:
        path = (root / name).resolve()
        if not isinstance(recorded, dict) or not path.is_relative_to(root) or path == root:
            return "not a file of this folder"
        if not path.is_file():
            return "missing"
        if path.stat().st_size != recorded.get("size"):
            return "size"
        if path.suffix != ".safetensors" and file_digest(path)["sha256"] != recorded.get("sha256"):
            return "sha256"
    except (OSError, ValueError):  # a name too long, or with a NUL in it
        return "not a file of this folder"
    return None
