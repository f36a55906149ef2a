"""The files of `athena encode`: texts in (.txt or .jsonl, one a line, streamed; `-` is stdin),
float32 (n, hidden) .npy out, renamed over the target only when every text is encoded. An empty
or bad line is a `BadLine` naming its number, never skipped: row i is line i."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from athena.atomic import replacing

if TYPE_CHECKING:
    import numpy as np

FORMATS = ("txt", "jsonl")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class BadLine(ValueError):
    """A line of the input that is not a text: the message names the line and what to do."""


def input_format(path: str, fmt: str | None) -> str:
    """`fmt` (--format, one of FORMATS), or None: the one the suffix of `path` names."""
    return fmt or ("jsonl" if Path(path).suffix.lower() in JSONL_SUFFIXES else "txt")


def open_input(path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
    """The input as bytes: `-` is stdin (left open), anything else a file."""
    return contextlib.nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb")


def read_texts(stream: IO[bytes], fmt: str, name: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each line of `stream`, one line in memory at a time."""
    for number, raw in enumerate(stream, 1):
        line = raw.removesuffix(b"\n").removesuffix(b"\r")
        try:
            decoded = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as error:
            raise BadLine(
                f"line {number} of {name} is not UTF-8 (byte {error.start + 1}); "
                "save the file as UTF-8"
            ) from None
        text = _jsonl_text(decoded, number, name) if fmt == "jsonl" else decoded
        if not text:
            raise BadLine(
                f"line {number} of {name} is empty; remove it (each line is one text, and row "
                "i of the output is line i)"
            )
        yield number, text


def _jsonl_text(line: str, number: int, name: str) -> str:
    what = 'a JSON string or an object with a "text" field'
    if not line.strip():
        return ""
    try:
        value: Any = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadLine(
            f"line {number} of {name} is not JSON ({error.msg} at column {error.colno}); "
            f"each line must be {what}"
        ) from None
    if isinstance(value, dict):
        value = value.get("text")
    if not isinstance(value, str):
        raise BadLine(f"line {number} of {name} is not {what}; fix or remove that line")
    return value


class NpyWriter(contextlib.AbstractContextManager["NpyWriter"]):
    """Append float32 rows to a temporary .npy beside `target`; `commit()` renames it over
    `target`, leaving the `with` block without a commit (an error) removes it."""

    def __init__(self, target: str | os.PathLike[str]) -> None:
        self.rows, self.width = 0, 0
        self._writing = replacing(target)
        self._file = open(self._writing.__enter__(), "wb")  # noqa: SIM115 (commit or __exit__ closes it)

    def __exit__(self, *exc: object) -> None:
        if not self._file.closed:  # not committed: the temporary file is removed
            self._file.close()
            self._writing.__exit__(RuntimeError, RuntimeError("discarded"), None)

    def _write_header(self) -> None:
        """At the start of the file; as long for any row count (numpy pads it for growth)."""
        import numpy as np

        self._file.seek(0)
        header = {"descr": "<f4", "fortran_order": False, "shape": (self.rows, self.width)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def append(self, vectors: np.ndarray) -> None:
        import numpy as np

        rows = np.ascontiguousarray(vectors, dtype="<f4")
        if not self.width:
            self.width = int(rows.shape[1])
            self._write_header()
        self._file.write(rows.tobytes())
        self.rows += len(rows)

    def commit(self) -> None:
        self._write_header()
        self._file.close()
        self._writing.__exit__(None, None, None)  # fsync, rename over the target
