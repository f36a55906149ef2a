"""Writing a checkpoint folder atomically: the lock beside it, the temporary folder, the one
rename (or the file-by-file replacement, config.json last) and the fsyncs that make it durable."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from athena import checkpoints as _package  # _step is the package's: tests set its _on_step

# The files write_tiny_olmoe writes, in the order they are put in place: config.json last, so
# a folder is only ever loadable once everything else is there.
FILES = (
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "config.json",
)


class FolderNotEmpty(FileExistsError):
    """The target folder already has files and overwrite was not asked for."""

    def __init__(self, folder: Path, entries: list[str]) -> None:
        self.folder, self.entries = folder, entries
        super().__init__(self.sentence("overwrite=True"))

    def sentence(self, flag: str) -> str:
        """One sentence naming the folder, what is in it, and `flag`, the way to overwrite."""
        count = len(self.entries)
        shown = ", ".join(self.entries[:3]) + (", ..." if count > 3 else "")
        return (
            f"{self.folder} is not empty ({count} {'entry' if count == 1 else 'entries'}: "
            f"{shown}); choose a new or empty folder, or pass {flag} to replace only the "
            "tiny checkpoint's own files in it"
        )


class FolderBusy(BlockingIOError):
    """Another process is writing a checkpoint into the same folder right now."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


@contextlib.contextmanager
def _writer_lock(target: Path, shown: Path) -> Iterator[None]:
    """An exclusive flock on `.NAME.athena-lock` beside the target, or FolderBusy at once.

    The lock file is removed on release; a writer that opened it before the removal finds
    that the path no longer names its file and opens it again (so two never both hold it)."""
    import fcntl

    path = target.parent / f".{target.name}.athena-lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(
                f"another process is writing a checkpoint into {shown} right now; wait for it "
                "to finish, then try again"
            ) from None
        try:
            same = os.path.samestat(os.stat(path), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def _remove_leftovers(target: Path) -> None:
    """Temporary folders of earlier writes of `target` that were killed (we hold the lock,
    so no live writer owns them)."""
    prefix = f".{target.name}.athena-tmp-"
    for leftover in target.parent.iterdir():
        if leftover.name.startswith(prefix) and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)


def _rename_folder(temp: Path, target: Path, shown: Path) -> None:
    """Move the finished folder to a target that does not exist or is empty (rename(2)
    replaces an empty folder, and fails if something appeared in it meanwhile)."""
    if target.is_dir():  # an empty folder: the new one takes its permissions
        os.chmod(temp, target.stat().st_mode & 0o7777)
    try:
        os.rename(temp, target)
    except OSError as error:
        if target.is_dir() and any(target.iterdir()):
            raise FolderNotEmpty(shown, sorted(p.name for p in target.iterdir())) from None
        raise error
    _fsync_folder(target.parent)
    _package._step("target:folder")


def _replace_files(temp: Path, target: Path) -> None:
    """Put each file of FILES from `temp` into the existing `target`, config.json removed
    first and replaced last; files of other names in `target` are left alone."""
    config = target / "config.json"
    if config.is_symlink() or config.exists():
        config.unlink()
        _fsync_folder(target)
    for name in FILES:
        os.replace(temp / name, target / name)
        _package._step(f"target:{name}")
    _fsync_folder(target)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _write_durably(path: Path, content: bytes) -> None:
    with path.open("wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable (a no-op where folders cannot be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
