"""Tiny OLMoE checkpoints made locally, for tests, guides and benchmarks (no hub, no torch).

`write_tiny_olmoe(out_dir)` writes a deterministic OLMoE folder that both `mlx_lm.load` and
transformers' `AutoModelForCausalLM.from_pretrained` load:

- config.json: `model_type` "olmoe" with the fields mlx_lm/models/olmoe.py and transformers'
  OlmoeConfig read (untied embeddings, no explicit head_dim, so both agree on the q/k norms);
- model.safetensors: weights in Hugging Face naming, one tensor per expert
  (`model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight`; mlx-lm's `sanitize()` stacks
  them, transformers' conversion mapping packs them);
- tokenizer.json, tokenizer_config.json, special_tokens_map.json: a byte-level BPE shaped like
  the GPT-NeoX/OLMo one: `<|endoftext|>` (id 0, eos), `<|padding|>` (id 1, pad), the 256
  bytes, then merges learnt from a fixed built-in corpus (`Ġthe`, `Ġmemory`, ...: word tokens
  that start with a space, like the real vocabulary). Every text encodes, and decodes back
  exactly; mlx-lm picks its BPE streaming detokenizer for it, as for real OLMoE.
- generation_config.json.

The folder is written atomically (see `write_tiny_olmoe`): a folder with files in it is
refused unless overwrite=True, which replaces these six files only and never touches others.


The package, by concern: tokenizer (the BPE and its files), presets (shapes, config.json),
weights (drawing and writing model.safetensors), folder (the atomic folder writing), sparse
(`write_sparse_olmoe`); this module composes them into `write_tiny_olmoe`.
Only numpy and `tokenizers` are imported. Weights are scaled so activations stay O(1) and
logits are well separated, so greedy decoding is not decided by rounding noise.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from athena.checkpoints.folder import (
    FILES,
    FolderBusy,
    FolderNotEmpty,
    _json_bytes,
    _reason,
    _remove_leftovers,
    _rename_folder,
    _replace_files,
    _write_durably,
    _writer_lock,
)
from athena.checkpoints.presets import DTYPES, SIZES, _preset, count_parameters, olmoe_config
from athena.checkpoints.sparse import OLMOE_1B_7B, write_sparse_olmoe
from athena.checkpoints.tokenizer import (
    CORPUS,
    EOS_TOKEN,
    NUM_MERGES,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    _tokenizer_files,
    bpe_merges,
)
from athena.checkpoints.weights import _make_weights, _save_safetensors
from athena.checkpoints.weights import _to_bfloat16_bytes as _to_bfloat16_bytes

__all__ = [
    "CORPUS",
    "DTYPES",
    "EOS_TOKEN",
    "FILES",
    "NUM_MERGES",
    "OLMOE_1B_7B",
    "PAD_TOKEN",
    "SIZES",
    "SPECIAL_TOKENS",
    "VOCAB_SIZE",
    "FolderBusy",
    "FolderNotEmpty",
    "bpe_merges",
    "count_parameters",
    "olmoe_config",
    "write_sparse_olmoe",
    "write_tiny_olmoe",
]


# For tests: called with "temp:NAME" after NAME is written into the temporary folder,
# "target:NAME" after NAME is put in place (or "target:folder" after the one rename). None
# in normal use.
_on_step: Callable[[str], None] | None = None


def write_tiny_olmoe(
    out_dir: str | Path,
    *,
    size: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write a deterministic OLMoE checkpoint folder to `out_dir` and return its path.

    The same (size, seed, dtype) always gives the same bytes. A folder that exists and is not
    empty is refused (`FolderNotEmpty`) unless `overwrite=True`, which replaces only the files
    this function writes (`FILES`) and leaves every other file in the folder alone.

    The files are written into a temporary folder beside `out_dir` (`.NAME.athena-tmp-XXXX`),
    then moved into place, with a lock (`.NAME.athena-lock`, removed after) so that two
    writers of one folder never mix: the second gets `FolderBusy`. A new or empty `out_dir`
    appears in one rename, complete or not at all. With `overwrite=True` into a folder that
    has files, they are replaced one by one, config.json removed first and put back last, so
    an interrupted overwrite leaves a folder without config.json (no loader accepts it; write
    again to complete it), never a loadable mix. An exception (Ctrl-C, a full disk) removes the
    temporary folder; a killed process may leave it, and the next write of `out_dir` removes it.
    """
    preset = _preset(size)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    out = Path(out_dir)
    target = out.resolve()  # one folder, one lock, whichever path (relative, symlink) names it
    if target.exists() and not target.is_dir():
        raise ValueError(f"{out} exists and is not a folder; pass a folder path for the model")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(target, out):
        _remove_leftovers(target)
        entries = sorted(p.name for p in target.iterdir()) if target.exists() else []
        if entries and not overwrite:
            raise FolderNotEmpty(out, entries)
        temp = target.parent / f".{target.name}.athena-tmp-{secrets.token_hex(4)}"
        temp.mkdir()
        try:
            try:
                _write_files(temp, size, preset, seed, dtype)
            except OSError as error:  # e.g. a full disk
                raise OSError(
                    f"could not write the checkpoint for {out} ({_reason(error)}); "
                    f"{'nothing in it was changed' if entries else 'it was not created'}"
                ) from error
            if not entries:
                _rename_folder(temp, target, out)
                return out
            try:
                _replace_files(temp, target)
            except OSError as error:
                raise OSError(
                    f"could not replace the checkpoint files in {out} ({_reason(error)}); it "
                    "has no config.json now (so it does not load half-written): write it again "
                    "to complete it"
                ) from error
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return out


def _step(name: str) -> None:
    if _on_step is not None:
        _on_step(name)


def _write_files(folder: Path, size: str, preset: dict[str, int], seed: int, dtype: str) -> None:
    """Every file of FILES into `folder`, each flushed to disk, config.json last."""
    weights = _make_weights(preset, np.random.default_rng(seed))
    _save_safetensors(folder / "model.safetensors", weights, dtype)
    _step("temp:model.safetensors")
    del weights
    for name, content in _tokenizer_files().items():
        _write_durably(folder / name, content)
        _step(f"temp:{name}")
    generation = {"eos_token_id": 0, "pad_token_id": 1, "do_sample": False}
    _write_durably(folder / "generation_config.json", _json_bytes(generation))
    _step("temp:generation_config.json")
    _write_durably(folder / "config.json", _json_bytes(olmoe_config(size, dtype=dtype)))
    _step("temp:config.json")
