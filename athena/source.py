"""Where a model comes from (floor 0): a local folder, or a hub id whose snapshot is fetched
into the cache (`locate`); `resolve_source` tells them apart without the network. Also the
bounded, checked reads of config.json and safetensors headers."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from athena.errors import SourceError, first_line

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUE = {"1", "ON", "YES", "TRUE"}
# What a hub snapshot needs: config, safetensors weights, tokenizer files. Never pickles
# (*.bin, *.pt) and never code (*.py: trust_remote_code is never enabled).
HUB_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja")
# The floating-point dtypes a load can ask for (and tiny-model can write), by name.
DTYPES = ("float32", "float16", "bfloat16")
# The most athena reads of a JSON file (an index of 100,000 tensors is about 10 MB), of
# tokenizer.json (a 256k-token vocabulary is 33 MB) and of a safetensors header (safetensors').
JSON_LIMIT = 16 * 2**20
TOKENIZER_LIMIT = 64 * 2**20
HEADER_LIMIT = 100_000_000
# safetensors' dtypes and their item sizes in bytes.
SAFETENSORS_ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip


@dataclass(frozen=True)
class ModelSource:
    """`kind` "folder" or "hub"; `name` is what the user gave; `path` the local folder (for a
    hub id: its snapshot in the cache, None until `locate` found or fetched it)."""

    name: str
    kind: Literal["folder", "hub"]
    path: Path | None = None

    @property
    def hub_id(self) -> str:
        return self.name

    @property
    def folder(self) -> Path:
        if self.path is None:
            raise SourceError(f"{self.name!r} has no local folder yet; locate() it first")
        return self.path


def resolve_source(name: str) -> ModelSource:
    """Tell a local folder from a hub id, without touching the network."""
    path = Path(name).expanduser()
    org = name.split("/", 1)[0]
    hub = (
        not _exists(path)
        and _HUB_ID.match(name) is not None
        and ".." not in name
        and not name.endswith((".json", ".safetensors"))
        and not ("/" in name and Path(org).is_dir())
    )
    return ModelSource(name, "hub") if hub else ModelSource(name, "folder", path)


def _exists(path: Path) -> bool:
    """Path.exists, also True for a link whose target is missing or loops (it is a path)."""
    try:
        return path.exists() or path.is_symlink()
    except OSError:  # e.g. a name too long for the file system
        return False


def locate(
    name: str | os.PathLike[str] | ModelSource,
    *,
    download: bool = True,
    revision: str | None = None,
) -> ModelSource:
    """`name` with a local folder: a hub id's top-level load files at `revision` (default main)
    fetched into the cache when `download` and not HF_HUB_OFFLINE, else taken from it, the
    commit logged; SourceError (one sentence) when it cannot be had. A folder is as it is."""
    source = name if isinstance(name, ModelSource) else resolve_source(os.fspath(name))
    if source.kind == "folder" or source.path is not None:
        return source
    offline = hub_offline() or not download
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            source.hub_id,
            cache_dir=hub_cache_dir(),
            revision=revision,
            allow_patterns=list(HUB_FILES),
            ignore_patterns=["*/*"],  # fnmatch's * matches "/": top-level files only
            local_files_only=offline,
            endpoint=os.environ.get("HF_ENDPOINT") or None,  # read now, not at its import
        )
    except LocalEntryNotFoundError as error:
        if not offline:
            raise _hub_failure(source.name, error) from None
        if not download:
            raise SourceError(
                f"{source.name!r} is not a local folder and not in the Hugging Face cache at "
                f"{hub_cache_dir()}; athena inspects local files only (download it once, or "
                "pass a local model folder)"
            ) from None
        raise SourceError(
            f"{source.name!r} is not a local folder and HF_HUB_OFFLINE=1 forbids downloading "
            f"it from the Hugging Face hub (it is not in the cache at {hub_cache_dir()}); pass "
            "a local model folder, or download it once with network access"
        ) from None
    except Exception as error:  # gated, unknown repo, no network, a full disk...
        raise _hub_failure(source.name, error) from None
    logging.getLogger("athena").info(
        "%s (%s) resolved to commit %s", source.name, revision or "main", Path(str(folder)).name
    )
    return ModelSource(source.name, "hub", Path(str(folder)))


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (read now, not at its import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def hub_cache_dir() -> str:
    """The Hugging Face hub cache, from the environment as it is now."""
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return cache
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return os.path.join(home, "hub")


def _hub_failure(name: str, error: BaseException) -> SourceError:
    # The root cause says why (e.g. "Connection refused"); the wrapper says what.
    cause = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    why = first_line(error) if cause is error else f"{first_line(error)}: {first_line(cause)}"
    return SourceError(
        f"could not get {name!r} from the Hugging Face hub ({why}); check the network and the "
        "id, or pass a local model folder"
    )


def file_digest(path: Path) -> dict[str, Any]:
    """{size, sha256} of a file, read 1 MiB at a time (no hashlib.file_digest: the doctor
    runs this on Python 3.9)."""
    import hashlib

    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


def unreadable(path: Path, error: OSError) -> SourceError:
    """One sentence for a file or folder the operating system would not let us read."""
    reason = error.strerror or first_line(error)
    if isinstance(error, PermissionError):
        advice = "give your user read access to it (chmod/chown), or copy the model elsewhere"
    elif isinstance(error, IsADirectoryError):
        advice = "it must be a file; re-download or re-create the checkpoint"
    else:
        advice = "fix the path (a broken or looping link?), or re-download the checkpoint"
    return SourceError(f"cannot read {path} ({reason}); {advice}")


def check_model_folder(path: Path) -> tuple[dict[str, Any], dict[Path, dict[str, Any]]]:
    """Its config.json and each weights file's header (read once), or SourceError (one sentence)
    unless `path` is an OLMoE folder with sound safetensors; a filesystem error (a link loop,
    no permission) is one too, naming the path."""
    try:
        kind = _kind(path)  # an OSError other than "not found" (a loop, no permission) goes up
        if kind is None:
            if path.is_symlink():
                raise SourceError(
                    f"model folder {path} is a link to {os.readlink(path)}, which does not exist; "
                    "fix the link or pass the real folder"
                )
            raise SourceError(
                f"model folder not found: {path} (check the path; athena does not look up a "
                "path on the Hugging Face hub)"
            )
        if kind != "folder":
            raise SourceError(
                f"{path} is a file, not a model folder; pass the folder that holds it"
            )
        weight_files = weight_files_of(path)  # PermissionError here names the folder
        if _kind(path / "config.json") is None:
            raise SourceError(f"config.json not found in {path} (is this a model folder?)")
        # a folder named config.json: read_config raises IsADirectoryError's sentence
        config = read_config(path)
        model_type = config.get("model_type")
        if model_type != "olmoe":
            has = "no model_type" if model_type is None else f"model_type {model_type!r}"
            raise SourceError(
                f"config.json in {path} has {has}; athena loads OLMoE checkpoints "
                "(model_type 'olmoe')"
            )
        if not weight_files:
            if pickled := [p.name for ext in ("*.bin", "*.pt") for p in sorted(path.glob(ext))]:
                raise SourceError(
                    f"{path} has {pickled[0]} but no model*.safetensors; athena loads safetensors "
                    "only (pickled weights can run code), so convert the weights to safetensors"
                )
            raise SourceError(
                f"no model*.safetensors in {path}; the weights are missing (re-download or "
                "re-create the checkpoint)"
            )
        return config, {file: read_safetensors_header(file) for file in weight_files}
    except OSError as error:
        raise unreadable(Path(error.filename or path), error) from None


def _kind(path: Path) -> Literal["file", "folder"] | None:
    """ "file", "folder" or None (not there, or a link to nothing); other OSErrors go up."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    return "folder" if stat.S_ISDIR(mode) else "file"


