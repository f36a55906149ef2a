"""The batch shape of encode() (issue 22, item 4): length-sorted batches of at most
`batch_size` texts whose padding stays within `max_padding` of their real tokens (by default
none: equal lengths only) and whose padded size (rows x longest) stays within `max_tokens`
(transformers: a big batch's activations outgrow the CPU's cache), so a batch never costs more
than its texts one at a time (bench/README.md, "Encode: the batch shape"). Unit tests on
lengths, then the shapes a real model is given."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from athena.backends import batching
from athena.models.olmoe import OLMoEModel


def shapes(lengths: list[int], batch_size: int, **kw: Any) -> list[list[int]]:
    return [
        [lengths[i] for i in batch]
        for batch in batching.plan_batches(np.array(lengths), batch_size, **kw)
    ]


def test_equal_lengths_fill_whole_batches() -> None:
    assert shapes([40] * 7, 3) == [[40, 40, 40], [40, 40, 40], [40]]


def test_a_batch_stops_before_its_padding_passes_the_cap() -> None:
    # 100 + 96: 200 padded for 196 real (2%); + 90: 300 for 286 (4.9%); + 80 would be 400
    # for 366 (9.3%): with a 5% cap a new batch starts there.
    assert shapes([80, 100, 90, 96], 8, max_padding=0.05) == [[100, 96, 90], [80]]
    assert shapes([80, 100, 90, 96], 8, max_padding=0.0) == [[100], [96], [90], [80]]
    assert shapes([80, 100, 90, 96], 8, max_padding=math.inf) == [[100, 96, 90, 80]]


def test_the_default_batches_only_equal_lengths() -> None:
    assert shapes([5, 9, 5, 9, 9, 7], 8) == [[9, 9, 9], [7], [5, 5]]


def test_a_batch_stops_before_its_padded_tokens_pass_the_budget() -> None:
    assert shapes([100] * 5, 8, max_padding=math.inf, max_tokens=250) == [
        [100, 100],
        [100, 100],
        [100],
    ]
    # A text longer than the budget runs alone; the next batch starts from its own longest.
    assert shapes([100, 300, 100, 100], 8, max_padding=math.inf, max_tokens=250) == [
        [300],
        [100, 100],
        [100],
    ]
    # Both limits: the first one reached ends the batch.
    assert shapes([100, 100, 60, 60], 8, max_padding=0.0, max_tokens=1000) == [
        [100, 100],
        [60, 60],
    ]
    assert shapes([100] * 4, 8, max_tokens=None) == [[100] * 4]


@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=80),
    batch_size=st.integers(1, 40),
    max_padding=st.sampled_from([0.0, 0.05, 0.5, math.inf]),
    max_tokens=st.sampled_from([None, 1, 64, 500, 2048]),
)
def test_every_text_once_longest_first_within_size_and_caps(
    lengths: list[int], batch_size: int, max_padding: float, max_tokens: int | None
) -> None:
    batches = batching.plan_batches(
        np.array(lengths), batch_size, max_padding=max_padding, max_tokens=max_tokens
    )
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        rows = [lengths[i] for i in batch]
        assert 1 <= len(rows) <= batch_size
        assert len(rows) == 1 or len(rows) * rows[0] <= (1 + max_padding) * sum(rows)
        assert len(rows) == 1 or max_tokens is None or len(rows) * rows[0] <= max_tokens
    # Greedy: a batch ends only where the next text would break a limit (or at the end).
    for batch, following in itertools.pairwise(batches):
        rows = [lengths[i] for i in batch] + [lengths[following[0]]]
        padded = len(rows) * rows[0]
        assert (
            len(rows) > batch_size
            or padded > (1 + max_padding) * sum(rows)
            or (max_tokens is not None and padded > max_tokens)
        )


def test_each_backend_names_its_batch_shape() -> None:
    """One policy (plan_batches), one pair of constants per backend: mlx's CPU build gains
    nothing from bigger batches of equal rows, so only transformers has a token budget."""
    from athena.backends import mlx_backend, transformers_backend

    assert mlx_backend.MAX_PADDING is None and mlx_backend.MAX_BATCH_TOKENS is None
    assert transformers_backend.MAX_PADDING == batching.TRANSFORMERS_MAX_PADDING
    assert transformers_backend.MAX_BATCH_TOKENS == batching.TRANSFORMERS_MAX_BATCH_TOKENS


@pytest.mark.torch
def test_torch_encode_runs_batches_within_the_token_budget(
    torch_model: OLMoEModel, monkeypatch: Any
) -> None:
    """What torch is given: the plan's (rows, longest), each within the backend's budget."""
    from athena.backends import transformers_backend

    budget = transformers_backend.MAX_BATCH_TOKENS
    assert budget is not None
    unit = next(  # a text of a third of the budget or a little less: three fit, not four
        n for n in range(1, 2048)
        if 4 * len(torch_model.tokenize("memory of experts " * n)) > budget
    )  # fmt: skip
    texts = ["memory of experts " * n for n in (unit,) * 4 + (2 * unit, 2 * unit, 3 * unit)]
    lengths = [len(torch_model.tokenize(t)) for t in texts]
    backbone = type(torch_model.model.model)
    real = backbone.forward
    seen: list[tuple[int, int]] = []

    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(kwargs["input_ids"].shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(backbone, "forward", forward)
    torch_model.encode(texts, batch_size=8)
    expected = [
        (len(rows), rows[0])
        for rows in shapes(
            lengths, 8, max_padding=transformers_backend.MAX_PADDING, max_tokens=budget
        )
    ]
    assert seen == expected
    assert all(rows == 1 or rows * longest <= budget for rows, longest in seen)
    assert (3, max(lengths[:4])) in seen  # the budget, not batch_size, ended that batch


@pytest.mark.mlx
def test_mlx_encode_runs_the_planned_shapes(mlx_model: OLMoEModel, monkeypatch: Any) -> None:
    """What the model is given: the plan's (rows, longest), within the cap."""
    texts = ["memory of experts " * n for n in (1, 1, 1, 2, 3, 3, 9)]
    lengths = [len(mlx_model.tokenize(t)) for t in texts]
    backbone = type(mlx_model.model.model)
    real = backbone.__call__
    seen: list[tuple[int, int]] = []

    def call(self: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(inputs.shape))
        return real(self, inputs, *args, **kwargs)

    monkeypatch.setattr(backbone, "__call__", call)
    mlx_model.encode(texts, batch_size=4)
    expected = [(len(rows), rows[0]) for rows in shapes(lengths, 4)]
    assert seen == expected
    assert expected[0][0] == 1 and any(rows > 1 for rows, _ in expected)
