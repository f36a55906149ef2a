"""The model lock (#29) end to end: `athena models lock | sync | verify` and locked loads,
against a hub served on 127.0.0.1 by tests/hubserver.py (no internet, no real hub).

The commands that talk to the hub run in a child process (`python -m athena.cli`) with their
own HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE=0: huggingface_hub reads HF_HUB_OFFLINE at its
import, and the test process may be offline (as CI is). Loads from the cache run in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from athena import cli, modellock
from athena.checkpoints import write_tiny_olmoe
from athena.errors import SourceError
from athena.models.olmoe import OLMoEConfig, OLMoEModel
from tests.hubserver import Hub, serve

ROOT = Path(__file__).resolve().parents[2]
REPO = "org/tiny"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def hub() -> Iterator[Hub]:
    hub = Hub()
    server, thread = serve(hub)
    yield hub
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache for this test, and this process offline."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-cache"


def make_project(folder: Path, models: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0"\n\n[tool.athena.models]\n{models}\n'
    )
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project", f'"{REPO}" = {{}}')


@pytest.fixture
def run(hub: Hub, cache: Path, project: Path) -> Run:
    """`athena ARGS...` in a child process, online against `hub`, in the project folder."""

    def athena(*args: str, offline: bool = False, cwd: Path = project) -> Any:
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "1" if offline else "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        }
        return subprocess.run(
            [sys.executable, "-m", "athena.cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return athena


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny OLMoE checkpoints that differ in their weights (seed 0 and 1)."""
    base = tmp_path_factory.mktemp("lock-models")
    return write_tiny_olmoe(base / "seed0"), write_tiny_olmoe(base / "seed1", seed=1)


@pytest.fixture
def pushed(hub: Hub, checkpoints: tuple[Path, Path]) -> str:
    """`org/tiny` on the hub: a tiny checkpoint at main, plus a variant in a subfolder that no
    load needs (#28) and a README."""
    variant = (checkpoints[1] / "model.safetensors").read_bytes()
    return hub.push_folder(
        REPO, checkpoints[0], **{"variant/model.safetensors": variant, "README.md": b"# tiny\n"}
    )


def lock_file(project: Path) -> dict:
    return tomllib.loads((project / "models.lock").read_text())