def weight_files_of(path: Path) -> list[Path]:
    """The folder's model*.safetensors, sorted (by name, not glob: its first pattern costs a
    first load 0.2 ms)."""
    names = (n for n in os.listdir(path) if n.startswith("model") and n.endswith(".safetensors"))
    return [path / name for name in sorted(names)]


def read_config(path: Path) -> dict[str, Any]:
    return read_json(path / "config.json")


def read_json(file: Path, limit: int = JSON_LIMIT) -> dict[str, Any]:
    """The JSON object in `file` (at most `limit` bytes); SourceError (one sentence naming the
    file) for one too large, not UTF-8, not JSON (NaN, huge integers, deep nesting), no object."""
    try:
        with file.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as error:
        raise unreadable(file, error) from None
    advice = "re-download or re-create it"
    if len(data) > limit:
        raise SourceError(
            f"{file.name} in {file.parent} is larger than the {limit // 2**20} MiB athena reads "
            f"of a {file.name}; {advice}"
        )
    value, problem = parse_json(data)
    if problem is None and not isinstance(value, dict):
        problem = "is not a JSON object"
    if problem is not None:
        raise SourceError(f"{file.name} in {file.parent} {problem}; {advice}")
    return value


def parse_json(data: bytes) -> tuple[Any, str | None]:
    """(the JSON value of UTF-8 `data`, None), or (None, why not: "is not valid JSON (...)")."""
    constants: list[str] = []
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=constants.append)
    except UnicodeDecodeError as error:
        return None, f"is not UTF-8 text (byte {error.start})"
    except json.JSONDecodeError as error:
        return None, f"is not valid JSON ({error})"
    except RecursionError:
        return None, "is nested too deeply to read"
    except ValueError:  # int(): Python reads integers of at most 4,300 digits
        return None, "holds an integer too long to read (over 4,300 digits)"
    if constants:
        return None, f"is not valid JSON ({constants[0]} is not a JSON number)"
    return value, None


