"""`athena convert`: an mlx-quantized copy of an OLMoE folder through `mlx_lm.convert`, the
router kept at 8 bits (athena/backends/quantize.py), written atomically like tiny-model."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from athena import preflight, source
from athena.atomic import FolderBusy, FolderNotEmpty, replacing_folder, write_file
from athena.backends.quantize import olmoe_predicate
from athena.errors import LoadError
from athena.preflight import provenance
from athena.preflight.quantized import DEFAULT_ROUTER_BITS
from athena.source import ModelSource
from athena.versions import installed_versions


def convert_model(
    model: str,
    out: str | Path,
    *,
    bits: int = 4,
    group_size: int = 64,
    router_bits: int | None = DEFAULT_ROUTER_BITS,
) -> Path:
    """Write an mlx-quantized copy of `model` to `out` (new or empty; written whole), the router
    at `router_bits`. Raises ValueError, SourceError, LoadError (one sentence)."""
    shown = Path(out)
    target = shown.resolve()
    if target.exists() and not target.is_dir():
        raise ValueError(f"{shown} exists and is not a folder; pass a new folder for the copy")
    if target.is_dir() and any(target.iterdir()):
        raise FolderNotEmpty(shown, sorted(p.name for p in target.iterdir()))
    located = source.locate(model)  # a hub id is fetched into the cache once
    checked = preflight.check_load(  # a bad folder, or one too big to convert: one sentence
        located, backend="mlx", quantize_bits=bits, group_size=group_size, router_bits=router_bits
    )
    if checked.info.quantization is not None:
        raise ValueError(
            f"{model} is already mlx-quantized (config.json 'quantization'); convert the "
            "unquantized checkpoint it was made from"
        )
    from athena.backends.mlx_backend import import_mlx_lm, select_device

    import_mlx_lm()  # BackendMissing (one sentence) without mlx-lm
    select_device()
    from mlx_lm import convert

    try:
        with replacing_folder(target, shown) as temp:
            temp.rmdir()  # mlx-lm makes the folder itself
            # mlx-lm's [INFO] lines go to stderr. Its quant_predicate is annotated with three
            # arguments but called with (path, module), as nn.quantize's class_predicate.
            with contextlib.redirect_stdout(sys.stderr):
                convert(
                    str(located.folder),
                    str(temp),
                    quantize=True,
                    q_bits=bits,
                    q_group_size=group_size,
                    quant_predicate=olmoe_predicate(bits, group_size, router_bits),  # type: ignore[arg-type]
                )
            write_provenance(temp, located, bits, group_size, router_bits)
    except (FolderNotEmpty, FolderBusy):
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise LoadError(f"mlx-lm could not convert {model} ({message})") from None
    return shown


def write_provenance(
    folder: Path, located: ModelSource, bits: int, group_size: int, router_bits: int | None
) -> Path:
    """Write `athena-provenance.json` into the converted `folder`: the source (hub id and commit,
    or a folder's files' digests), the recipe, the versions and the output files' digests."""
    snapshot = located.folder
    if located.kind == "hub":
        commit = snapshot.name  # huggingface_hub's cache: .../snapshots/<commit>
        valid = snapshot.parent.name == "snapshots" and re.fullmatch("[0-9a-f]{40}", commit)
        origin: dict[str, Any] = {"hub_id": located.hub_id, "commit": commit if valid else None}
    else:
        origin = {"folder": str(snapshot.resolve()), "files": provenance.folder_digests(snapshot)}
    record = {
        "schema": provenance.SCHEMA,
        "made_by": "athena convert",
        "source": origin,
        "recipe": {"bits": bits, "group_size": group_size, "router_bits": router_bits},
        "versions": installed_versions(("athena", "mlx", "mlx-lm")),
        "files": provenance.folder_digests(folder),
    }
    return write_file(folder / provenance.FILE, json.dumps(record, indent=1) + "\n")
