"""encode() of many texts (issue 11, part 3): tokenized once, length-sorted batches of at most
`batch_size`, vectors back in input order and equal to one-at-a-time results; the
max_position_embeddings check and truncate=True; the progress bar; the action head's logits.

Real models on the tiny checkpoint. Where a test must see the batches, it wraps the backbone's
class (mlx-lm's / transformers' OlmoeModel) with a recorder that calls the real one.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from athena.backends.batching import TRANSFORMERS_MAX_BATCH_TOKENS as MAX_BATCH_TOKENS
from athena.models.olmoe import OLMoEConfig, OLMoEModel

POOL = (
    "hi",
    "a",
    "The quick brown fox jumps over the lazy dog.",
    "  leading and trailing spaces  ",
    "line one\nline two\n",
    "unicode: caf\u00e9, na\u00efve, \u65e5\u672c\u8a9e, \U0001f600",
    "digits 0123456789 and more digits 3.14159",
    "memory of experts " * 6,
)
BACKENDS = [
    pytest.param("mlx", marks=pytest.mark.mlx),
    pytest.param("torch", marks=pytest.mark.torch),
]
LIMIT = 24  # max_position_embeddings of the `short_limit` copy


def _model(request: pytest.FixtureRequest, backend: str) -> OLMoEModel:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    return model


@pytest.fixture(scope="module")
def alone(mlx_model: OLMoEModel, torch_model: OLMoEModel) -> dict[str, np.ndarray]:
    """Each POOL text encoded on its own, per backend: the reference."""
    return {
        "mlx": np.stack([mlx_model.encode(text) for text in POOL]),
        "torch": np.stack([torch_model.encode(text) for text in POOL]),
    }


@pytest.mark.mlx
@pytest.mark.torch
@settings(max_examples=25, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(POOL) - 1), min_size=1, max_size=12),
    batch_size=st.integers(1, 13),
)
def test_any_batch_size_and_order_gives_the_one_at_a_time_vectors(
    mlx_model: OLMoEModel,
    torch_model: OLMoEModel,
    alone: dict[str, np.ndarray],
    picks: list[int],
    batch_size: int,
) -> None:
    texts = [POOL[i] for i in picks]
    for backend, model in (("mlx", mlx_model), ("torch", torch_model)):
        vectors = model.encode(texts, batch_size=batch_size)
        assert vectors.shape == (len(texts), alone[backend].shape[1])
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(vectors, alone[backend][picks], atol=1e-5, rtol=0)


class Recorder:
    """Wraps a backbone class's call: records (rows, length) of each batch, and whether torch
    was in inference mode, then runs the real thing."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.inference_mode: list[bool] = []


