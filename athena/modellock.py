"""The model lock: which commit and files of each model a project loads, as uv.lock pins wheels
(docs/environment.md); verified hashes are remembered by stat in the hub cache."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from athena.atomic import write_file
from athena.errors import SourceError, first_line
from athena.source import (
    HUB_FILES,
    ModelSource,
    file_digest,
    hub_cache_dir,
    hub_offline,
    read_json,
    resolve_source,
    unreadable,
)
from athena.source import locate as locate_source

LOCK_FILE = "models.lock"
STATE_FILE = ".athena-verified.json"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_READ = 16 * 2**20  # a lock or state file larger than this is not one athena wrote
State = dict[str, list[Any]]  # real path -> [device, inode, size, mtime_ns, sha256]


@dataclass(frozen=True)
class LockedFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class LockedModel:
    """A hub model (`revision` as declared, `commit` resolved) or a local folder (`path`,
    relative to the project)."""

    name: str
    files: tuple[LockedFile, ...]
    revision: str | None = None
    commit: str | None = None
    path: str | None = None

    def declaration(self) -> dict[str, str]:
        return {"path": self.path} if self.path is not None else {"revision": str(self.revision)}


def find_project(start: Path | None = None) -> Path | None:
    """The nearest folder from `start` (default: the current one) upward with a pyproject.toml."""
    try:
        folder = (start or Path.cwd()).resolve()
    except OSError:  # the current folder was removed
        return None
    return next((p for p in (folder, *folder.parents) if (p / "pyproject.toml").is_file()), None)


def _read_toml(file: Path) -> dict[str, Any]:
    import tomllib  # here: a folder outside every lock loads without it

    try:
        with file.open("rb") as f:
            text = f.read(_MAX_READ + 1)
        if len(text) > _MAX_READ:
            raise SourceError(f"{file} is over {_MAX_READ} bytes; it is not a file athena wrote")
        return tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SourceError(
            f"{file} is not valid TOML ({first_line(error)}); fix it (`athena models lock "
            "--upgrade` writes models.lock anew)"
        ) from None


def declared(project: Path) -> dict[str, dict[str, str]]:
    """pyproject's [tool.athena.models] as name -> {"revision": ...} or {"path": ...}."""
    table = _read_toml(project / "pyproject.toml").get("tool", {}).get("athena", {})
    models = table.get("models", {}) if isinstance(table, dict) else None
    if not isinstance(models, dict):
        raise SourceError(f"[tool.athena.models] in {project / 'pyproject.toml'} is not a table")
    result = {}
    for name, spec in models.items():
        ok = isinstance(spec, dict) and len(spec) <= 1 and set(spec) <= {"revision", "path"}
        if not ok or not all(isinstance(v, str) and v for v in spec.values()):
            raise SourceError(
                f"[tool.athena.models] {name!r} = {str(spec)[:200]} is not allowed; use {{}}, "
                '{ revision = "a branch, tag or commit" } or { path = "a folder" }'
            )
        if "path" not in spec and resolve_source(name).kind != "hub":
            raise SourceError(
                f"[tool.athena.models] {name!r} is not an org/name hub id; declare a local "
                f'folder as {name!r} = {{ path = "relative/folder" }}'
            )
        result[name] = dict(spec) if spec else {"revision": "main"}
    return result


