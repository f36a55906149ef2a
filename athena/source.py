"""Where a model comes from: a local folder (checked here) or a Hugging Face hub id.

mlx-lm treats any path that does not exist as a hub id, so a mistyped folder becomes a hub
lookup. `resolve_source` decides first: an existing path, or anything that looks like a path,
is a folder; only `org/name` (whose `org` is not a local folder) is a hub id. A bare `name`
is a folder too: hub ids of today have an owner.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from athena.errors import SourceError, first_line

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class ModelSource:
    """`kind` "folder" (with `path`) or "hub" (with `hub_id`); `name` is what the user gave."""

    name: str
    kind: Literal["folder", "hub"]
    path: Path | None = None

    @property
    def hub_id(self) -> str:
        return self.name


def resolve_source(name: str) -> ModelSource:
    """Tell a local folder from a hub id, without touching the network."""
    path = Path(name).expanduser()
    if path.exists():
        return ModelSource(name, "folder", path)
    org = name.split("/", 1)[0]
    looks_like_hub_id = (
        _HUB_ID.match(name) is not None
        and ".." not in name
        and not name.endswith((".json", ".safetensors"))
        and not ("/" in name and Path(org).is_dir())
    )
    if looks_like_hub_id:
        return ModelSource(name, "hub")
    return ModelSource(name, "folder", path)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (read now, not at its import time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in _TRUE


def _hub_cache_dir() -> str:
    if cache := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return cache
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return os.path.join(home, "hub")


def check_hub_id(source: ModelSource) -> None:
    """Offline, a hub id must be in the local cache; say so in one sentence if it is not."""
    if not hub_offline():
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.hub_id, "config.json", cache_dir=_hub_cache_dir())
    if not isinstance(cached, str):
        raise SourceError(
            f"{source.name!r} is not a local folder and HF_HUB_OFFLINE=1 forbids downloading it "
            f"from the Hugging Face hub (it is not in the cache at {_hub_cache_dir()}); "
            "pass a local model folder, or download it once with network access"
        )


def hub_download_failed(name: str, error: BaseException) -> SourceError | None:
    """The sentence for a backend whose download of hub id `name` failed (no network, unknown
    or gated repo), or None when `name` is a folder or the error did not come from the hub.

    A SourceError: the other backend would ask the same hub, so load() does not fall back.
    """
    if resolve_source(name).kind != "hub":
        return None
    cause: BaseException | None = error
    while cause is not None:
        module = type(cause).__module__.split(".", 1)[0]  # huggingface_hub >= 1 speaks httpx
        if module in ("huggingface_hub", "httpx", "httpcore") or isinstance(
            cause, ConnectionError | TimeoutError
        ):
            return SourceError(
                f"could not get {name!r} from the Hugging Face hub ({first_line(error)}); check "
                "the network and the id, or pass a local model folder"
            )
        cause = cause.__cause__ or cause.__context__
    return None


def check_model_folder(path: Path) -> None:
    """Raise SourceError (one sentence) unless `path` is an OLMoE folder with sound safetensors."""
    if not path.exists():
        raise SourceError(
            f"model folder not found: {path} (check the path; athena does not look up a "
            "path on the Hugging Face hub)"
        )
    if not path.is_dir():
        raise SourceError(f"{path} is a file, not a model folder; pass the folder that holds it")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SourceError(f"config.json not found in {path} (is this a model folder?)")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SourceError(
            f"config.json in {path} is not valid JSON ({error}); re-download or re-create it"
        ) from None
    if not isinstance(config, dict):
        raise SourceError(
            f"config.json in {path} is not a JSON object; re-download or re-create it"
        )
    model_type = config.get("model_type")
    if model_type is None:
        raise SourceError(
            f"config.json in {path} has no model_type; athena loads OLMoE checkpoints "
            "(model_type 'olmoe')"
        )
    if model_type != "olmoe":
        raise SourceError(
            f"config.json in {path} has model_type {model_type!r}; athena loads OLMoE "
            "checkpoints (model_type 'olmoe')"
        )
    weight_files = sorted(path.glob("model*.safetensors"))
    if not weight_files:
        pickled = sorted(p.name for p in path.glob("*.bin")) + sorted(
            p.name for p in path.glob("*.pt")
        )
        if pickled:
            raise SourceError(
                f"{path} has {pickled[0]} but no model*.safetensors; athena loads safetensors "
                "only (pickled weights can run code), so convert the weights to safetensors"
            )
        raise SourceError(
            f"no model*.safetensors in {path}; the weights are missing (re-download or "
            "re-create the checkpoint)"
        )
    for weight_file in weight_files:
        check_safetensors(weight_file)


def check_safetensors(file: Path) -> None:
    """The header parses and the file is as long as the header says (catches truncation)."""
    read_safetensors_header(file)


def read_safetensors_header(file: Path) -> dict[str, Any]:
    """The tensors of a safetensors file (name -> dtype, shape, data_offsets), without reading
    a weight. Raises SourceError (one sentence) unless the header parses and the file is as
    long as the header says (catches truncation)."""
    size = file.stat().st_size
    damaged = f"{file.name} in {file.parent} is damaged"
    advice = "re-download or re-create the checkpoint"
    if size < 8:
        raise SourceError(f"{damaged} ({size} bytes, too short for a safetensors file); {advice}")
    with file.open("rb") as f:
        (header_length,) = struct.unpack("<Q", f.read(8))
        if 8 + header_length > size:
            raise SourceError(
                f"{file.name} in {file.parent} is truncated ({size} bytes, its header alone "
                f"needs {8 + header_length}); {advice}"
            )
        try:
            header = json.loads(f.read(header_length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise SourceError(f"{damaged} (its header is not valid JSON); {advice}") from None
    if not isinstance(header, dict):
        raise SourceError(f"{damaged} (its header is not a JSON object); {advice}")
    try:
        data_end = max(
            (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"),
            default=0,
        )
    except (KeyError, TypeError, ValueError, IndexError):
        raise SourceError(f"{damaged} (its header has no valid data_offsets); {advice}") from None
    expected = 8 + header_length + data_end
    if size < expected:
        raise SourceError(
            f"{file.name} in {file.parent} is truncated ({size} bytes of {expected}); {advice}"
        )
    return {name: entry for name, entry in header.items() if name != "__metadata__"}


def check_source(name: str) -> ModelSource:
    """Resolve `name` and check it: a folder's files, or a hub id's availability offline."""
    source = resolve_source(name)
    if source.kind == "hub":
        check_hub_id(source)
    else:
        assert source.path is not None
        check_model_folder(source.path)
    return source
