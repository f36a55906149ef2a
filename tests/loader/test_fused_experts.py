"""athena's transformers load joins OLMoE's per-expert weights into transformers' fused tensors
itself (one copy each, no stacking): the model it builds must be the one transformers' own
`from_pretrained(folder)` builds, from one file or from shards that split a layer's experts,
and a bad expert weight must stop the load in one sentence rather than leave memory unset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from athena.checkpoints import write_tiny_olmoe
from athena.models.olmoe import OLMoEConfig, OLMoEModel

pytestmark = pytest.mark.torch

UP = "model.layers.0.mlp.experts.1.up_proj.weight"
GATE_UP = "model.layers.0.mlp.experts.gate_up_proj"


def _shard(folder: Path, split_after: str) -> None:
    """Rewrite model.safetensors as two shards with an index, the first ending at `split_after`
    (sorted keys), as the hub shards a checkpoint."""
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    keys = sorted(weights)
    cut = keys.index(split_after) + 1
    weight_map = {}
    for number, part in enumerate((keys[:cut], keys[cut:]), start=1):
        name = f"model-0000{number}-of-00002.safetensors"
        save_file({key: weights[key] for key in part}, str(folder / name))
        weight_map.update(dict.fromkeys(part, name))
    index = {"metadata": {}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def _loaded(folder: Path, dtype: str | None = None) -> OLMoEModel:
    model = OLMoEModel(OLMoEConfig(model_name=str(folder), use_mlx=False, dtype=dtype))
    assert model.load(), model.load_error
    return model


@pytest.mark.parametrize(
    ("stored", "dtype", "sharded"),
    [("float32", None, False), ("bfloat16", "float32", False), ("float32", None, True)],
    ids=["as-stored", "bfloat16-upcast", "experts-split-across-shards"],
)
def test_athena_builds_the_model_transformers_own_load_builds(
    tmp_path: Path, stored: str, dtype: str | None, sharded: bool
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    folder = write_tiny_olmoe(tmp_path / "tiny", dtype=stored)
    if sharded:
        _shard(folder, UP)  # layer 0's experts 0-1 (gate, up) in one file, the rest in the next
    ours = _loaded(folder, dtype).model
    theirs = AutoModelForCausalLM.from_pretrained(
        str(folder), dtype=getattr(torch, dtype) if dtype else "auto", local_files_only=True
    )
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert sorted(mine) == sorted(reference)
    assert any(key.endswith("experts.gate_up_proj") for key in mine)
    for key, tensor in reference.items():
        assert mine[key].dtype == tensor.dtype, key
        assert torch.equal(mine[key], tensor), key
    assert ours.generation_config.to_dict() == theirs.generation_config.to_dict()
    assert ours.generation_config.eos_token_id == 0  # the folder's generation_config.json


def _rewritten(base: Path, folder: Path, case: str) -> Path:
    from safetensors.numpy import load_file, save_file

    shutil.copytree(base, folder)
    weights = load_file(str(folder / "model.safetensors"))
    if case == "missing":
        del weights[UP]
    elif case == "misshapen":
        weights[UP] = weights[UP][:, :-1].copy()
    save_file(weights, str(folder / "model.safetensors"))
    if case == "repeated":  # the same expert weight in both shards
        _shard(folder, UP)
        second = folder / "model-00002-of-00002.safetensors"
        rest = load_file(str(second))
        save_file(rest | {UP: weights[UP]}, str(second))
    return folder


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("missing", f"{GATE_UP} is made of 15 weights, not 16"),
        ("misshapen", f"{UP} is [64, 63], not one of 8 x [64, 64]"),
        ("repeated", f"{GATE_UP} is made of 17 weights, not 16"),
    ],
)
def test_a_bad_expert_weight_is_one_sentence(
    tiny_olmoe: Path, tmp_path: Path, case: str, says: str
) -> None:
    folder = _rewritten(tiny_olmoe, tmp_path / case, case)
    model = OLMoEModel(OLMoEConfig(model_name=str(folder), use_mlx=False))
    assert model.load() is False
    assert model.load_error == (
        f"transformers could not load {folder} (the weights do not match config.json: {says}); "
        "re-create the checkpoint or fix config.json"
    )
    assert model.model is None