def read_lock(project: Path) -> dict[str, LockedModel]:
    """models.lock of the project (empty when there is none); SourceError when it is wrong."""
    file = project / LOCK_FILE
    if not file.exists():
        return {}
    data = _read_toml(file)
    models = {}
    for entry in data.get("model", []):
        try:
            name = entry["name"]
            files = tuple(LockedFile(f["path"], f["size"], f["sha256"]) for f in entry["files"])
            optional = (entry.get(key) for key in ("revision", "commit", "path"))
            model = LockedModel(name, files, *optional)
        except (KeyError, TypeError) as error:
            raise SourceError(
                f"{file} has an entry without {error} ({str(entry)[:200]}); run `athena models "
                "lock --upgrade` to write it anew"
            ) from None
        bad = None
        if (model.path is None) == (model.commit is None):
            bad = "needs either a commit (a hub model) or a path (a local folder)"
        elif model.commit is not None and not _COMMIT.match(str(model.commit)):
            bad = f"has commit {str(model.commit)[:80]!r}, which is not 40 hex digits"
        for f in model.files:
            if not (isinstance(f.size, int) and f.size >= 0 and _SHA256.match(str(f.sha256))):
                bad = bad or f"has file {str(f.path)[:80]!r} without a size and a 64-hex sha256"
            if not isinstance(f.path, str) or "/" in f.path or f.path.startswith("."):
                bad = bad or f"has file {str(f.path)[:80]!r}, which is not a top-level file name"
        if bad:
            raise SourceError(
                f"{file}: {model.name!r} {bad}; run `athena models lock --upgrade` to write it anew"
            )
        models[model.name] = model
    return models


def write_lock(project: Path, models: dict[str, LockedModel]) -> None:
    """models.lock, whole or not at all, in a fixed order (names and files sorted)."""
    q = json.dumps  # a JSON string (ASCII, escaped) is a TOML basic string
    lines = [
        "# Written by `athena models lock` from [tool.athena.models]; commit it.",
        "version = 1",
    ]
    for name in sorted(models):
        model = models[name]
        lines += ["", "[[model]]", f"name = {q(name)}"]
        if model.path is not None:
            lines.append(f"path = {q(model.path)}")
        else:
            lines += [f"revision = {q(model.revision)}", f"commit = {q(model.commit)}"]
        lines.append("files = [")
        for f in sorted(model.files, key=lambda f: f.path):
            lines.append(f"    {{ path = {q(f.path)}, size = {f.size}, sha256 = {q(f.sha256)} }},")
        lines.append("]")
    write_file(project / LOCK_FILE, "\n".join(lines) + "\n")


def lock_problems(project: Path) -> list[str]:
    """Where pyproject's [tool.athena.models] and models.lock disagree (`lock --check`)."""
    wanted, locked = declared(project), read_lock(project)
    problems = []
    for n in sorted(wanted.keys() | locked.keys()):
        if n not in locked:
            problems.append(f"{n!r} is declared in pyproject.toml but not locked")
        elif n not in wanted:
            problems.append(f"{n!r} is in {LOCK_FILE} but not declared in pyproject.toml")
        elif wanted[n] != locked[n].declaration():
            problems.append(
                f"{n!r} is declared as {wanted[n]} but locked as {locked[n].declaration()}"
            )
    return [f"{p}; run `athena models lock`" for p in problems]


def lock(project: Path, *, upgrade: bool = False) -> dict[str, LockedModel]:
    """Resolve every declared model and write models.lock. A model locked before with the same
    declaration keeps its commit unless `upgrade`, as `uv lock` keeps its pins."""
    locked = {} if upgrade else read_lock(project)
    models = {}
    for name, spec in declared(project).items():
        kept = locked.get(name)
        if kept is not None and kept.declaration() == spec and kept.path is None:
            models[name] = kept
        elif "path" in spec:
            folder = project / spec["path"]
            if not folder.is_dir():
                raise SourceError(f"[tool.athena.models] {name!r}: {folder} is not a folder")
            files = [p for p in sorted(folder.iterdir()) if p.is_file() and _needed(p.name)]
            locked_files = tuple(LockedFile(p.name, **file_digest(p)) for p in files)
            models[name] = LockedModel(name, locked_files, path=spec["path"])
        else:
            models[name] = _lock_hub(name, spec["revision"])
    write_lock(project, models)
    return models


def _needed(filename: str) -> bool:
    return any(fnmatch.fnmatch(filename, pattern) for pattern in HUB_FILES)


def _hub_error(name: str, revision: str, error: Exception) -> SourceError:
    why = {
        "RevisionNotFoundError": f"cannot lock {name!r}: it has no revision {revision!r} (a "
        "branch, tag or commit that does not exist); fix the revision in pyproject.toml",
        "GatedRepoError": f"{name!r} is gated on the Hugging Face hub; accept its terms on the "
        "hub and log in (`hf auth login`), then run the command again",
        "RepositoryNotFoundError": f"{name!r} is not on the Hugging Face hub (or is private); "
        "check the id in pyproject.toml, or log in if it is private",
    }.get(type(error).__name__)
    return SourceError(
        why
        or f"could not get {name!r} at {revision!r} from the Hugging Face hub "
        f"({first_line(error)}); check the network and run the command again"
    )


