"""How far Python code read into each weight file (`*.safetensors`): the structural form of
"the preflight reads no weight, only the header".

`watching()` wraps `open` (builtins and io, which pathlib's `Path.open`, `read_bytes` and
`read_text` call) while it is active: a weight file opened through it is counted, every other
file is opened as usual. `Reads.furthest[path]` is the furthest byte offset any read reached,
so a header-only reader ends at `8 + header_length`. A native reader (mlx, safetensors' mmap)
does not go through `open`: pair this with "no backend imported" (`sys.modules`).

Used in-process (`with watching() as reads: ...`) and by the tests' child processes (run with
this folder on `sys.path`).
"""

from __future__ import annotations

import builtins
import io
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SUFFIX = ".safetensors"
_REAL_OPEN = io.open


def header_end(file: Path | str) -> int:
    """The offset where a safetensors file's weights start: 8 + its header's length."""
    with _REAL_OPEN(file, "rb") as f:  # not counted, even while watching
        (length,) = struct.unpack("<Q", f.read(8))
    return 8 + int(length)


class Reads:
    def __init__(self) -> None:
        self.furthest: dict[str, int] = {}  # path -> furthest offset read

    def note(self, path: str, offset: int) -> None:
        self.furthest[path] = max(self.furthest.get(path, 0), offset)


class _Counted:
    """A binary file object that tells `reads` how far each read got."""

    def __init__(self, raw: Any, path: str, reads: Reads) -> None:
        self._raw, self._path, self._reads = raw, path, reads
        reads.note(path, 0)

    def _after(self, result: Any) -> Any:
        self._reads.note(self._path, self._raw.tell())
        return result

    def read(self, *args: Any) -> Any:
        return self._after(self._raw.read(*args))

    def readinto(self, buffer: Any) -> Any:
        return self._after(self._raw.readinto(buffer))

    def readline(self, *args: Any) -> Any:
        return self._after(self._raw.readline(*args))

    def readlines(self, *args: Any) -> Any:
        return self._after(self._raw.readlines(*args))

    def __iter__(self) -> Iterator[Any]:
        return iter(self.readline, b"")

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@contextmanager
def watching() -> Iterator[Reads]:
    reads = Reads()

    def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = _REAL_OPEN(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and os.fspath(file).endswith(SUFFIX):
            return _Counted(handle, os.path.abspath(os.fspath(file)), reads)
        return handle

    builtins.open = io.open = counting_open
    try:
        yield reads
    finally:
        builtins.open = io.open = _REAL_OPEN
