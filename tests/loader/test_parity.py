"""Backend parity on the same generated checkpoint: mlx-lm (CPU) and transformers + torch agree
on logits, greedy tokens and encode() vectors (float32)."""

from __future__ import annotations

import numpy as np
import pytest

from athena.models.olmoe import OLMoEModel

pytestmark = [pytest.mark.mlx, pytest.mark.torch]

PROMPTS = ("The quick brown fox", "Once upon a time, in ATHENA's memory,", "x")
TEXTS = ["hello", "a longer sentence about memory and mixtures of experts", "日本語も"]


def test_both_backends_tokenize_alike(mlx_model: OLMoEModel, torch_model: OLMoEModel) -> None:
    for prompt in PROMPTS:
        assert mlx_model.tokenize(prompt) == torch_model.tokenize(prompt)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_agree_within_1e_4(
    prompt: str, mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    ids = mlx_model.tokenize(prompt)
    mlx_logits, torch_logits = mlx_model.logits(ids), torch_model.logits(ids)
    assert mlx_logits.shape == torch_logits.shape == (len(ids), 258)
    assert mlx_logits.dtype == torch_logits.dtype == np.float32
    np.testing.assert_allclose(mlx_logits, torch_logits, rtol=0, atol=1e-4)
    assert np.abs(mlx_logits).max() > 1  # the logits are not all ~0, so agreement means something


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_gives_the_same_tokens(
    prompt: str, mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    from athena.backends import mlx_backend, transformers_backend

    options = {"max_tokens": 24, "temperature": 0.0}
    mlx_tokens = [
        t
        for _, t in mlx_backend.stream(mlx_model.model, mlx_model.tokenizer, prompt, **options)
        if t is not None
    ]
    torch_tokens = transformers_backend.generate_ids(
        torch_model.model, torch_model.tokenizer, prompt, **options
    )
    assert mlx_tokens == torch_tokens
    assert len(set(mlx_tokens)) > 1  # not a degenerate model repeating one token
    assert mlx_model.generate(prompt, max_tokens=24) == torch_model.generate(prompt, max_tokens=24)


def test_greedy_first_token_is_the_argmax_of_the_logits(mlx_model: OLMoEModel) -> None:
    prompt = PROMPTS[0]
    ids = mlx_model.tokenize(prompt)
    from athena.backends import mlx_backend

    [(_, first)] = list(
        mlx_backend.stream(
            mlx_model.model, mlx_model.tokenizer, prompt, max_tokens=1, temperature=0.0
        )
    )
    assert first == int(np.argmax(mlx_model.logits(ids)[-1]))


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_stream_joins_to_generate(
    backend: str, mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    model = mlx_model if backend == "mlx" else torch_model
    pieces = list(model.stream(PROMPTS[1], max_tokens=16))
    assert len(pieces) > 1
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == model.generate(PROMPTS[1], max_tokens=16)


def test_stream_can_stop_early_on_transformers(torch_model: OLMoEModel) -> None:
    stream = torch_model.stream(PROMPTS[0], max_tokens=40)
    first = next(stream)
    stream.close()  # stops transformers' generate thread and joins it
    assert first
    assert torch_model.generate(PROMPTS[0], max_tokens=40).startswith(first)


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_sampling_is_seeded(backend: str, mlx_model: OLMoEModel, torch_model: OLMoEModel) -> None:
    model = mlx_model if backend == "mlx" else torch_model
    runs = {
        seed: model.generate("Sample", max_tokens=12, temperature=1.0, seed=seed)
        for seed in range(4)
    }
    assert model.generate("Sample", max_tokens=12, temperature=1.0, seed=2) == runs[2]
    assert len(set(runs.values())) > 1
    assert model.generate("Sample", max_tokens=12) != ""


def test_encode_vectors_agree_within_1e_4(mlx_model: OLMoEModel, torch_model: OLMoEModel) -> None:
    mlx_vectors, torch_vectors = mlx_model.encode(TEXTS), torch_model.encode(TEXTS)
    assert mlx_vectors.shape == torch_vectors.shape == (3, 64)
    assert mlx_vectors.dtype == torch_vectors.dtype == np.float32
    np.testing.assert_allclose(mlx_vectors, torch_vectors, rtol=0, atol=1e-4)
    assert np.abs(mlx_vectors[0] - mlx_vectors[1]).max() > 1e-2  # texts differ, vectors differ


def test_encode_of_one_text_is_a_vector(mlx_model: OLMoEModel, torch_model: OLMoEModel) -> None:
    for model in (mlx_model, torch_model):
        vector = model.encode(TEXTS[1])
        assert vector.shape == (64,)
        np.testing.assert_allclose(vector, model.encode(TEXTS)[1], atol=1e-5)


def test_encode_pools_over_real_tokens_only(torch_model: OLMoEModel) -> None:
    """In a batch the short text is padded; its vector must equal the unpadded one."""
    batch = torch_model.encode(["hi", "a much longer text that forces padding of the first"])
    alone = torch_model.encode("hi")
    np.testing.assert_allclose(batch[0], alone, atol=1e-5)


def test_encode_is_the_mean_of_the_final_hidden_states(mlx_model: OLMoEModel) -> None:
    import mlx.core as mx

    ids = mlx_model.tokenize(TEXTS[1])
    hidden = np.array(mlx_model.model.model(mx.array([ids]))[0])
    np.testing.assert_allclose(mlx_model.encode(TEXTS[1]), hidden.mean(axis=0), atol=1e-6)


def test_encode_feeds_the_memory_action_head(torch_model: OLMoEModel) -> None:
    import torch

    vectors = torch_model.encode(TEXTS)
    logits = torch_model.last_action_logits
    assert logits is not None and logits.shape == (3, torch_model.config.num_memory_actions)
    with torch.no_grad():
        expected = torch_model.action_head(torch.from_numpy(vectors)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-6)
    torch_model.encode(TEXTS[0])
    assert torch_model.last_action_logits.shape == (torch_model.config.num_memory_actions,)
