"""Tiny OLMoE checkpoints made locally, for tests, guides and benchmarks (no hub, no torch):
deterministic folders mlx-lm and transformers both load (config, safetensors in Hugging Face
naming, an OLMo-like byte-level BPE tokenizer), weights scaled so rounding never decides."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from athena.atomic import FolderBusy, FolderNotEmpty, reason, replacing_folder
from athena.checkpoints.presets import SIZES, count_parameters, olmoe_config
from athena.checkpoints.sparse import write_sparse_olmoe
from athena.checkpoints.tokenizer import VOCAB_SIZE, bpe_merges, json_bytes, tokenizer_files
from athena.checkpoints.weights import make_weights, save_safetensors

# The files write_tiny_olmoe writes: overwrite=True replaces these and no others.
FILES = (
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "config.json",
)


def write_tiny_olmoe(
    out_dir: str | Path,
    *,
    size: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write an OLMoE checkpoint folder (same arguments, same bytes) whole, as
    `athena.atomic.replacing_folder` does; a non-empty folder is `FolderNotEmpty` unless
    `overwrite=True`, which replaces only `FILES`. Returns its path."""
    config = olmoe_config(size, dtype=dtype)
    out = Path(out_dir)
    target = out.resolve()  # one folder, one lock, whichever path (relative, symlink) names it
    if target.exists() and not target.is_dir():
        raise ValueError(f"{out} exists and is not a folder; pass a folder path for the model")
    existed = target.is_dir() and any(target.iterdir())
    try:
        with replacing_folder(target, out, overwrite=overwrite, replaces=FILES) as temporary:
            weights = make_weights(config, np.random.default_rng(seed))
            save_safetensors(temporary / "model.safetensors", weights, dtype)
            generation = json_bytes({"eos_token_id": 0, "pad_token_id": 1, "do_sample": False})
            more = {"generation_config.json": generation, "config.json": json_bytes(config)}
            for name, content in (tokenizer_files() | more).items():
                (temporary / name).write_bytes(content)
    except OSError as error:  # e.g. a full disk
        if isinstance(error, FolderNotEmpty | FolderBusy):
            raise
        raise OSError(
            f"could not write the checkpoint for {out} ({reason(error)}); "
            f"{'nothing in it was changed' if existed else 'it was not created'}"
        ) from error
    return out
