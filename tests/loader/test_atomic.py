"""athena.atomic: a file or folder is written whole or not at all, and survives a crash.

The faults are real: a child process killed (SIGKILL) at each of its file-system calls in
turn, a file-size limit (RLIMIT_FSIZE, as a full disk), a folder the writer may not write to (a
child that drops root with setuid, since root ignores permissions).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from athena.atomic import append_line, replacing, replacing_folder, write_file

KillAtEachStep = Callable[..., int]
OLD, NEW = b"old contents\n", b"new contents, longer than the old\n" * 1000


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_target_is_replaced_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("old")
    with replacing(target) as temporary:
        temporary.write_text("new")
        assert temporary.parent == tmp_path and temporary != target
        assert target.read_text() == "old", "the target changed before the block ended"
    assert target.read_text() == "new"
    assert _names(tmp_path) == ["data.json"]


def test_an_error_in_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "head.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert _names(tmp_path) == ["head.safetensors"]


def test_the_temporary_name_matches_no_glob_of_the_target_kind(tmp_path: Path) -> None:
    target = tmp_path / "features.safetensors"
    with replacing(target) as temporary:
        temporary.write_text("x")
        assert list(tmp_path.glob("*.safetensors")) == []


def test_a_symlink_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(OLD)
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "data.txt"
    target.symlink_to(elsewhere)
    write_file(target, NEW)
    assert not target.is_symlink() and target.read_bytes() == NEW
    assert elsewhere.read_bytes() == OLD


def test_a_planted_temporary_is_refused_not_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who guessed the temporary name and put a link there: O_EXCL refuses it."""
    monkeypatch.setattr(os, "urandom", lambda n: b"guessed"[:n])  # make the name guessable
    victim = tmp_path / "victim"
    victim.write_bytes(OLD)
    (tmp_path / f".data.txt.athena-tmp-{b'gues'.hex()}").symlink_to(victim)
    with pytest.raises(FileExistsError, match=r"could not write .*data.txt \(File exists\)"):
        write_file(tmp_path / "data.txt", NEW)
    assert victim.read_bytes() == OLD and not (tmp_path / "data.txt").exists()


