"""`athena tiny-model` / write_tiny_olmoe never overwrites or deletes what it did not write.

A non-empty folder is refused (unless --force, which replaces only athena's own files); the
checkpoint is written into a temporary folder and swapped into place, so a writer that is
interrupted (a full disk, SIGKILL: real child processes killed at each file-system call)
leaves the old checkpoint or the new one, whole; two writers of one folder never mix.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

import pytest

from athena.checkpoints import FolderBusy, FolderNotEmpty, write_tiny_olmoe
from athena.cli import main
from athena.source import read_config, read_safetensors_header

FOREIGN = {  # what a real model folder might hold besides athena's file names
    "model-00001-of-00002.safetensors": b"\x00" * 64,
    "model-00002-of-00002.safetensors": b"\x01" * 64,
    "model.safetensors.index.json": b'{"weight_map": {}}\n',
    "README.md": b"# my real model\n",
}
# A writer in a child process that, as it opens `pause_at` in its temporary folder (its own
# stdlib patched), reports it and waits for the test (which lets it go on). The two-writer races
# below start `python -m athena.cli` as a user does.
CHILD = """
import builtins
import io
import sys
import traceback

from athena.cli import main

real_open = io.open

def pausing_open(file, *args, **kwargs):
    if str(file).endswith("/" + pause_at) and ".athena-tmp-" in str(file):
        steps.send(pause_at)
        steps.recv()
    return real_open(file, *args, **kwargs)

builtins.open = io.open = pausing_open
sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
try:
    code = main(["tiny-model", *args])
except BaseException:
    sys.stderr.write(traceback.format_exc())
    code = 1
steps.send(("exit", sys.stdout.getvalue(), sys.stderr.getvalue()))
sys.exit(code)
"""
_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(["athena.checkpoints", "athena.cli"])


@dataclass
class Writer:
    process: BaseProcess
    steps: Connection  # the test's end: the file it paused at, then ("exit", stdout, stderr)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], dict[str, bytes]]:
    """reference(seed): the bytes of each file of a tiny checkpoint with that seed."""
    cache: dict[int, dict[str, bytes]] = {}
    root = tmp_path_factory.mktemp("reference")

    def files(seed: int) -> dict[str, bytes]:
        if seed not in cache:
            cache[seed] = _files(write_tiny_olmoe(root / f"seed{seed}", seed=seed))
        return cache[seed]

    return files


def _model_folder(folder: Path, seed: int | None = None) -> Path:
    """A folder holding a real model's shards and README, plus (with `seed`) athena's files of
    an earlier tiny checkpoint, as if someone had already written one there."""
    folder.mkdir(parents=True)
    for name, content in FOREIGN.items():
        (folder / name).write_bytes(content)
    if seed is not None:
        write_tiny_olmoe(folder, seed=seed, overwrite=True)
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _leftovers(folder: Path) -> list[str]:
    """The writer's own entries beside the folder (temporary folders, the lock file)."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}."))


def _start(pause_at: str, *args: str) -> Writer:
    ours, theirs = _FORKS.Pipe()
    namespace = {"pause_at": pause_at, "args": args, "steps": theirs}
    process = _FORKS.Process(target=exec, args=(CHILD, namespace), daemon=True)
    process.start()
    theirs.close()
    return Writer(process, ours)


def _wait_for(child: Writer, step: str) -> None:
    while True:
        assert child.steps.poll(120), f"the writer did not reach {step} within 120 s"
        message = child.steps.recv()
        assert isinstance(message, str), f"the writer ended before {step}: {message[2]}"
        if message == step:
            return


def _release(child: Writer) -> tuple[int, str, str]:
    child.steps.send("go on")
    while True:
        assert child.steps.poll(120), "the writer did not finish within 120 s"
        message = child.steps.recv()
        if not isinstance(message, str):
            break
    child.process.join(60)
    assert child.process.exitcode is not None
    return child.process.exitcode, message[1], message[2]


# -- refusing, and --force ------------------------------------------------------------------


