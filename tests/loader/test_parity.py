"""Backend parity on the same generated checkpoint: mlx-lm (CPU) and transformers + torch agree
on token ids, logits, greedy tokens, completion text and encode() vectors (float32), for prompts
that stress the tokenizer (a byte-level BPE with space-led word tokens, like OLMo's)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from athena.checkpoints import VOCAB_SIZE
from athena.models.olmoe import OLMoEModel

pytestmark = [pytest.mark.mlx, pytest.mark.torch]

PROMPTS = (
    "The quick brown fox",
    "Once upon a time, in ATHENA's memory,",
    "x",
    " leading space",
    "  two leading spaces",
    "trailing space ",
    "trailing spaces   ",
    "line one\nline two",
    "ends with a newline\n",
    "\n\nstarts with newlines",
    "tabs\tand\tspaces",
    "Zürich, café, naïve",
    "emoji \U0001f642\U0001f44d\U0001f3fd and a flag \U0001f1eb\U0001f1f7",
    "日本語のテキスト",
    "1234567890",
    "x = 3.14159 * 2 + 1e-5",
    "<|endoftext|>",
    "<|padding|><|endoftext|>",
    "a special <|endoftext|> inside",
    "What is a mixture of experts?",
    "the memory of the experts",
    "é",
    "\u2014\u201cquotes\u201d\u2014",
)
MAX_TOKENS = 16
TEXTS = ["hello", "a longer sentence about memory and mixtures of experts", "日本語も"]


@dataclass
class Run:
    ids: list[int]  # the generated token ids, end-of-sequence excluded
    pieces: list[str]  # what stream() yields
    text: str  # what generate() returns


def _run(model: OLMoEModel, prompt: str) -> Run:
    ids = model.generate_ids(prompt, max_tokens=MAX_TOKENS, temperature=0)
    pieces = list(model.stream(prompt, max_tokens=MAX_TOKENS, temperature=0))
    return Run(ids, pieces, model.generate(prompt, max_tokens=MAX_TOKENS))


@pytest.fixture(scope="module")
def runs(mlx_model: OLMoEModel, torch_model: OLMoEModel) -> Iterator[dict[str, dict[str, Run]]]:
    """Every prompt generated greedily once per backend (shared by the tests below).

    torch runs on one thread here: on the tiny model two threads only add hand-off costs
    (16 tokens took 1.3 s with 2 threads and 0.1 s with 1 on this shared 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {
            prompt: {"mlx": _run(mlx_model, prompt), "transformers": _run(torch_model, prompt)}
            for prompt in PROMPTS
        }
    finally:
        torch.set_num_threads(threads)


def test_the_checkpoint_has_a_real_looking_bpe_tokenizer(mlx_model: OLMoEModel) -> None:
    """Merged, space-led word tokens (as in OLMo's vocabulary), and mlx-lm picks the
    streaming detokenizer it picks for real OLMoE (the one that trims a leading space)."""
    from mlx_lm.tokenizer_utils import BPEStreamingDetokenizer

    tokenizer = mlx_model.tokenizer
    assert isinstance(tokenizer.detokenizer, BPEStreamingDetokenizer)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode(" the memory")) == [
        "Ġthe",
        "Ġmemory",
    ]
    vocab = tokenizer.get_vocab()
    assert len(vocab) == VOCAB_SIZE
    assert sum(token.startswith("Ġ") and len(token) > 1 for token in vocab) >= 30