def sentence(result: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed command (no traceback)."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def snapshot(cache: Path, commit: str) -> Path:
    return cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / commit


def test_the_repositorys_own_pyproject_and_models_lock_agree() -> None:
    # This machine has no hub: the project's table is empty and there is no lock, consistently.
    result = subprocess.run(
        [sys.executable, "-m", "athena.cli", "models", "lock", "--check", "--project", str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("no model in [tool.athena.models]"), result.stdout


def test_lock_pins_the_commit_and_every_top_level_file_a_load_needs(
    run: Run, project: Path, pushed: str, checkpoints: tuple[Path, Path], cache: Path
) -> None:
    assert run("models", "lock").returncode == 0
    (model,) = lock_file(project)["model"]
    assert (model["name"], model["revision"], model["commit"]) == (REPO, "main", pushed)
    expected = {
        p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in checkpoints[0].iterdir()
        if p.suffix in (".json", ".safetensors", ".txt")
    }
    assert {f["path"]: (f["size"], f["sha256"]) for f in model["files"]} == expected
    first = (project / "models.lock").read_bytes()
    assert run("models", "lock").returncode == 0
    assert (project / "models.lock").read_bytes() == first  # stable: no diff when nothing moved
    assert run("models", "lock", "--check").returncode == 0

    assert run("models", "sync").returncode == 0
    folder = snapshot(cache, pushed)
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)  # no variant/, no README
    assert run("models", "verify").returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "use_mlx",
    [pytest.param(True, marks=pytest.mark.mlx), pytest.param(False, marks=pytest.mark.torch)],
    ids=["mlx", "transformers"],
)
def test_a_locked_model_loads_its_commit_offline_on_both_backends(
    run: Run,
    project: Path,
    pushed: str,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    use_mlx: bool,
) -> None:
    request.getfixturevalue("mlx_installed" if use_mlx else "torch_installed")
    assert run("models", "lock").returncode == 0
    assert run("models", "sync").returncode == 0
    monkeypatch.chdir(project)  # the lock is found from the current folder upward
    model = OLMoEModel(OLMoEConfig(model_name=REPO, use_mlx=use_mlx, allow_fallback=False))
    assert model.load(), model.load_error
    assert model.preflight is not None
    assert model.preflight.info.path == snapshot(cache, pushed)
    assert modellock.locked_status(project) == [(REPO, pushed, "verified")]


def test_a_changed_file_is_refused_in_one_sentence_and_remembered_files_are_not_rehashed(
    run: Run, project: Path, pushed: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("models", "lock").returncode == 0
    assert run("models", "sync").returncode == 0
    weights = snapshot(cache, pushed) / "model.safetensors"
    assert modellock.locked_status(project) == [(REPO, pushed, "verified")]
    # Same device, inode, size and mtime: trusted as verified, without reading it (as git's
    # index does); proves the second load does not hash.
    stat = weights.stat()
    with weights.open("r+b") as f:
        f.seek(stat.st_size - 4)
        f.write(b"\xff\xff\xff\x7f")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert modellock.locate(REPO, project=project).path == weights.parent
    # A new mtime: hashed again, and refused.
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert modellock.locked_status(project) == [(REPO, pushed, "unverified")]
    with pytest.raises(SourceError) as refused:
        modellock.locate(REPO, project=project)
    message = str(refused.value)
    assert "model.safetensors" in message and "sha256" in message
    assert "athena models sync" in message and os.path.realpath(weights) in message
    result = run("models", "verify")
    assert "model.safetensors" in sentence(result)


def test_refs_main_newer_than_the_lock_still_loads_the_locked_commit(
    run: Run, project: Path, pushed: str, hub: Hub, checkpoints: tuple[Path, Path], cache: Path
) -> None:
    assert run("models", "lock").returncode == 0
    assert run("models", "sync").returncode == 0
    newer = hub.push_folder(REPO, checkpoints[1])  # the branch moved
    # An unpinned download from elsewhere fills the real cache layout and moves refs/main.
    fetch = "from athena.source import locate; print(locate('org/tiny').path)"
    elsewhere = project.parent / "elsewhere"
    elsewhere.mkdir()
    child = subprocess.run(
        [sys.executable, "-c", fetch],
        cwd=elsewhere,
        env={
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "0",
        },
        capture_output=True,
        text=True,
    )
    assert child.stdout.strip() == str(snapshot(cache, newer)), child.stderr
    refs_main = cache / "models--org--tiny" / "refs" / "main"
    assert refs_main.read_text() == newer
    assert not (snapshot(cache, newer) / "variant").exists()  # top-level files only (#28)

    assert modellock.locate(REPO, project=project).path == snapshot(cache, pushed)
    # `lock` keeps the pin; `--upgrade` moves it, as uv lock does.
    assert run("models", "lock").returncode == 0
    assert lock_file(project)["model"][0]["commit"] == pushed
    assert run("models", "lock", "--upgrade").returncode == 0
    assert lock_file(project)["model"][0]["commit"] == newer


def test_a_download_cut_off_is_resumed_from_where_it_stopped(
    run: Run, project: Path, hub: Hub, cache: Path
) -> None:
    # huggingface_hub (>= 1.x, its PR 4228) resumes within one download, with a Range request
    # after the connection drops, from the last whole 10 MiB chunk it wrote; a partial file
    # does not outlive the process. So the file is 24 MiB and is cut off at 16 MiB.
    weights = bytes(range(256)) * (24 * 2**12)
    commit = hub.push("org/big", {"config.json": b"{}", "model.safetensors": weights})
    make_project(project, '"org/big" = {}')
    assert run("models", "lock").returncode == 0
    hub.cut_at["model.safetensors"] = 16 * 2**20
    hub.requests.clear()
    assert run("models", "sync").returncode == 0
    (resumed,) = [r for method, path, r in hub.requests if path.endswith(".safetensors") and r]
    assert 0 < int(resumed.removeprefix("bytes=").rstrip("-")) <= 16 * 2**20
    synced = cache / "models--org--big" / "snapshots" / commit / "model.safetensors"
    assert synced.read_bytes() == weights


def test_a_file_that_arrives_with_the_wrong_hash_is_named_with_the_fix(
    run: Run, project: Path, pushed: str, hub: Hub
) -> None:
    assert run("models", "lock").returncode == 0
    real = hub.repos[REPO].commits[pushed]["model.safetensors"]
    hub.repos[REPO].served_instead["model.safetensors"] = bytes(len(real))  # same size, zeros
    result = run("models", "sync")
    assert result.returncode == 1
    assert "model.safetensors" in result.stderr and "sha256" in result.stderr
    assert "athena models sync" in result.stderr


def test_a_locked_commit_the_hub_no_longer_has(
    run: Run, project: Path, pushed: str, hub: Hub
) -> None:
    assert run("models", "lock").returncode == 0
    del hub.repos[REPO].commits[pushed]  # force-pushed away
    hub.repos[REPO].branches.clear()
    assert "--upgrade" in sentence(run("models", "sync"))


@pytest.mark.parametrize(
    ("declaration", "said"),
    [
        ('"org/absent" = {}', "is not on the Hugging Face hub"),
        (f'"{REPO}" = {{ revision = "v9" }}', "has no revision 'v9'"),
        ('"org/gated" = {}', "gated"),
    ],
    ids=["404", "no-such-revision", "gated"],
)
def test_lock_fails_in_one_sentence_and_writes_nothing(
    run: Run,
    project: Path,
    pushed: str,
    hub: Hub,
    checkpoints: tuple[Path, Path],
    declaration: str,
    said: str,
) -> None:
    hub.push_folder("org/gated", checkpoints[0])
    hub.repos["org/gated"].gated = True
    make_project(project, declaration)
    assert said in sentence(run("models", "lock"))
    assert not (project / "models.lock").exists()


def test_a_locked_model_missing_from_the_cache_offline(
    run: Run, project: Path, pushed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("models", "lock").returncode == 0
    monkeypatch.chdir(project)
    model = OLMoEModel(OLMoEConfig(model_name=REPO))
    assert not model.load()
    assert model.load_error is not None
    assert pushed in model.load_error and "athena models sync" in model.load_error
    assert "athena models sync" in sentence(run("models", "verify", offline=True))


@pytest.mark.slow
@pytest.mark.torch
def test_a_locked_model_is_fetched_by_an_online_load(
    run: Run, project: Path, pushed: str, cache: Path, torch_installed: None
) -> None:
    assert run("models", "lock").returncode == 0
    result = run(
        "generate", "--model", REPO, "--backend", "transformers", "--max-tokens", "2", "hi"
    )
    assert result.returncode == 0, result.stderr
    assert (snapshot(cache, pushed) / "model.safetensors").exists()


def test_revision_loads_a_name_outside_the_lock_and_logs_the_commit(
    run: Run, project: Path, pushed: str, hub: Hub, checkpoints: tuple[Path, Path], cache: Path
) -> None:
    tagged = hub.push(REPO, {"config.json": b"{}"}, branch="v1")
    hub.repos[REPO].branches["main"] = pushed
    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from athena.modellock import locate; print(locate('org/tiny', revision='v1').path)"
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project.parent,  # no pyproject above: nothing pinned
        env={
            **os.environ,
            "HF_ENDPOINT": hub.url,
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_OFFLINE": "0",
        },
        capture_output=True,
        text=True,
    )
    assert child.returncode == 0, child.stderr
    assert f"resolved to commit {tagged}" in child.stdout
    assert child.stdout.strip().endswith(str(snapshot(cache, tagged)))
    # A revision other than the lock's, for a locked name, is refused.
    assert run("models", "lock").returncode == 0
    with pytest.raises(SourceError, match="pinned by"):
        modellock.locate(REPO, revision="v1", project=project)


# -- bad input, a local folder, the state the doctor reads -----------------------------------


def athena(*args: str) -> int:
    return cli.main(list(args))


def test_lock_check_names_each_disagreement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], cache: Path, tiny_olmoe: Path
) -> None:
    project = make_project(tmp_path / "p", '"mine" = { path = "tiny" }')
    (project / "tiny").symlink_to(tiny_olmoe, target_is_directory=True)
    assert athena("models", "lock", "--check", "--project", str(project)) == 1
    assert "'mine' is declared in pyproject.toml but not locked" in capsys.readouterr().err
    assert athena("models", "lock", "--project", str(project)) == 0
    assert athena("models", "lock", "--check", "--project", str(project)) == 0
    make_project(project, '"org/other" = {}')
    capsys.readouterr()
    assert athena("models", "lock", "--check", "--project", str(project)) == 1
    err = capsys.readouterr().err
    assert "'org/other' is declared in pyproject.toml but not locked" in err
    assert "'mine' is in models.lock but not declared in pyproject.toml" in err
    make_project(project, '"mine" = { path = "elsewhere" }')
    assert athena("models", "lock", "--check", "--project", str(project)) == 1
    assert (
        "declared as {'path': 'elsewhere'} but locked as {'path': 'tiny'}"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("lock", "said"),
    [
        ("[[model]\n", "is not valid TOML"),
        (
            '[[model]]\nname = "org/tiny"\nrevision = "main"\ncommit = "abc"\nfiles = []\n',
            "'abc', which is not 40 hex",
        ),
        ('[[model]]\nname = "org/tiny"\n', "without 'files'"),
    ],
    ids=["not-toml", "short-commit", "no-files"],
)
def test_a_bad_lock_is_one_sentence(
    project: Path, capsys: pytest.CaptureFixture[str], lock: str, said: str
) -> None:
    (project / "models.lock").write_text(lock)
    for action in ("verify", "sync", "lock"):
        assert athena("models", action, "--project", str(project)) == 1
        err = capsys.readouterr().err.strip()
        assert said in err and "\n" not in err
    assert (project / "models.lock").read_text() == lock  # not rewritten half-way


