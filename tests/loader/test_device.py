"""ATHENA_MLX_DEVICE picks mlx's device (CI's macOS VMs run the mlx path on mx.cpu)."""

from __future__ import annotations

from pathlib import Path

import pytest

from athena.models.olmoe import OLMoEConfig, OLMoEModel


@pytest.fixture
def default_device_restored(mlx_installed: None):
    import mlx.core as mx

    before = mx.default_device()
    yield
    mx.set_default_device(before)


def load_mlx_only(path: Path) -> OLMoEModel:
    model = OLMoEModel(OLMoEConfig(model_name=str(path), allow_fallback=False))
    model.load()
    return model


def test_cpu_device_is_used(
    tiny_olmoe: Path, monkeypatch: pytest.MonkeyPatch, default_device_restored: None
) -> None:
    import mlx.core as mx

    monkeypatch.setenv("ATHENA_MLX_DEVICE", "CPU")
    model = load_mlx_only(tiny_olmoe)
    assert model.backend == "mlx", model.load_error
    assert mx.default_device() == mx.cpu
    assert model.generate("hi", max_tokens=3, temperature=0.0)


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ("tpu", "ATHENA_MLX_DEVICE='tpu' is not a device; use cpu or gpu, or unset it"),
        ("gpu", "ATHENA_MLX_DEVICE=gpu but Metal is not available here; use cpu or unset it"),
    ],
)
def test_unusable_device_is_one_sentence(
    tiny_olmoe: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_device_restored: None,
    value: str,
    sentence: str,
) -> None:
    import mlx.core as mx

    if value == "gpu" and mx.metal.is_available():
        pytest.skip("Metal is available here, so gpu is a valid device")
    monkeypatch.setenv("ATHENA_MLX_DEVICE", value)
    model = load_mlx_only(tiny_olmoe)
    assert model.is_loaded is False
    assert model.load_error == sentence


def test_encode_and_logits_run_inside_mlx_lms_wired_limit(
    mlx_model: OLMoEModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generation is wired by mlx-lm itself; encode() and logits() must be too (memory wiring
    guide). The real wired_limit runs (a no-op without Metal); the test records its use."""
    import importlib

    generate_module = importlib.import_module("mlx_lm.generate")  # mlx_lm.generate is a function
    real = generate_module.wired_limit
    wired: list[object] = []

    def recording(model: object, *args: object, **kwargs: object):
        wired.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(generate_module, "wired_limit", recording)
    vector = mlx_model.encode("hello")
    mlx_model.logits([5, 6, 7])
    assert wired == [mlx_model.model, mlx_model.model]
    assert vector.shape[-1] == 64