def test_both_backends_tokenize_alike_and_round_trip(
    mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    for prompt in PROMPTS:
        ids = mlx_model.tokenize(prompt)
        assert ids == torch_model.tokenize(prompt), prompt
        assert torch_model.tokenizer.decode(ids) == prompt
    assert mlx_model.tokenize("<|padding|><|endoftext|>") == [1, 0]


def test_each_backend_tokenizes_as_the_library_does_from_the_folder(
    tiny_olmoe: Path, mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    """The tokenizers are built from the config the preflight read (tokenizer_kwargs), not
    from config.json read again: the same class and the same ids as the libraries' own."""
    import mlx_lm
    from transformers import AutoTokenizer

    from athena.backends.base import tokenizer_kwargs

    raw = {
        "mlx": mlx_lm.load(str(tiny_olmoe))[1],
        "transformers": AutoTokenizer.from_pretrained(tiny_olmoe),
    }
    for backend, model in (("mlx", mlx_model), ("transformers", torch_model)):
        assert type(model.tokenizer) is type(raw[backend]), backend
        for prompt in PROMPTS:
            assert model.tokenizer.encode(prompt) == raw[backend].encode(prompt), (backend, prompt)
    config = mlx_model.preflight.info.config if mlx_model.preflight else None
    assert tokenizer_kwargs(config)["config"].model_type == "olmoe"  # built, not read again
    assert tokenizer_kwargs(None) == {}
    assert tokenizer_kwargs({"model_type": "no-such-model"}) == {}  # AutoTokenizer reads it


@pytest.mark.parametrize("prompt", PROMPTS)
def test_logits_agree_within_1e_4(
    prompt: str, mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    ids = mlx_model.tokenize(prompt)
    mlx_logits, torch_logits = mlx_model.logits(ids), torch_model.logits(ids)
    assert mlx_logits.shape == torch_logits.shape == (len(ids), VOCAB_SIZE)
    assert mlx_logits.dtype == torch_logits.dtype == np.float32
    np.testing.assert_allclose(mlx_logits, torch_logits, rtol=0, atol=1e-4)
    assert np.abs(mlx_logits).max() > 1  # the logits are not all ~0, so agreement means something


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_generation_gives_the_same_tokens_and_text(
    prompt: str, runs: dict[str, dict[str, Run]], torch_model: OLMoEModel
) -> None:
    mlx, torch = runs[prompt]["mlx"], runs[prompt]["transformers"]
    assert mlx.ids == torch.ids
    assert len(mlx.ids) == MAX_TOKENS and len(set(mlx.ids)) > 1  # no early stop, no one-token loop
    assert mlx.text == torch.text
    tokenizer = torch_model.tokenizer
    assert mlx.text == tokenizer.decode(mlx.ids)
    # The completion continues the prompt losslessly (this tokenizer round-trips every prompt).
    assert prompt + mlx.text == tokenizer.decode(tokenizer.encode(prompt) + mlx.ids)


@pytest.mark.parametrize("prompt", PROMPTS)
@pytest.mark.parametrize("backend", ["mlx", "transformers"])
def test_stream_joins_to_generate(
    prompt: str, backend: str, runs: dict[str, dict[str, Run]]
) -> None:
    run = runs[prompt][backend]
    assert "".join(run.pieces) == run.text
    assert all(isinstance(p, str) and p for p in run.pieces)
    assert not any("\ufffd" in p for p in run.pieces)


def test_some_completions_start_with_a_space_led_token(
    runs: dict[str, dict[str, Run]], torch_model: OLMoEModel
) -> None:
    """The case mlx-lm's own detokenizer gets wrong occurs here, so the tests above cover it."""
    tokenizer = torch_model.tokenizer
    spaced = [
        prompt
        for prompt, by_backend in runs.items()
        if tokenizer.convert_ids_to_tokens(by_backend["mlx"].ids[0]).startswith("Ġ")
    ]
    assert len(spaced) >= 3, spaced
    for prompt in spaced:
        assert runs[prompt]["mlx"].text.startswith(" ")
        assert runs[prompt]["mlx"].pieces[0].startswith(" ")


def test_greedy_first_token_is_the_argmax_of_the_logits(
    mlx_model: OLMoEModel, runs: dict[str, dict[str, Run]]
) -> None:
    for prompt in PROMPTS[:3]:
        logits = mlx_model.logits(mlx_model.tokenize(prompt))
        assert runs[prompt]["mlx"].ids[0] == int(np.argmax(logits[-1]))


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


def test_encode_vectors_agree_within_1e_5_for_every_prompt(
    mlx_model: OLMoEModel, torch_model: OLMoEModel
) -> None:
    """Measured 6.6e-7 (mlx CPU build vs torch, float32, vectors up to 2.7 in size)."""
    texts = [*PROMPTS, *TEXTS]
    mlx_vectors, torch_vectors = mlx_model.encode(texts), torch_model.encode(texts)
    assert mlx_vectors.shape == torch_vectors.shape == (len(texts), 64)
    assert mlx_vectors.dtype == torch_vectors.dtype == np.float32
    np.testing.assert_allclose(mlx_vectors, torch_vectors, rtol=0, atol=1e-5)
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