@pytest.fixture
def record_batches(monkeypatch: pytest.MonkeyPatch) -> Callable[[OLMoEModel], Recorder]:
    def install(model: OLMoEModel) -> Recorder:
        recorder = Recorder()
        backbone = type(model.model.model)
        if model.backend == "mlx":
            real = backbone.__call__

            def call(self: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
                recorder.shapes.append(tuple(inputs.shape))
                return real(self, inputs, *args, **kwargs)

            monkeypatch.setattr(backbone, "__call__", call)
        else:
            import torch

            real = backbone.forward

            def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
                recorder.shapes.append(tuple(kwargs["input_ids"].shape))
                recorder.inference_mode.append(torch.is_inference_mode_enabled())
                return real(self, *args, **kwargs)

            monkeypatch.setattr(backbone, "forward", forward)
        return recorder

    return install


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_are_sorted_longest_first_and_hold_at_most_batch_size_texts(
    backend: str, request: pytest.FixtureRequest, record_batches: Callable[..., Recorder]
) -> None:
    """Texts of two lengths, so no padding rule splits a batch (test_batch_shape.py checks
    the rules)."""
    model = _model(request, backend)
    short, long = "x" * 3, "x" * 9
    lengths = [len(model.tokenize(t)) for t in (short, long)]
    assert lengths[0] < lengths[1]
    recorder = record_batches(model)
    model.encode([short, long, long, short, long, long], batch_size=2)
    assert recorder.shapes == [(2, lengths[1]), (2, lengths[1]), (2, lengths[0])]


@pytest.mark.torch
def test_transformers_batches_run_under_inference_mode(
    torch_model: OLMoEModel, record_batches: Callable[..., Recorder]
) -> None:
    recorder = record_batches(torch_model)
    torch_model.encode(list(POOL), batch_size=4)
    assert len(recorder.inference_mode) >= 2 and all(recorder.inference_mode)


@pytest.mark.torch
def test_action_logits_are_computed_batch_by_batch_for_every_text(
    torch_model: OLMoEModel,
) -> None:
    import torch

    vectors = torch_model.encode(list(POOL), batch_size=3)
    logits = torch_model.last_action_logits
    assert logits is not None and logits.shape == (len(POOL), 4)
    with torch.no_grad():
        expected = torch_model.action_head(torch.from_numpy(vectors)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-6)
    torch_model.encode(POOL[2], batch_size=3)
    assert torch_model.last_action_logits is not None
    np.testing.assert_allclose(torch_model.last_action_logits, expected[2], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [0, -1, True, 1.5, "2"])
def test_a_batch_size_that_is_not_a_positive_integer_is_refused(
    backend: str, batch_size: object, request: pytest.FixtureRequest
) -> None:
    model = _model(request, backend)
    with pytest.raises(ValueError, match=rf"^batch_size={batch_size!r} is not allowed; use an"):
        model.encode(["a", "b"], batch_size=batch_size)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_iterable_of_texts_is_accepted(backend: str, request: pytest.FixtureRequest) -> None:
    model = _model(request, backend)
    vectors = model.encode(text for text in POOL[:3])
    np.testing.assert_allclose(vectors, model.encode(list(POOL[:3])), atol=1e-6)


# -- longer than max_position_embeddings --------------------------------------------------


@pytest.fixture(scope="module")
def short_limit(tmp_path_factory: pytest.TempPathFactory, tiny_olmoe: Path) -> Path:
    """The tiny checkpoint with max_position_embeddings = LIMIT (so a long text is cheap)."""
    folder = Path(shutil.copytree(tiny_olmoe, tmp_path_factory.mktemp("short") / "olmoe"))
    config = json.loads((folder / "config.json").read_text())
    config["max_position_embeddings"] = LIMIT
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module", params=BACKENDS)
def short_model(request: pytest.FixtureRequest, short_limit: Path) -> OLMoEModel:
    if request.param == "mlx":
        request.getfixturevalue("mlx_installed")
    else:
        request.getfixturevalue("torch_installed")
    model = OLMoEModel(OLMoEConfig(model_name=str(short_limit), use_mlx=request.param == "mlx"))
    assert model.load(), model.load_error
    return model


def _text_of(model: OLMoEModel, tokens: int) -> str:
    """A text of exactly `tokens` tokens (whatever the tokenizer merges)."""
    text = ""
    while len(model.tokenize(text + "a b")) <= tokens:
        text += "a b"
    while len(model.tokenize(text)) < tokens:
        text += "!"
    assert len(model.tokenize(text)) == tokens
    return text


def _pooled(model: OLMoEModel, ids: list[int]) -> np.ndarray:
    """The mean final hidden state of `ids`, straight from the backbone."""
    if model.backend == "mlx":
        import mlx.core as mx

        return np.array(model.model.model(mx.array([ids]))[0].mean(axis=0))
    import torch

    with torch.no_grad():
        hidden = model.model.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    return hidden.mean(dim=0).numpy()


def test_a_text_longer_than_the_positions_is_one_sentence_before_any_batch_runs(
    short_model: OLMoEModel, record_batches: Callable[..., Recorder]
) -> None:
    texts = ["short", _text_of(short_model, LIMIT), _text_of(short_model, LIMIT + 6)]
    recorder = record_batches(short_model)
    expected = (
        f"texts[2] has {LIMIT + 6} tokens, more than this model's {LIMIT} positions "
        "(max_position_embeddings); shorten or split it, or pass truncate=True to keep its "
        f"first {LIMIT} tokens"
    )
    with pytest.raises(ValueError) as raised:
        short_model.encode(texts)
    assert str(raised.value) == expected
    with pytest.raises(ValueError, match=rf"^the text has {LIMIT + 6} tokens, more than"):
        short_model.encode(texts[2])
    assert recorder.shapes == []
    assert short_model.encode(texts[:2]).shape[0] == 2  # exactly LIMIT tokens is fine


def test_truncate_keeps_the_first_max_position_embeddings_tokens(
    short_model: OLMoEModel,
) -> None:
    long = _text_of(short_model, LIMIT + 9)
    ids = short_model.tokenize(long)
    vectors = short_model.encode(["short", long], truncate=True, batch_size=2)
    np.testing.assert_allclose(vectors[1], _pooled(short_model, ids[:LIMIT]), atol=1e-5)
    np.testing.assert_allclose(vectors[0], short_model.encode("short"), atol=1e-5)


@pytest.mark.mlx
@pytest.mark.slow
def test_a_40k_token_text_is_refused_on_mlx_instead_of_crashing_the_process(
    tiny_olmoe: Path, mlx_installed: None
) -> None:
    """On mlx's CPU build ~40k tokens segfault (full attention): a native crash no exception
    catches, so it runs in a child process, which must exit normally with the sentence."""
    code = (
        "import sys\n"
        "from athena.models.olmoe import OLMoEConfig, OLMoEModel\n"
        f"model = OLMoEModel(OLMoEConfig(model_name={str(tiny_olmoe)!r}))\n"
        "assert model.load() and model.backend == 'mlx', model.load_error\n"
        "try:\n"
        "    model.encode(['fine', 'x' * 40_000])\n"
        "except ValueError as error:\n"
        "    print(error)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("texts[1] has 40,000 tokens, more than this model's 4,096")


# -- progress -----------------------------------------------------------------------------


class Terminal(io.StringIO):
    """A stderr that says it is a terminal (what tqdm is shown on)."""

    def isatty(self) -> bool:
        return True


def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """Make stderr a Terminal. Called after the model fixture is fetched: pytest puts its own
    capture back on sys.stderr when it sets a fixture up."""
    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    return stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_progress_bar_goes_to_a_terminal_when_there_is_more_than_one_batch(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(request, backend)
    stderr = terminal(monkeypatch)
    model.encode(list(POOL[:5]), batch_size=2)
    assert "encode" in stderr.getvalue() and "5/5" in stderr.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_progress_bar_for_one_batch_or_when_turned_off(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(request, backend)
    stderr = terminal(monkeypatch)
    model.encode([POOL[2]] * 5, batch_size=5)  # 5 texts of one length: 1 batch
    model.encode(list(POOL[:5]), batch_size=2, show_progress=False)
    assert stderr.getvalue() == ""


@pytest.mark.torch
def test_a_progress_bar_when_the_token_budget_splits_what_batch_size_allows(
    torch_model: OLMoEModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers' token budget (mlx has none): two texts of over half of it each run
    alone, whatever batch_size allows."""
    text = next(
        t
        for n in range(1, 2048)
        if 2 * len(torch_model.tokenize(t := "memory of experts " * n)) > MAX_BATCH_TOKENS
    )
    stderr = terminal(monkeypatch)
    done: list[int] = []
    torch_model.encode([text] * 3, batch_size=3, on_batch=done.append)
    assert done == [1, 1, 1]
    assert "encode" in stderr.getvalue() and "3/3" in stderr.getvalue()


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_progress_bar_when_stderr_is_not_a_terminal_and_on_batch_is_told(
    backend: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = _model(request, backend)
    capsys.readouterr()
    done: list[int] = []
    model.encode([POOL[2]] * 5, batch_size=2, on_batch=done.append)  # one length: 2, 2, 1
    assert done == [2, 2, 1]
    assert capsys.readouterr().err == ""


def test_importing_athena_does_not_import_tqdm() -> None:
    code = "import sys, athena.cli, athena.models.olmoe; print('tqdm' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
