"""OLMoEModel.load() per TASK-074: mlx-lm first, transformers as the fallback, False if neither."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from athena.checkpoints import write_tiny_olmoe
from athena.models import olmoe
from athena.models.olmoe import NO_BACKEND, OLMoEConfig, OLMoEModel


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("athena")
    ]


# -- the acceptance lines ---------------------------------------------------------------------


@pytest.mark.mlx
def test_mlx_path_sets_backend_loaded_and_no_action_head(
    tiny_olmoe: Path, mlx_installed: None, loader_log: pytest.LogCaptureFixture
) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is True
    assert model.backend == "mlx"
    assert model.is_loaded is True
    assert model.action_head is None
    assert model.load_error is None
    loading = [r for r in loader_log.records if r.msg == "Loading OLMoE via mlx-lm: %s"]
    assert [r.args for r in loading] == [(str(tiny_olmoe),)]
    import mlx.nn

    assert isinstance(model.model, mlx.nn.Module)
    assert model.tokenizer.eos_token_ids == {0}


@pytest.mark.torch
def test_use_mlx_false_takes_transformers_with_action_head(torch_model: OLMoEModel) -> None:
    import torch

    assert torch_model.backend == "transformers"
    assert torch_model.is_loaded is True
    assert isinstance(torch_model.action_head, olmoe.MemoryActionHead)
    assert isinstance(torch_model.action_head, torch.nn.Module)
    assert type(torch_model.model).__name__ == "OlmoeForCausalLM"
    assert next(torch_model.model.parameters()).dtype == torch.float32


@pytest.mark.torch
def test_mlx_unavailable_takes_transformers(
    tiny_olmoe: Path,
    torch_installed: None,
    no_mlx: None,
    loader_log: pytest.LogCaptureFixture,
) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))  # use_mlx=True, but no mlx
    assert model.load() is True
    assert model.backend == "transformers"
    assert isinstance(model.action_head, olmoe.MemoryActionHead)
    assert not any(r.msg == "Loading OLMoE via mlx-lm: %s" for r in loader_log.records)
    assert "Loading OLMoE via transformers: " + str(tiny_olmoe) in _messages(
        loader_log, logging.INFO
    )


def test_both_missing_simulated_returns_false_with_the_log_line(
    tiny_olmoe: Path,
    no_mlx: None,
    hide_module: Callable[[str], None],
    loader_log: pytest.LogCaptureFixture,
) -> None:
    hide_module("transformers")
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is False
    assert model.is_loaded is False
    assert model.backend is None
    assert model.model is None and model.action_head is None
    assert _messages(loader_log, logging.ERROR) == [
        "No inference backend available (mlx-lm and transformers both missing)"
    ]
    assert model.load_error == NO_BACKEND


def test_use_mlx_false_and_transformers_missing_simulated_says_what_to_install(
    tiny_olmoe: Path, hide_module: Callable[[str], None], loader_log: pytest.LogCaptureFixture
) -> None:
    hide_module("transformers")
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load() is False
    expected = (
        "transformers is not installed (install the torch group: uv sync --group torch); "
        "or set use_mlx=True to use mlx-lm"
    )
    assert _messages(loader_log, logging.ERROR) == [expected]


@pytest.mark.torch
def test_broken_mlx_install_simulated_falls_back_to_transformers(
    tiny_olmoe: Path,
    mlx_installed: None,
    torch_installed: None,
    break_import: Callable[[str, ImportError], None],
    loader_log: pytest.LogCaptureFixture,
) -> None:
    break_import("mlx_lm", ImportError("libmlx.so: cannot open shared object file"))
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is True
    assert model.backend == "transformers"
    assert isinstance(model.action_head, olmoe.MemoryActionHead)
    [warning] = _messages(loader_log, logging.WARNING)
    assert warning == (
        "mlx-lm failed, falling back to transformers: mlx-lm is installed but failed to import "
        "(ImportError: libmlx.so: cannot open shared object file); reinstall it (on a Mac: "
        "uv sync --reinstall-package mlx; on Linux the CPU build: uv sync --group mlx-cpu)"
    )


def test_broken_mlx_simulated_and_transformers_missing_gives_both_reasons(
    tiny_olmoe: Path,
    mlx_installed: None,
    break_import: Callable[[str, ImportError], None],
    hide_module: Callable[[str], None],
    loader_log: pytest.LogCaptureFixture,
) -> None:
    break_import("mlx_lm", ImportError("libmlx.so: cannot open shared object file"))
    hide_module("transformers")
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is False
    [error] = _messages(loader_log, logging.ERROR)
    assert error.startswith("mlx-lm failed (mlx-lm is installed but failed to import (ImportError")
    assert error.endswith(
        "and transformers is not installed (install the torch group: uv sync --group torch)"
    )


@pytest.mark.mlx
def test_no_fallback_when_asked_returns_false_with_the_mlx_reason(
    tiny_olmoe: Path, mlx_installed: None, loader_log: pytest.LogCaptureFixture
) -> None:
    config = OLMoEConfig(model_name=str(tiny_olmoe), dtype="bfloat16", allow_fallback=False)
    model = OLMoEModel(config)
    assert model.load() is False
    assert model.load_error == (
        "dtype='bfloat16' cannot run OLMoE's experts on mlx's CPU backend (gather_mm takes "
        "float32 only); use dtype='float32' or None, or quantize_bits=4 or 8"
    )
    assert _messages(loader_log, logging.ERROR) == [model.load_error]
    assert not any("transformers" in m for m in _messages(loader_log, logging.INFO))


@pytest.mark.mlx
@pytest.mark.torch
def test_mlx_failure_falls_back_and_transformers_honours_dtype(
    tiny_olmoe: Path,
    mlx_installed: None,
    torch_installed: None,
    loader_log: pytest.LogCaptureFixture,
) -> None:
    import torch

    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), dtype="bfloat16"))
    assert model.load() is True
    assert model.backend == "transformers"
    assert next(model.model.parameters()).dtype == torch.bfloat16
    [warning] = _messages(loader_log, logging.WARNING)
    assert warning.startswith("mlx-lm failed, falling back to transformers: dtype='bfloat16'")
    assert model.generate("Hello", max_tokens=3)  # bf16 runs on torch's CPU


@pytest.mark.mlx
def test_mlx_model_path_is_what_mlx_loads(
    tiny_olmoe: Path, tmp_path: Path, mlx_installed: None, loader_log: pytest.LogCaptureFixture
) -> None:
    other = write_tiny_olmoe(tmp_path / "mlx-version", seed=1)
    config = OLMoEConfig(model_name=str(tiny_olmoe), mlx_model_path=str(other))
    model = OLMoEModel(config)
    assert model.load() is True
    assert model.backend == "mlx"
    assert [r.args for r in loader_log.records if r.msg.startswith("Loading OLMoE")] == [
        (str(other),)
    ]
    reference = OLMoEModel(OLMoEConfig(model_name=str(other)))
    assert reference.load()
    ids = model.tokenize("seed one")
    np.testing.assert_array_equal(model.logits(ids), reference.logits(ids))


@pytest.mark.mlx
@pytest.mark.torch
def test_damaged_mlx_model_path_falls_back_to_model_name(
    tiny_olmoe: Path,
    tmp_path: Path,
    mlx_installed: None,
    torch_installed: None,
    loader_log: pytest.LogCaptureFixture,
) -> None:
    damaged = tmp_path / "converted"
    damaged.mkdir()  # no config.json
    config = OLMoEConfig(model_name=str(tiny_olmoe), mlx_model_path=str(damaged))
    model = OLMoEModel(config)
    assert model.load() is True
    assert model.backend == "transformers"
    assert _messages(loader_log, logging.WARNING) == [
        "mlx-lm failed, falling back to transformers: config.json not found in "
        f"{damaged} (is this a model folder?)"
    ]


# -- dtype and quantization on the mlx path -------------------------------------------------


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_olmoe(tmp_path_factory.mktemp("bf16") / "olmoe-bf16", dtype="bfloat16")


@pytest.mark.mlx
@pytest.mark.torch
def test_bf16_moe_on_mlx_cpu_is_upcast_at_load_and_matches_torch(
    bf16_checkpoint: Path,
    mlx_installed: None,
    torch_installed: None,
    loader_log: pytest.LogCaptureFixture,
) -> None:
    import mlx.core as mx
    import mlx_lm

    raw, _ = mlx_lm.load(str(bf16_checkpoint))  # what load() protects against
    with pytest.raises(RuntimeError, match="GatherMM"):
        mx.eval(raw(mx.array([[5, 6, 7]])))

    model = OLMoEModel(OLMoEConfig(model_name=str(bf16_checkpoint)))
    assert model.load() is True
    assert model.backend == "mlx"
    assert (
        "Upcasting bfloat16 weights to float32: mlx's CPU backend runs MoE experts "
        "(gather_mm) in float32 only"
    ) in _messages(loader_log, logging.INFO)
    from athena.backends.mlx_backend import arrays, floating

    assert floating(arrays(model.model)) == ({"float32"}, True)
    assert model.generate("Hello", max_tokens=5)

    # The same bf16 values, run in float32 by torch, give the same logits.
    reference = OLMoEModel(
        OLMoEConfig(model_name=str(bf16_checkpoint), use_mlx=False, dtype="float32")
    )
    assert reference.load()
    ids = model.tokenize("bf16 weights, float32 compute")
    np.testing.assert_allclose(model.logits(ids), reference.logits(ids), atol=1e-4)


@pytest.mark.mlx
def test_quantize_bits_quantizes_on_mlx_and_8_bits_is_closer_than_4(
    tiny_olmoe: Path, mlx_model: OLMoEModel, loader_log: pytest.LogCaptureFixture
) -> None:
    from athena.backends.mlx_backend import arrays, floating, is_quantized

    ids = mlx_model.tokenize("quantized experts")
    full = mlx_model.logits(ids)
    errors = {}
    for bits in (4, 8):
        model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), quantize_bits=bits))
        assert model.load() is True
        assert model.backend == "mlx"
        # no float expert stack is left for gather_mm: the experts are quantized too
        assert is_quantized(model.model) and not floating(arrays(model.model))[1]
        assert isinstance(model.generate("Hello", max_tokens=4), str)
        logits = model.logits(ids)
        errors[bits] = float(np.abs(logits - full).max())
        correlation = np.corrcoef(logits.ravel(), full.ravel())[0, 1]
        assert correlation > 0.9
    assert 0 < errors[8] < errors[4]
    assert "Quantized %s to %s bits (group size %s)" in [r.msg for r in loader_log.records]


# -- state ----------------------------------------------------------------------------------


def test_generate_before_load_is_a_clear_error() -> None:
    model = OLMoEModel(OLMoEConfig(model_name="/nowhere"))
    assert model.is_loaded is False and model.backend is None and model.action_head is None
    with pytest.raises(RuntimeError, match=r"not loaded; call load\(\) and check that it is True"):
        model.generate("Hello")
    with pytest.raises(RuntimeError, match="not loaded"):
        model.encode("Hello")


@pytest.mark.torch
def test_a_failed_reload_clears_the_previous_model(
    tiny_olmoe: Path, torch_installed: None, tmp_path: Path
) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load() is True
    model.config.model_name = str(tmp_path / "gone")
    assert model.load() is False
    assert model.model is None and model.action_head is None and not model.is_loaded


@pytest.mark.mlx
def test_unload_on_mlx_empties_mlx_buffer_cache_and_load_works_again(
    tiny_olmoe: Path, mlx_installed: None
) -> None:
    import mlx.core as mx

    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load() is True
    first = model.encode("hello")
    loaded = mx.get_active_memory()
    model.unload()
    assert model.model is None and model.tokenizer is None and not model.is_loaded
    assert mx.get_active_memory() < loaded, "the weights are still held"
    # The weights were freed into mlx's cache, and unload() gave the cache back.
    assert mx.get_cache_memory() == 0
    with pytest.raises(RuntimeError, match="not loaded"):
        model.encode("hello")
    assert model.load() is True
    np.testing.assert_array_equal(model.encode("hello"), first)


@pytest.mark.torch
def test_unload_on_transformers_drops_the_model_and_head(
    tiny_olmoe: Path, torch_installed: None
) -> None:
    import weakref

    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load() is True
    weights = weakref.ref(model.model)
    model.unload()
    assert weights() is None, "something still holds the unloaded model"
    assert model.action_head is None and model.backend is None and not model.is_loaded


def test_unload_before_load_does_nothing() -> None:
    model = OLMoEModel(OLMoEConfig(model_name="/nowhere"))
    model.unload()
    assert model.is_loaded is False
