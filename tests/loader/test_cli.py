"""`athena generate` and `athena encode` on a generated checkpoint, with both backends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from athena.cli import main
from athena.models.olmoe import OLMoEModel


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("mlx", marks=pytest.mark.mlx),
        pytest.param("transformers", marks=pytest.mark.torch),
    ],
)
def test_generate_prints_the_greedy_completion(
    backend: str,
    tiny_olmoe: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    model: OLMoEModel = request.getfixturevalue("mlx_model" if backend == "mlx" else "torch_model")
    capsys.readouterr()  # the fixture's own loading output
    argv = ["generate", "--model", str(tiny_olmoe), "--backend", backend, "--max-tokens", "12"]
    assert main([*argv, "The quick brown fox"]) == 0
    captured = capsys.readouterr()
    assert captured.out == model.generate("The quick brown fox", max_tokens=12) + "\n"
    assert captured.err == ""


@pytest.mark.mlx
@pytest.mark.torch
def test_encode_prints_one_json_vector_per_text(
    tiny_olmoe: Path,
    mlx_model: OLMoEModel,
    torch_model: OLMoEModel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    texts = ["hello", "memory of experts"]
    outputs = {}
    for backend in ("mlx", "transformers"):
        argv = ["encode", "--model", str(tiny_olmoe), "--backend", backend, *texts]
        assert main(argv) == 0
        lines = capsys.readouterr().out.splitlines()
        outputs[backend] = np.array([json.loads(line) for line in lines])
    assert outputs["mlx"].shape == (2, 64)
    np.testing.assert_allclose(outputs["mlx"], mlx_model.encode(texts), atol=1e-6)
    # the two backends: 4.2e-7 measured on these texts
    np.testing.assert_allclose(outputs["mlx"], outputs["transformers"], atol=1e-5, rtol=0)


@pytest.mark.mlx
def test_verbose_shows_the_loader_steps_and_the_handler_is_removed(
    tiny_olmoe: Path, mlx_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    argv = ["generate", "--model", str(tiny_olmoe), "--max-tokens", "2", "-v", "Hi"]
    assert main(argv) == 0
    assert f"athena: Loading OLMoE via mlx-lm: {tiny_olmoe}\n" in capsys.readouterr().err
    assert logging.getLogger("athena").handlers == []


@pytest.mark.mlx
def test_quantized_generation_from_the_cli(
    tiny_olmoe: Path, mlx_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["generate", "--model", str(tiny_olmoe), "--quantize-bits", "4", "--max-tokens", "5"]
    assert main([*argv, "Hello"]) == 0
    assert capsys.readouterr().out.strip()


@pytest.mark.mlx
def test_bf16_checkpoint_generates_from_the_cli(
    tmp_path: Path, mlx_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tiny-model", str(tmp_path / "bf16"), "--dtype", "bfloat16"]) == 0
    capsys.readouterr()
    argv = ["generate", "--model", str(tmp_path / "bf16"), "--backend", "mlx", "--max-tokens", "5"]
    assert main([*argv, "Hello"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() and captured.err == ""