def _lock_hub(name: str, revision: str) -> LockedModel:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)  # read now, not at its import
    try:
        commit = str(api.model_info(name, revision=revision).sha)
        files = [  # a small git file (no lfs): the hub gives its sha1 only, so hash it here
            LockedFile(f.path, f.lfs.size, f.lfs.sha256) if f.lfs is not None
            else LockedFile(f.path, **file_digest(Path(_download(name, f.path, commit))))
            for f in api.list_repo_tree(name, revision=commit)  # top level only
            if isinstance(f, RepoFile) and _needed(f.path)
        ]  # fmt: skip
    except Exception as error:
        raise _hub_error(name, revision, error) from None
    return LockedModel(name, tuple(files), revision=revision, commit=commit)


def _download(name: str, filename: str, commit: str) -> str:
    from huggingface_hub import hf_hub_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    return hf_hub_download(
        name, filename, revision=commit, cache_dir=hub_cache_dir(), endpoint=endpoint
    )


def folder_of(model: LockedModel, project: Path) -> Path:
    """Where the locked model's files are: its snapshot in the hub cache, or its folder."""
    if model.path is not None:
        return project / model.path
    repo = "models--" + model.name.replace("/", "--")
    return Path(hub_cache_dir()) / repo / "snapshots" / str(model.commit)


def sync(project: Path) -> list[str]:
    """Fetch the locked files of every hub model into the cache, then `verify` them all."""
    for model in read_lock(project).values():
        if model.commit is not None:
            _fetch(model, project)
    return verify(project)


def _fetch(model: LockedModel, project: Path) -> None:
    folder = folder_of(model, project)
    for f in [f for f in model.files if not (folder / f.path).exists()]:
        try:
            _download(model.name, f.path, str(model.commit))
        except Exception as error:
            if type(error).__name__ in ("RevisionNotFoundError", "EntryNotFoundError"):
                raise SourceError(
                    f"the hub no longer has {f.path} of {model.name!r} at the locked commit "
                    f"{model.commit} (was it force-pushed away?); run `athena models lock "
                    "--upgrade` to lock what its revision points at now"
                ) from None
            raise _hub_error(model.name, str(model.commit), error) from None


def verify(project: Path, *, names: list[str] | None = None) -> list[str]:
    """Check the files of the locked models (or those `names`) against the lock: one sentence
    per changed, missing or extra file, with the command that mends it."""
    state, problems = read_state(), []
    before = dict(state)
    for model in read_lock(project).values():
        if names is None or model.name in names:
            problems += _model_problems(model, project, state)
    if state != before:  # remember the new hashes, for the files that still exist
        kept = {path: record for path, record in state.items() if os.path.exists(path)}
        with contextlib.suppress(OSError):  # a read-only cache: the next load hashes again
            state_file().parent.mkdir(parents=True, exist_ok=True)
            write_file(state_file(), json.dumps(kept, sort_keys=True))
    return problems