def test_the_mode_of_the_replaced_file_is_kept_else_the_umask_decides(tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    kept.write_bytes(OLD)
    kept.chmod(0o640)
    write_file(kept, NEW)
    assert kept.stat().st_mode & 0o777 == 0o640
    write_file(tmp_path / "new", NEW)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o666 & ~_umask()


def test_lines_are_appended_whole(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n')
    append_line(log, '{"step": 2}')
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'


# -- a process killed at each step ------------------------------------------------------------


def test_a_file_write_killed_at_any_step_leaves_the_old_file_or_the_new(
    tmp_path: Path, kill_at_each_step: KillAtEachStep
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(OLD)
    seen = set()

    def check(step: int) -> None:
        content = target.read_bytes()
        assert content in (OLD, NEW), f"killed at step {step}: {len(content)} bytes"
        seen.add(content)
        if step == 0:  # the write completed: nothing beside the file
            assert _names(tmp_path) == ["data.bin"]

    code = f"from athena.atomic import write_file\nwrite_file({str(target)!r}, {NEW!r})"
    steps = kill_at_each_step(code, check)
    assert steps >= 8 and seen == {OLD, NEW}, (steps, len(seen))


# A C library without renameat2 / renamex_np (as on some systems): the old folder is renamed
# aside, then the new one in (patched in the child only, before the kills start counting).
NO_EXCHANGE = """
import ctypes

class Libc:
    def __init__(self, *args, **kwargs):
        pass

ctypes.CDLL = Libc
"""


@pytest.mark.parametrize("exchange", [True, False], ids=["swap", "aside-then-in"])
def test_a_folder_replacement_killed_at_any_step_leaves_one_whole_folder(
    exchange: bool, tmp_path: Path, kill_at_each_step: KillAtEachStep
) -> None:
    target = tmp_path / "checkpoint"
    target.mkdir()
    for name in ("a", "b", "c"):
        (target / name).write_bytes(OLD)
    old = {name: OLD for name in ("a", "b", "c")}
    new = {name: NEW for name in ("a", "b", "c", "d")}
    seen = []

    def check(step: int) -> None:
        folder = target
        if not exchange and not target.exists():  # killed between the two renames
            (folder,) = tmp_path.glob(".checkpoint.athena-old-*")
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert files in (old, new), f"killed at step {step}: {sorted(files)}"
        seen.append(files == new)

    code = (
        "from pathlib import Path\n"
        "from athena.atomic import replacing_folder\n"
        f"with replacing_folder(Path({str(target)!r}), overwrite=True) as temporary:\n"
        "    for name in 'abcd':\n"
        f"        (temporary / name).write_bytes({NEW!r})\n"
    )
    kill_at_each_step(code, check, setup="" if exchange else NO_EXCHANGE)
    assert False in seen and seen[-1] is True
    # What the kills left beside it (temporary folders, the lock file) the next write removes.
    with replacing_folder(target, overwrite=True) as temporary:
        (temporary / "a").write_bytes(OLD)
    assert _names(tmp_path) == ["checkpoint"] and _names(target) == ["a"]


def test_an_old_folder_left_aside_by_a_kill_is_put_back(tmp_path: Path) -> None:
    """Killed between renaming the old folder aside and the new one in (where no swap in one
    step exists): the next write of the folder finds it missing and puts the old one back."""
    aside = tmp_path / ".checkpoint.athena-old-12345678"
    aside.mkdir()
    (aside / "a").write_bytes(OLD)
    target = tmp_path / "checkpoint"
    with pytest.raises(RuntimeError), replacing_folder(target, overwrite=True):
        raise RuntimeError("the new write fails too")
    assert _names(tmp_path) == ["checkpoint"] and (target / "a").read_bytes() == OLD


# -- a full disk, a folder that may not be written --------------------------------------------


def _child(script: str, *, limit: int | None = None, user: int | None = None) -> str:
    """Run `script` (athena.atomic imported, OLD/NEW defined) in a child under a file-size
    limit or as another user; its stderr (the error's one sentence), checking it failed."""
    setup = "import os, resource, signal, sys\nfrom athena.atomic import *\n"
    if limit is not None:
        setup += (
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))\n"
        )
    if user is not None:
        setup += f"os.setgid({user}); os.setuid({user})\n"
    program = f"{setup}try:\n    {script}\nexcept OSError as e:\n    sys.exit(str(e))\n"
    child = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 1, child.stderr
    return child.stderr


def test_a_full_disk_keeps_the_old_file_and_says_so_in_one_sentence(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(OLD)
    err = _child(f"write_file({str(target)!r}, {NEW!r})", limit=1000)
    assert err == f"could not write {target} (File too large); it is as it was\n"
    assert target.read_bytes() == OLD and _names(tmp_path) == ["data.bin"]


def test_a_full_disk_leaves_a_log_without_half_a_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1}\n')
    line = '{"step": 2, "pad": "' + "x" * 2000 + '"}'
    err = _child(f"append_line({str(log)!r}, {line!r})", limit=1000)
    assert err == f"could not add a line to {log} (No space left on device)\n"  # a short write
    assert log.read_text() == '{"step": 1}\n'


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: the child drops to user 65534")
def test_a_folder_the_writer_may_not_write_keeps_the_old_file() -> None:
    folder = Path(tempfile.mkdtemp())  # in /tmp: pytest's own folders are root's alone (0700)
    try:
        folder.chmod(0o755)  # others may look, not write
        target = folder / "data.bin"
        target.write_bytes(OLD)
        err = _child(f"write_file({str(target)!r}, {NEW!r})", user=65534)
        assert err == f"could not write {target} (Permission denied); it is as it was\n"
        assert target.read_bytes() == OLD and _names(folder) == ["data.bin"]
    finally:
        shutil.rmtree(folder)