def read_safetensors_header(file: Path) -> dict[str, Any]:
    """The tensors of a safetensors file (name -> dtype, shape, data_offsets), no weight read;
    SourceError (one sentence) unless the header parses, each tensor's dtype, shape and bytes
    agree, and the file is as long as the header says."""
    damaged = f"{file.name} in {file.parent} is damaged"
    advice = "re-download or re-create the checkpoint"
    try:
        with file.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise SourceError(
                    f"{damaged} ({size} bytes, too short for a safetensors file); {advice}"
                )
            (header_length,) = struct.unpack("<Q", f.read(8))
            if header_length > HEADER_LIMIT:
                raise SourceError(
                    f"{damaged} (its header claims {header_length:,} bytes, more than the "
                    f"{HEADER_LIMIT:,} safetensors allows); {advice}"
                )
            if 8 + header_length > size:
                raise SourceError(
                    f"{file.name} in {file.parent} is truncated ({size} bytes, its header alone "
                    f"needs {8 + header_length}); {advice}"
                )
            header, problem = parse_json(f.read(header_length))
    except OSError as error:
        raise unreadable(file, error) from None
    if problem is not None:
        raise SourceError(f"{damaged} (its header is not valid JSON); {advice}")
    if not isinstance(header, dict):
        raise SourceError(f"{damaged} (its header is not a JSON object); {advice}")
    tensors = {name: entry for name, entry in header.items() if name != "__metadata__"}
    for name, entry in tensors.items():
        if problem := _entry_problem(entry):
            raise SourceError(f"{damaged} (tensor {name!r}: {problem}); {advice}")
    data_end = max((int(entry["data_offsets"][1]) for entry in tensors.values()), default=0)
    expected = 8 + header_length + data_end
    if size < expected:
        raise SourceError(
            f"{file.name} in {file.parent} is truncated ({size} bytes of {expected}); {advice}"
        )
    return tensors


def _entry_problem(entry: object) -> str | None:
    """Why one header entry cannot describe a tensor, or None."""
    if not isinstance(entry, dict):
        return "its entry is not a JSON object"
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not (isinstance(dtype, str) and dtype in SAFETENSORS_ITEMSIZE):
        return f"dtype {dtype!r} is not a safetensors dtype"
    if not (type(shape) is list and all(type(n) is int and n >= 0 for n in shape)):
        return f"shape {shape!r} is not a list of sizes"
    if not (type(offsets) is list and len(offsets) == 2 and type(start := offsets[0]) is int
            and type(end := offsets[1]) is int and start >= 0):  # fmt: skip
        return f"data_offsets {offsets!r} are not two byte offsets"
    need = math.prod(shape) * SAFETENSORS_ITEMSIZE[dtype]
    if end - start != need:
        return (
            f"{end - start} bytes, but dtype {dtype} and shape {shape} need {need}; the header "
            "does not describe the data"
        )
    return None