def _model_problems(model: LockedModel, project: Path, state: State) -> list[str]:
    folder = folder_of(model, project)
    mend = "`athena models sync`" if model.commit else "`athena models lock` (if it is wanted)"
    where = f"{model.name!r} at {model.commit}" if model.commit else f"{model.name!r} in {folder}"
    problems = []
    for f in model.files:
        file = folder / f.path
        try:
            stat = file.stat()
        except FileNotFoundError:
            problems.append(f"{f.path} of {where} is missing; run {mend}")
            continue
        except OSError as error:
            raise unreadable(file, error) from None
        if stat.st_size != f.size:
            why = f"is {stat.st_size} bytes, the lock says {f.size}"
        elif _remembered(file, stat, state) == f.sha256:
            continue
        else:
            digest = str(file_digest(file)["sha256"])
            if _stamp(os.stat(file)) == _stamp(stat):  # unchanged while it was read
                state[os.path.realpath(file)] = [*_stamp(stat), digest]
            if digest == f.sha256:
                continue
            why = "has a sha256 other than the lock's"
        if model.commit:  # a blob in the cache: remove it, so that sync fetches it again
            why += f"; run `rm {shlex.quote(os.path.realpath(file))}` and `athena models sync`"
        else:
            why += f"; run {mend}"
        problems.append(f"{f.path} of {where} {why}")
    names = {f.path for f in model.files}
    extras = sorted(folder.iterdir()) if folder.is_dir() else []
    return problems + [
        f"{extra.name} in {folder} is not in the lock of {model.name!r} (a load would read it); "
        f"run `rm {shlex.quote(str(extra))}`, or `athena models lock` if it is wanted"
        for extra in extras
        if _needed(extra.name) and extra.name not in names
    ]


def _stamp(stat: os.stat_result) -> list[int]:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns]


def _remembered(file: Path, stat: os.stat_result, state: State) -> str | None:
    record = state.get(os.path.realpath(file))
    if isinstance(record, list) and len(record) == 5 and record[:4] == _stamp(stat):
        return str(record[4])
    return None


def state_file() -> Path:
    return Path(hub_cache_dir()) / STATE_FILE


def read_state() -> State:
    """The remembered hashes (empty when the file is missing, too big or not ours)."""
    with contextlib.suppress(SourceError):
        return read_json(state_file(), _MAX_READ)
    return {}


ModelState = Literal["verified", "unverified", "missing"]


def locked_status(project: Path | None = None) -> list[tuple[str, str, ModelState]]:
    """Each locked model's (name, commit or folder, state) from the remembered hashes only (for
    the doctor): "verified", "missing" (a file), or "unverified" (never, or changed since)."""
    project = project or find_project()
    if project is None:
        return []
    state, result = read_state(), []
    for model in read_lock(project).values():
        folder = folder_of(model, project)
        status: ModelState = "verified"
        for f in model.files:
            try:
                stat = (folder / f.path).stat()
            except OSError:
                status = "missing"
                break
            if _remembered(folder / f.path, stat, state) != f.sha256:
                status = "unverified"
        result.append((model.name, str(model.commit or model.path), status))
    return result


def locate(
    name: str | os.PathLike[str] | ModelSource,
    *,
    revision: str | None = None,
    download: bool = True,
    project: Path | None = None,
) -> ModelSource:
    """`source.locate`, but a name the project's models.lock pins is the locked snapshot,
    fetched if allowed and missing, and verified; `revision` serves names outside the lock."""
    source = name if isinstance(name, ModelSource) else resolve_source(os.fspath(name))
    project = project or find_project()
    model = _pinned(source, project) if project is not None else None
    if model is None or project is None:
        return locate_source(source, download=download, revision=revision)
    if revision is not None and revision not in (model.revision, model.commit):
        raise SourceError(
            f"{model.name!r} is pinned by {project / LOCK_FILE} to {model.commit}, not revision "
            f"{revision!r}; drop the revision, or change pyproject.toml and `athena models lock`"
        )
    folder = folder_of(model, project)
    missing = [f.path for f in model.files if not (folder / f.path).exists()]
    if missing and model.commit is not None:
        if hub_offline() or not download:
            raise SourceError(
                f"{model.name!r} is locked at {model.commit} but {missing[0]} of it is not in the "
                f"Hugging Face cache at {hub_cache_dir()} (offline); run `athena models sync` "
                "with network access"
            )
        _fetch(model, project)
    problems = verify(project, names=[model.name])
    if problems:
        raise SourceError(problems[0])
    return ModelSource(source.name, source.kind, folder)


def _pinned(source: ModelSource, project: Path) -> LockedModel | None:
    models = read_lock(project).values()
    if source.kind == "hub":
        if source.path is not None:  # located already
            return None
        return next((m for m in models if m.commit is not None and m.name == source.name), None)
    here = os.path.realpath(source.folder)
    return next((m for m in models if m.path and os.path.realpath(project / m.path) == here), None)
