"""The completion text is exactly `tokenizer.decode(completion ids)` on both backends: a leading
space is kept (mlx-lm's own streaming detokenizer drops it), characters split across byte
tokens stream whole, and the end-of-sequence token is not part of the text.

The model side uses the scripted checkpoint (`scripted_olmoe` below): a real OLMoE folder
whose greedy output is known in advance: " memory café 🙂", or " 🙂" after a prompt that ends
in "!"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from athena.backends import completion
from athena.models.olmoe import OLMoEConfig, OLMoEModel

SCRIPT = ("Ġmemory", "Ġc", "a", "f", "Ã", "©", "Ġ", "ð", "Ł", "Ļ", "Ĥ")  # " memory café 🙂"
SCRIPT_TEXT = " memory café \U0001f642"
SCRIPT_ENTRIES = {"!": "Ġ"}  # a prompt ending in "!" starts at the bare space: " 🙂"


@pytest.fixture(scope="module")
def scripted_olmoe(tiny_olmoe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint turned into a bigram machine, so that greedy decoding writes
    SCRIPT_TEXT after any prompt (then the end-of-sequence token), on both backends.

    Every layer's output projections (attention o_proj, experts' down_proj) are zero, so the
    final hidden state is the normed embedding of the last token. Each token of SCRIPT gets
    its own axis of the embedding space, every other token shares axis 0, and lm_head maps
    axis k to the next token of the script (logit 10, all others 0): the first generated
    token starts with a space (`Ġmemory`, or `Ġ` after "!"), é and 🙂 are split across 2 and
    4 byte tokens, and generation ends by itself.
    """
    import numpy as np
    from safetensors.numpy import load_file, save_file
    from tokenizers import Tokenizer

    folder = Path(shutil.copytree(tiny_olmoe, tmp_path_factory.mktemp("scripted") / "olmoe"))
    weights = load_file(str(folder / "model.safetensors"))
    vocab = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab()
    script = [vocab[token] for token in SCRIPT]
    assert len(set(script)) == len(script), "each script token needs its own axis"
    embed = weights["model.embed_tokens.weight"]
    vocab_size, hidden = embed.shape
    axis = np.zeros(vocab_size, dtype=int)  # the embedding axis of each token
    axis[script] = np.arange(1, len(script) + 1)
    # successor of each axis: axis 0 (any other token) -> script[0]; script[k] -> script[k+1];
    # the last script token -> end of sequence (id 0).
    successor = {0: script[0], **{k + 1: t for k, t in enumerate(script[1:])}}
    successor[len(script)] = 0
    for last, first in SCRIPT_ENTRIES.items():  # a token that enters the script elsewhere
        axis[vocab[last]] = len(script) + 1
        successor[len(script) + 1] = vocab[first]
    embed[:] = np.eye(hidden, dtype=np.float32)[axis]
    for name in weights:
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            weights[name][:] = 0
    # RMSNorm turns a one-hot row into sqrt(hidden) * norm weight on that axis.
    normed = np.sqrt(hidden) * weights["model.norm.weight"]
    lm_head = np.zeros_like(weights["lm_head.weight"])
    for k, target in successor.items():
        lm_head[target, k] = 10.0 / normed[k]
    weights["lm_head.weight"] = lm_head
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


BACKENDS = [
    pytest.param("mlx", marks=pytest.mark.mlx),
    pytest.param("transformers", marks=pytest.mark.torch),
]


@pytest.fixture(scope="module")
def scripted(scripted_olmoe: Path, request: pytest.FixtureRequest) -> dict[str, OLMoEModel]:
    """The scripted checkpoint loaded on each backend that is installed, once per module."""
    models = {}
    for backend, fixture in (("mlx", "mlx_installed"), ("transformers", "torch_installed")):
        try:
            request.getfixturevalue(fixture)
        except pytest.skip.Exception:
            continue
        model = OLMoEModel(OLMoEConfig(model_name=str(scripted_olmoe), use_mlx=backend == "mlx"))
        assert model.load(), model.load_error
        models[backend] = model
    return models