def test_a_folder_with_files_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    folder = _model_folder(tmp_path / "real-model")
    before = _files(folder)
    with pytest.raises(FolderNotEmpty, match="overwrite=True") as error:
        write_tiny_olmoe(folder)
    assert error.value.entries == sorted(FOREIGN)
    assert _files(folder) == before
    assert _leftovers(folder) == []  # no temporary folder, no lock file left


def test_the_cli_refuses_a_folder_with_files_in_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _model_folder(tmp_path / "real-model")
    assert main(["tiny-model", str(folder)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"athena tiny-model: {folder} is not empty (4 entries: README.md, "
        "model-00001-of-00002.safetensors, model-00002-of-00002.safetensors, ...); choose a "
        "new or empty folder, or pass --force to replace only the tiny checkpoint's own files "
        "in it\n"
    )
    assert _files(folder) == FOREIGN


def test_force_replaces_only_athenas_files(
    tmp_path: Path,
    reference: Callable[[int], dict[str, bytes]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = _model_folder(tmp_path / "real-model", seed=1)
    assert _files(folder) == {**FOREIGN, **reference(1)}
    assert main(["tiny-model", str(folder), "--force"]) == 0
    assert capsys.readouterr().out == (
        f"wrote {folder} (tiny, 271,936 parameters, float32); left 4 other file(s) in it as "
        "they were\n"
    )
    assert _files(folder) == {**FOREIGN, **reference(0)}
    assert _leftovers(folder) == []


def test_an_empty_folder_is_written_without_force(
    tmp_path: Path, reference: Callable[[int], dict[str, bytes]]
) -> None:
    (tmp_path / "empty").mkdir(mode=0o750)
    assert write_tiny_olmoe(tmp_path / "empty") == tmp_path / "empty"
    assert _files(tmp_path / "empty") == reference(0)
    assert (tmp_path / "empty").stat().st_mode & 0o7777 == 0o750  # the folder's own mode kept
    write_tiny_olmoe(tmp_path / "new")
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o777 & ~_umask()  # as mkdir makes it
    assert sorted(os.listdir(tmp_path)) == ["empty", "new"]  # no temporary folder or lock left


def test_a_symlink_names_the_folder_it_points_to(
    tmp_path: Path, reference: Callable[[int], dict[str, bytes]]
) -> None:
    (tmp_path / "link").symlink_to(tmp_path / "models")
    write_tiny_olmoe(tmp_path / "link")
    assert (tmp_path / "link").is_symlink()
    assert _files(tmp_path / "models") == reference(0)
    with pytest.raises(FolderNotEmpty):
        write_tiny_olmoe(tmp_path / "link")


# -- interrupted writes -----------------------------------------------------------------------


def test_a_full_disk_leaves_nothing(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) makes writing model.safetensors
    fail with EFBIG, as a full disk fails with ENOSPC."""
    script = (
        "import resource, signal, sys\n"
        "from athena.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))\n"
        "sys.exit(main(['tiny-model', sys.argv[1]]))\n"
    )
    target = tmp_path / "olmoe"
    child = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 1, child.stderr
    assert child.stderr == (
        f"athena tiny-model: could not write the checkpoint for {target} (File too large); "
        "it was not created\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("force", [False, True], ids=["new-folder", "force"])
def test_a_writer_killed_at_any_step_leaves_the_old_checkpoint_or_the_new(
    force: bool,
    tmp_path: Path,
    reference: Callable[[int], dict[str, bytes]],
    kill_at_each_step: Callable[..., int],
) -> None:
    folder = _model_folder(tmp_path / "olmoe", seed=1) if force else tmp_path / "olmoe"
    old = {**FOREIGN, **reference(1)}
    new = {**(FOREIGN if force else {}), **reference(0)}
    states: list[str] = []

    def check(step: int) -> None:
        if not folder.exists():
            assert not force, f"killed at step {step}: the folder is gone"
            states.append("missing")
            return
        files = _files(folder)
        assert files == new or (force and files == old), f"killed at step {step}: a mix"
        assert read_config(folder)["model_type"] == "olmoe"  # it reads (FOREIGN's shards do not)
        assert read_safetensors_header(folder / "model.safetensors")
        states.append("new" if files == new else "old")

    code = (
        "from athena.checkpoints import write_tiny_olmoe\n"
        f"write_tiny_olmoe({str(folder)!r}, overwrite={force})"
    )
    setup = "" if force else f"import shutil; shutil.rmtree({str(folder)!r}, ignore_errors=True)"
    # Imported once, before the children fork: the writer imports tokenizers and numpy.random
    # when it runs, a third of each child's time.
    modules = ("athena.checkpoints", "tokenizers", "numpy.random")
    steps = kill_at_each_step(code, check, *modules, setup=setup)
    assert steps > 10 and states[0] == ("old" if force else "missing") and states[-1] == "new"
    write_tiny_olmoe(folder, overwrite=True)  # what the kills left beside it is removed
    assert _files(folder) == new
    assert _leftovers(folder) == []


# -- two writers at once ----------------------------------------------------------------------


@pytest.mark.parametrize("force", [False, True], ids=["new-folder", "force"])
def test_a_second_writer_is_refused_while_the_first_writes(
    force: bool, tmp_path: Path, reference: Callable[[int], dict[str, bytes]]
) -> None:
    folder = _model_folder(tmp_path / "olmoe") if force else tmp_path / "olmoe"
    flags = ["--force"] if force else []
    first = _start("tokenizer.json", str(folder), *flags)
    _wait_for(first, "tokenizer.json")  # the first holds the lock, half-way through
    second = subprocess.run(
        [sys.executable, "-m", "athena.cli", "tiny-model", str(folder), "--seed", "1", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert second.stderr == (
        f"athena tiny-model: another process is writing a checkpoint into {folder} right now; "
        "wait for it to finish, then try again\n"
    )
    code, _, err = _release(first)
    assert code == 0, err
    assert _files(folder) == {**(FOREIGN if force else {}), **reference(0)}
    assert _leftovers(folder) == []


def test_the_lock_is_per_folder_whatever_path_names_it(tmp_path: Path) -> None:
    first = _start("model.safetensors", str(tmp_path / "olmoe"))
    _wait_for(first, "model.safetensors")
    (tmp_path / "sub").mkdir()
    try:
        with pytest.raises(FolderBusy, match="another process is writing"):
            write_tiny_olmoe(tmp_path / "sub" / ".." / "olmoe")
        write_tiny_olmoe(tmp_path / "other")  # another folder beside it is not blocked
    finally:
        assert _release(first)[0] == 0


@pytest.mark.parametrize("force", [False, True], ids=["new-folder", "force"])
def test_two_writers_started_together_end_with_one_complete_checkpoint(
    force: bool, tmp_path: Path, reference: Callable[[int], dict[str, bytes]]
) -> None:
    """No pausing: real races, a few rounds. Each writer succeeds or says why it did not."""
    for round_ in range(3):
        folder = tmp_path / f"round{round_}"
        if force:
            _model_folder(folder)
        command = [sys.executable, "-m", "athena.cli", "tiny-model", str(folder)]
        flags = ["--force"] if force else []
        writers = [
            subprocess.Popen(
                [*command, "--seed", str(seed), *flags],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for seed in (0, 1)
        ]
        results = [(w.communicate(timeout=120)[1], w.returncode)[::-1] for w in writers]
        succeeded = [code == 0 for code, _ in results]
        for code, err in results:
            assert code == 0 or (
                code == 1
                and ("another process is writing" in err or "is not empty" in err)
                and err.count("\n") == 1
            ), err
        assert any(succeeded)
        if not force:
            assert succeeded.count(True) == 1  # the second finds the folder written
        foreign = FOREIGN if force else {}
        assert _files(folder) in ({**foreign, **reference(0)}, {**foreign, **reference(1)})
        assert _leftovers(folder) == [], os.listdir(tmp_path)