def test_bad_declarations_and_a_missing_project(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = make_project(tmp_path / "p", '"org/x" = { revision = 3 }')
    assert athena("models", "lock", "--project", str(project)) == 1
    assert "'org/x' = {'revision': 3} is not allowed" in capsys.readouterr().err
    make_project(project, '"plain" = {}')
    assert athena("models", "lock", "--project", str(project)) == 1
    assert "'plain' is not an org/name hub id" in capsys.readouterr().err
    assert athena("models", "verify", "--project", str(tmp_path / "nowhere")) == 1
    assert "no pyproject.toml" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.torch
def test_a_local_folder_is_pinned_by_its_hashes(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tiny_olmoe: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    torch_installed: None,
) -> None:
    import shutil

    project = make_project(tmp_path / "p", '"mine" = { path = "models/tiny" }')
    folder = Path(shutil.copytree(tiny_olmoe, project / "models" / "tiny"))
    assert athena("models", "lock", "--project", str(project)) == 0
    (entry,) = lock_file(project)["model"]
    assert entry["path"] == "models/tiny" and "commit" not in entry
    monkeypatch.chdir(project)
    config = OLMoEConfig(model_name="models/tiny", use_mlx=False)
    assert OLMoEModel(config).load()
    assert modellock.locked_status(project) == [("mine", "models/tiny", "verified")]
    config_file = folder / "config.json"
    config_file.write_text(config_file.read_text().replace("olmoe", "olmoe", 1) + " ")
    model = OLMoEModel(config)
    assert not model.load()
    assert "config.json" in str(model.load_error) and "athena models lock" in str(model.load_error)
    (folder / "config.json").write_text(config_file.read_text().rstrip())
    (folder / "model-extra.safetensors").write_bytes(b"")
    capsys.readouterr()
    assert athena("models", "verify", "--project", str(project)) == 1
    assert "model-extra.safetensors" in capsys.readouterr().err
    # A lock that does not parse is written anew by --upgrade, as its sentence advises.
    (project / "models.lock").write_text("[[model]\n")
    assert athena("models", "lock", "--upgrade", "--project", str(project)) == 0
    assert lock_file(project)["model"][0]["path"] == "models/tiny"


def test_the_revision_flag_reaches_the_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project(tmp_path / "p", f'"{REPO}" = {{}}')
    pinned = modellock.LockedModel(REPO, (), revision="main", commit="a" * 40)
    modellock.write_lock(project, {REPO: pinned})
    assert modellock.read_lock(project) == {REPO: pinned}  # what is written reads back
    monkeypatch.chdir(project)
    assert athena("generate", "--model", REPO, "--revision", "v1", "hi") == 1
    assert f"pinned by {project / 'models.lock'} to {'a' * 40}, not revision 'v1'" in (
        capsys.readouterr().err
    )


def test_locked_status_without_a_lock_or_project(tmp_path: Path) -> None:
    assert modellock.locked_status(make_project(tmp_path / "p", "")) == []


def test_a_damaged_state_file_only_costs_a_rehash(
    tmp_path: Path, tiny_olmoe: Path, cache: Path
) -> None:
    project = make_project(tmp_path / "p", '"mine" = { path = "tiny" }')
    (project / "tiny").symlink_to(tiny_olmoe, target_is_directory=True)
    modellock.lock(project)
    cache.mkdir()
    modellock.state_file().write_text("{not json")
    assert modellock.locked_status(project) == [("mine", "tiny", "unverified")]
    assert modellock.verify(project) == []
    assert modellock.locked_status(project) == [("mine", "tiny", "verified")]
    state = json.loads(modellock.state_file().read_text())
    locked = lock_file(project)["model"][0]["files"]
    assert set(state) == {os.path.realpath(tiny_olmoe / f["path"]) for f in locked}
    modellock.state_file().write_text(json.dumps({path: [1, 2] for path in state}))
    assert modellock.locked_status(project) == [("mine", "tiny", "unverified")]
