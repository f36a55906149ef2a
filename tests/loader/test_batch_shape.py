"""The batch shape of encode() (issue 22, item 4): length-sorted batches of at most
`batch_size` texts whose padding stays within `max_padding` of their real tokens (by default
none: equal lengths only), so a batch never costs more than its texts one at a time
(bench/README.md, "Encode: the batch shape"). Unit tests on lengths, then the shapes a real
model is given."""

from __future__ import annotations

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


def test_the_default_batches_only_equal_lengths_and_is_read_when_called(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert shapes([5, 9, 5, 9, 9, 7], 8) == [[9, 9, 9], [7], [5, 5]]
    monkeypatch.setattr(batching, "MAX_PADDING", math.inf)
    assert shapes([80, 100], 8) == [[100, 80]]


@given(
    lengths=st.lists(st.integers(1, 300), min_size=1, max_size=80),
    batch_size=st.integers(1, 40),
    max_padding=st.sampled_from([0.0, 0.05, 0.5, math.inf]),
)
def test_every_text_once_longest_first_within_size_and_cap(
    lengths: list[int], batch_size: int, max_padding: float
) -> None:
    batches = batching.plan_batches(np.array(lengths), batch_size, max_padding=max_padding)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        rows = [lengths[i] for i in batch]
        assert 1 <= len(rows) <= batch_size
        assert len(rows) == 1 or len(rows) * rows[0] <= (1 + max_padding) * sum(rows)


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
