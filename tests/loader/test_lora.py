"""LoRA adapters at load(): PEFT adapters merged on transformers, mlx-lm adapters on mlx."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from athena.models.olmoe import OLMoEConfig, OLMoEModel


def _write_peft_adapter(folder: Path, hidden: int, rank: int = 4) -> tuple[np.ndarray, float]:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    a = rng.standard_normal((rank, hidden)).astype(np.float32)
    b = rng.standard_normal((hidden, rank)).astype(np.float32)
    folder.mkdir()
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file(
        {f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": b},
        str(folder / "adapter_model.safetensors"),
    )
    return b @ a, 8 / rank


@pytest.mark.torch
def test_lora_is_merged_on_transformers(
    tiny_olmoe: Path, tmp_path: Path, torch_model: OLMoEModel
) -> None:
    delta, scale = _write_peft_adapter(tmp_path / "adapter", hidden=64)
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load(lora_path=str(tmp_path / "adapter")) is True
    before = torch_model.model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    after = model.model.model.layers[0].self_attn.q_proj.weight.detach().numpy()
    np.testing.assert_allclose(after - before, scale * delta, atol=1e-5)
    other = model.model.model.layers[1].self_attn.q_proj.weight.detach().numpy()
    reference = torch_model.model.model.layers[1].self_attn.q_proj.weight.detach().numpy()
    np.testing.assert_array_equal(other, reference)


@pytest.mark.torch
def test_missing_lora_folder_returns_false(
    tiny_olmoe: Path, tmp_path: Path, torch_installed: None, loader_log: pytest.LogCaptureFixture
) -> None:
    config = OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False, lora_path=str(tmp_path / "no"))
    model = OLMoEModel(config)
    assert model.load() is False
    errors = [
        r.getMessage()
        for r in loader_log.records
        if r.levelno == logging.ERROR and r.name.startswith("athena")
    ]
    assert errors == [f"LoRA adapter folder not found: {tmp_path / 'no'}"]


@pytest.mark.mlx
def test_mlx_lora_adapter_is_applied(
    tiny_olmoe: Path, tmp_path: Path, mlx_model: OLMoEModel
) -> None:
    """An mlx-lm format adapter (adapters.safetensors + adapter_config.json) on the mlx path."""
    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    lora = {"rank": 4, "scale": 2.0, "dropout": 0.0, "keys": ["self_attn.q_proj"]}
    tuned, _ = mlx_lm.load(str(tiny_olmoe))
    linear_to_lora_layers(tuned, 2, lora)
    adapters = {}
    for name, value in tree_flatten(tuned.parameters()):
        if name.endswith("lora_b"):  # zero at init: make the adapter change something
            value = mx.random.normal(value.shape, key=mx.random.key(3)) * 0.1
        if name.endswith(("lora_a", "lora_b")):
            adapters[name] = value
    tuned.load_weights(list(adapters.items()), strict=False)
    folder = tmp_path / "mlx-adapter"
    folder.mkdir()
    mx.save_safetensors(str(folder / "adapters.safetensors"), adapters)
    config = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": lora}
    (folder / "adapter_config.json").write_text(json.dumps(config))

    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load(lora_path=str(folder)) is True
    assert model.backend == "mlx"
    ids = model.tokenize("adapted")
    expected = np.array(tuned(mx.array([ids]))[0])
    np.testing.assert_allclose(model.logits(ids), expected, atol=1e-5)
    assert np.abs(model.logits(ids) - mlx_model.logits(ids)).max() > 1e-3
