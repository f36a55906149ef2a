"""Wrong arguments and adapters that do not fit: one sentence each, never a library's error.

load() returns False for a bad adapter or lora_path (it never raises for a bad model, folder,
adapter or argument); a loaded model's methods raise TypeError/ValueError with one sentence
naming the argument, its value and what is allowed, on both backends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from athena.models.olmoe import OLMoEConfig, OLMoEModel

BACKENDS = [
    pytest.param("mlx", marks=pytest.mark.mlx),
    pytest.param("torch", marks=pytest.mark.torch),
]


def test_the_model_takes_a_config() -> None:
    with pytest.raises(TypeError) as raised:
        OLMoEModel("not a config")  # type: ignore[arg-type]
    assert str(raised.value) == (
        "OLMoEModel takes an OLMoEConfig, got str; e.g. "
        "OLMoEModel(OLMoEConfig(model_name='path/to/olmoe'))"
    )


def test_public_names_and_the_seeds_private_ones_agree(tiny_olmoe: Path) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert (model.backend, model.is_loaded) == (model._backend, model._is_loaded) == (None, False)
    with pytest.raises(RuntimeError, match="not loaded; call load"):
        model.generate("Hello")


@pytest.mark.parametrize("lora_path", [123, "", "   ", 1.5])
def test_a_lora_path_that_is_not_a_path_is_one_sentence(
    tiny_olmoe: Path, lora_path: object
) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load(lora_path=lora_path) is False  # type: ignore[arg-type]
    assert model.load_error == (
        f"load(lora_path={lora_path!r}) is not allowed; use None or a LoRA adapter folder path"
    )


def test_a_lora_path_that_is_a_file_is_one_sentence(tiny_olmoe: Path) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    file = tiny_olmoe / "config.json"
    assert model.load(lora_path=str(file)) is False
    assert model.load_error == f"LoRA adapter {file} is a file; pass the folder that holds it"


def _peft_adapter(folder: Path, *, a_shape: tuple[int, int], b_shape: tuple[int, int]) -> None:
    from safetensors.numpy import save_file

    folder.mkdir()
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file(
        {
            f"{prefix}.lora_A.weight": np.ones(a_shape, dtype=np.float32),
            f"{prefix}.lora_B.weight": np.ones(b_shape, dtype=np.float32),
        },
        str(folder / "adapter_model.safetensors"),
    )


@pytest.mark.torch
@pytest.mark.parametrize(
    ("a_shape", "b_shape", "what"),
    [
        ((4, 64), (64, 3), "lora_A is [4, 64] and lora_B [64, 3]"),  # rank differs between A, B
        ((4, 32), (64, 4), "lora_A is [4, 32] and lora_B [64, 4]"),  # wrong input width
        ((2, 64), (64, 2), "lora_A is [2, 64] and lora_B [64, 2]"),  # rank is not config's r
    ],
    ids=["rank-between-A-and-B", "input-width", "rank-not-r"],
)
def test_a_peft_adapter_that_does_not_fit_is_one_sentence(
    tiny_olmoe: Path,
    tmp_path: Path,
    torch_installed: None,
    a_shape: tuple[int, int],
    b_shape: tuple[int, int],
    what: str,
) -> None:
    folder = tmp_path / "adapter"
    _peft_adapter(folder, a_shape=a_shape, b_shape=b_shape)
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load(lora_path=str(folder)) is False
    assert model.load_error == (
        f"LoRA adapter in {folder} does not fit model.layers.0.self_attn.q_proj: {what}, but "
        "with r=4 this layer needs [4, 64] and [64, 4]; use the adapter trained for this "
        "model, with its adapter_config.json"
    )


@pytest.mark.mlx
def test_an_mlx_adapter_that_does_not_fit_is_one_sentence(
    tiny_olmoe: Path, tmp_path: Path, mlx_installed: None
) -> None:
    import mlx.core as mx

    folder = tmp_path / "mlx-adapter"
    folder.mkdir()
    lora = {"rank": 4, "scale": 2.0, "dropout": 0.0, "keys": ["self_attn.q_proj"]}
    config = {"fine_tune_type": "lora", "num_layers": 2, "lora_parameters": lora}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    key = "model.layers.1.self_attn.q_proj.lora_a"
    mx.save_safetensors(str(folder / "adapters.safetensors"), {key: mx.zeros((32, 4))})
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), allow_fallback=False))
    assert model.load(lora_path=str(folder)) is False
    assert model.load_error == (
        f"the LoRA adapter in {folder} does not fit this model ({key}: adapter shape (32, 4) "
        "does not match model parameter shape (64, 4)); use the adapter trained for this "
        "model, with its adapter_config.json"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_encode_takes_text_and_says_so(backend: str, request: pytest.FixtureRequest) -> None:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    cases = [
        ({"a": 1}, "encode() takes a str or a list of str, got dict; pass list(d.values()) "
         "for a dict's texts"),
        ({"a", "b"}, "encode() takes a str or a list of str, got set"),
        (None, "encode() takes a str or a list of str, got NoneType"),
        (3, "encode() takes a str or a list of str, got int"),
        (b"bytes", "encode() takes text, got bytes; decode it first (e.g. data.decode('utf-8'))"),
        (["ok", 3], "texts[1] must be a str, got int"),
    ]  # fmt: skip
    for value, sentence in cases:
        with pytest.raises(TypeError) as raised:
            model.encode(value)  # type: ignore[arg-type]
        assert str(raised.value) == sentence
    with pytest.raises(TypeError, match=r"^encode\(truncate='yes'\) is not allowed"):
        model.encode("x", truncate="yes")  # type: ignore[arg-type]
    assert model.encode(("a", "b")).shape[0] == 2  # a tuple and a generator are fine
    assert model.encode(text for text in ["a", "b", "c"]).shape[0] == 3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [-1, 2**63, 2**70, 1.5, True])
def test_a_seed_outside_what_both_backends_take_is_one_sentence(
    backend: str, seed: object, request: pytest.FixtureRequest
) -> None:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    sentence = f"generate(seed={seed!r}) is not allowed; use an integer from 0 to 2**63 - 1"
    with pytest.raises(ValueError) as raised:
        model.generate("Hello", max_tokens=2, temperature=1.0, seed=seed)  # type: ignore[arg-type]
    assert str(raised.value) == sentence
    with pytest.raises(ValueError):
        model.stream("Hello", max_tokens=2, temperature=1.0, seed=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_largest_seed_samples_on_both_backends(
    backend: str, request: pytest.FixtureRequest
) -> None:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    first = model.generate_ids("Hello", max_tokens=3, temperature=1.0, seed=2**63 - 1)
    assert first == model.generate_ids("Hello", max_tokens=3, temperature=1.0, seed=2**63 - 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_ids_outside_the_vocabulary_are_one_sentence(
    backend: str, request: pytest.FixtureRequest
) -> None:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    vocab = model.logits([1, 2]).shape[1]
    for ids, index, value in (([1, vocab], 1, vocab), ([-1], 0, -1)):
        with pytest.raises(ValueError) as raised:
            model.logits(ids)
        assert str(raised.value) == (
            f"token_ids[{index}]={value} is outside this model's vocabulary (0 to {vocab - 1}); "
            "use ids from model.tokenize()"
        )
    with pytest.raises(TypeError, match=r"^token_ids must be a list of int, got str$"):
        model.logits("hello")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^token_ids is empty"):
        model.logits([])


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
@pytest.mark.parametrize("what", ["folder", "config.json", "model.safetensors"])
def test_a_model_the_user_cannot_read_is_one_sentence(
    tiny_olmoe: Path, tmp_path: Path, what: str
) -> None:
    """Permissions that stop this user: as root (which reads everything) the child runs
    without the capabilities that bypass them (setpriv drops CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH). A child process: load() returns False, the CLI exits 1."""
    model = Path(shutil.copytree(tiny_olmoe, tmp_path / "olmoe"))
    target = model if what == "folder" else model / what
    target.chmod(0o000)
    command = [sys.executable, "-m", "athena.cli", "generate", "--model", str(model), "Hi"]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr == (
        f"athena generate: cannot read {target} (Permission denied); give your user read "
        "access to it (chmod/chown), or copy the model elsewhere\n"
    )