def _model(scripted: dict[str, OLMoEModel], backend: str) -> OLMoEModel:
    if backend not in scripted:
        pytest.skip(f"{backend} is not installed")
    return scripted[backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_completion_that_starts_with_a_space_keeps_it(
    backend: str, scripted: dict[str, OLMoEModel]
) -> None:
    """Fails before athena rebuilt the text from the ids: mlx gave "memory café 🙂"."""
    model = _model(scripted, backend)
    prompt = "The quick brown fox"
    text = model.generate(prompt, max_tokens=40)
    assert text == SCRIPT_TEXT
    assert prompt + text == "The quick brown fox memory café \U0001f642"
    ids = model.tokenize(prompt + text)
    assert model.tokenizer.decode(ids) == prompt + text


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_completion_that_starts_with_a_bare_space_token_keeps_it(
    backend: str, scripted: dict[str, OLMoEModel]
) -> None:
    """The first generated token is "Ġ" alone (mlx-lm holds it, then trims it)."""
    model = _model(scripted, backend)
    assert model.generate("Hi!", max_tokens=40) == " \U0001f642"
    assert list(model.stream("Hi!", max_tokens=40)) == [" ", "\U0001f642"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_gives_whole_characters_and_joins_to_generate(
    backend: str, scripted: dict[str, OLMoEModel]
) -> None:
    """é is two byte tokens and 🙂 four: each arrives as one piece, never as U+FFFD."""
    model = _model(scripted, backend)
    pieces = list(model.stream("The quick brown fox", max_tokens=40))
    assert pieces == [" memory", " c", "a", "f", "é", " ", "\U0001f642"]
    assert "".join(pieces) == model.generate("The quick brown fox", max_tokens=40)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stream_yields_one_entry_per_token_and_stops_at_end_of_sequence(
    backend: str, scripted: dict[str, OLMoEModel]
) -> None:
    from athena.backends import completion

    model = _model(scripted, backend)
    ids = model.generate_ids("fox", max_tokens=40, temperature=0.0)
    assert ids == model.tokenizer.convert_tokens_to_ids(list(SCRIPT))
    assert 0 not in ids  # the end-of-sequence id is not yielded
    entries = list(completion.stream_pieces(model.tokenizer, ids))
    assert [token for _, token in entries] == ids
    held = [piece for piece, _ in entries if piece == ""]
    assert len(held) == 1 + 3  # the first byte of é, the first three of 🙂


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_tokens_cuts_inside_a_character_without_a_partial_piece(
    backend: str, scripted: dict[str, OLMoEModel]
) -> None:
    """Stopping after 5 tokens leaves é's first byte alone: the text is decode()'s U+FFFD,
    given once, at the end, as generate() gives it."""
    model = _model(scripted, backend)
    pieces = list(model.stream("fox", max_tokens=5))
    assert pieces == [" memory", " c", "a", "f", "\ufffd"]
    assert "".join(pieces) == model.generate("fox", max_tokens=5) == " memory caf\ufffd"


# The incremental decoding alone, on the tiny checkpoint's real tokenizer (no model needed).


@pytest.fixture(scope="module")
def tokenizer(tiny_olmoe: Path) -> object:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_olmoe))


@pytest.mark.parametrize(
    "text",
    [
        " leading space, then words",
        "Zürich café naïve Ångström",
        "emoji \U0001f642\U0001f44d\U0001f3fd flag \U0001f1eb\U0001f1f7",
        "a zero-width joiner: \U0001f469\u200d\U0001f4bb",
        "日本語のテキスト and \u2014\u201cquotes\u201d",
        "line\nbreaks\n\n and\ttabs  ",
        "<|endoftext|> specials <|padding|>",
    ],
)
def test_pieces_join_to_the_decode_and_carry_no_replacement_character(
    tokenizer: object, text: str
) -> None:
    ids = tokenizer.encode(text)  # type: ignore[attr-defined]
    entries = list(completion.stream_pieces(tokenizer, ids))
    pieces = [piece for piece, _ in entries]
    assert "".join(pieces) == completion.decode(tokenizer, ids) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert [token for _, token in entries if token is not None] == ids


def test_invalid_bytes_come_out_as_decode_gives_them(tokenizer: object) -> None:
    """A lone continuation byte mid-text and a lead byte at the end are U+FFFD in decode():
    the pieces give the same text, each U+FFFD once it is certain (a later byte could have
    completed a trailing one)."""
    vocab = tokenizer.get_vocab()  # type: ignore[attr-defined]
    ids = [vocab["a"], vocab["©"], vocab["b"], vocab["Ã"]]
    entries = list(completion.stream_pieces(tokenizer, ids))
    assert entries == [
        ("a", ids[0]),
        ("", ids[1]),
        ("\ufffdb", ids[2]),
        ("", ids[3]),
        ("\ufffd", None),
    ]
    assert "".join(piece for piece, _ in entries) == completion.decode(tokenizer, ids)
