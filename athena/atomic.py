"""Durable writes: a file (`replacing`, `write_file`) or a folder (`replacing_folder`, swapped
in one step under a lock) is replaced whole or not at all and survives a crash; `append_line`
adds a whole line to a log. A temporary is made beside the target with O_EXCL, fsynced, given
the old mode and renamed over it (a symlink there is replaced, not written through)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path

TEMPORARY = ".athena-tmp-"  # in the names of temporary files and folders
_ASIDE = ".athena-old-"  # an old folder renamed aside (where no swap in one step exists)


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


def reason(error: OSError) -> str:
    """What the system said (`File too large`, or what caused an error of ours), no errno."""
    if error.strerror is None and isinstance(error.__cause__, OSError):
        return reason(error.__cause__)
    return error.strerror or str(error)


def _beside(target: Path, kind: str = TEMPORARY) -> Path:
    return target.with_name(f".{target.name}{kind}{os.urandom(4).hex()}")


@contextlib.contextmanager
def replacing(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A new empty file beside `target`, renamed over it (durably) when the block succeeds and
    removed when it raises (an OSError: one sentence naming `target`). It is flocked while
    written: killed writers' (unlocked) temporaries go at the next write of `target`."""
    target = Path(target)
    existed = os.path.lexists(target)
    temporary, lock = target, -1
    try:
        temporary = _beside(target)
        lock = _open_locked(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        _remove_dead(target)
        yield temporary
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, os.stat(target).st_mode & 0o777)
        fsync(temporary)
        os.replace(temporary, target)
        fsync(target.parent)
    except OSError as error:  # the finally clause below still removes the temporary
        kept = "it is as it was" if existed else "it was not created"
        raise type(error)(f"could not write {target} ({reason(error)}); {kept}") from error
    finally:
        if lock >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            os.close(lock)


def _open_locked(path: Path, flags: int, *, wait: bool = True) -> int:
    """`path` opened (a new file's mode: the umask's) and flocked while it is still the file at
    `path`; BlockingIOError if another process holds it and not `wait`."""
    while True:
        fd = os.open(path, flags | os.O_NOFOLLOW, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            if os.path.samestat(os.lstat(path), os.fstat(fd)):
                return fd
        except FileNotFoundError:  # removed as dead between our open and our lock: again
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _remove_dead(target: Path) -> None:
    """Temporary files of `target` that no live writer holds (their writer was killed)."""
    import glob

    for leftover in target.parent.glob(f".{glob.escape(target.name)}{TEMPORARY}*"):
        with contextlib.suppress(OSError):  # gone, a link, held by a live writer: left alone
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if os.path.isfile(leftover):
                    os.unlink(leftover)
            finally:
                os.close(fd)


def write_file(target: str | os.PathLike[str], content: bytes | str) -> Path:
    """Replace `target` with `content` (text as UTF-8), durably; return its path."""
    with replacing(target) as temporary, open(temporary, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return Path(target)


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Add `line` and a newline to the end of `path` in one write (O_APPEND), fsynced: the
    file has the line whole or not at all (a short write, e.g. a full disk, is undone)."""
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError as error:
            os.ftruncate(fd, size)
            raise type(error)(f"could not add a line to {path} ({reason(error)})") from error
    finally:
        os.close(fd)


def fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file, or a folder's renames, to disk (where a folder cannot be, nothing)."""
    folder = os.path.isdir(path)
    fd = os.open(path, os.O_RDONLY | (0 if folder else os.O_NOFOLLOW))
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing_folder(
    target: Path,
    shown: Path | None = None,
    *,
    overwrite: bool = False,
    replaces: Collection[str] | None = None,
) -> Iterator[Path]:
    """A new empty folder that takes `target`'s place in one step when the block succeeds, under
    a lock (FolderBusy for a second writer). A `target` with entries is FolderNotEmpty (named
    as `shown`) unless `overwrite`; `replaces`: only those names are replaced, the old folder's
    other entries carried over (hard links, else copies). The old folder's mode is kept."""
    shown = target if shown is None else shown
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.athena-lock"  # removed after: a writer that opened
    try:  # it before finds it gone and opens it again, so two never both hold it
        fd = _open_locked(lock, os.O_RDWR | os.O_CREAT, wait=False)
    except BlockingIOError:
        raise FolderBusy(
            f"another process is writing a checkpoint into {shown} right now; wait for it "
            "to finish, then try again"
        ) from None
    try:
        _recover(target)
        entries = sorted(os.listdir(target)) if target.is_dir() else []
        if entries and not overwrite:
            raise FolderNotEmpty(shown, entries)
        temporary = _beside(target)
        temporary.mkdir()
        try:
            yield temporary
            kept = [] if replaces is None else [n for n in entries if n not in replaces]
            for name in kept:
                if not (temporary / name).exists():
                    _carry(target / name, temporary / name)
            for root, _, files in os.walk(temporary):
                for path in (os.path.join(root, name) for name in files):
                    if not os.path.islink(path):
                        fsync(path)
                fsync(root)
            if target.is_dir():
                os.chmod(temporary, target.stat().st_mode & 0o7777)
            if entries:
                _swap(temporary, target)  # `temporary` now names the old folder
            else:
                try:  # rename(2) replaces an empty folder, and fails if one appeared in it
                    os.rename(temporary, target)
                except OSError:
                    if target.is_dir() and os.listdir(target):
                        raise FolderNotEmpty(shown, sorted(os.listdir(target))) from None
                    raise
            fsync(target.parent)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # releases the lock


def _recover(target: Path) -> None:
    """After killed writes of `target` (we hold the lock): an old folder renamed aside goes
    back if `target` is missing, then the temporary and aside folders are removed."""
    temporary, aside = f".{target.name}{TEMPORARY}", f".{target.name}{_ASIDE}"
    for leftover in sorted(target.parent.iterdir()):  # the asides first: "old" < "tmp"
        if not leftover.name.startswith((temporary, aside)) or leftover.is_symlink():
            continue
        if leftover.name.startswith(aside) and not os.path.lexists(target):
            os.rename(leftover, target)
        elif leftover.is_dir():
            shutil.rmtree(leftover)


def _carry(source: Path, destination: Path) -> None:
    def link(source: str, destination: str) -> None:
        try:
            os.link(source, destination, follow_symlinks=False)
        except OSError:  # another device, or a file system without hard links
            shutil.copy2(source, destination, follow_symlinks=False)

    if source.is_dir() and not source.is_symlink():
        shutil.copytree(source, destination, symlinks=True, copy_function=link)
    else:
        link(str(source), str(destination))


def _swap(new: Path, old: Path) -> None:
    """Exchange two folders in one step (Linux renameat2, macOS renamex_np); where the system
    cannot, rename the old one aside (`_recover` puts it back after a crash), then the new in."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    a, b = os.fsencode(new), os.fsencode(old)
    if hasattr(libc, "renameat2"):
        done = libc.renameat2(-100, a, -100, b, 2)  # AT_FDCWD, RENAME_EXCHANGE
    elif hasattr(libc, "renamex_np"):
        done = libc.renamex_np(a, b, 2)  # RENAME_SWAP
    else:
        done = -1
        ctypes.set_errno(errno.ENOSYS)
    if done == 0:
        return
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        raise OSError(code, os.strerror(code), str(old))
    aside = _beside(old, _ASIDE)
    os.rename(old, aside)
    os.rename(new, old)
    os.rename(aside, new)  # removed by the caller, as the old folder
