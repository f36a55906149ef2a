"""What both backends' `encode` share: tokenize once, check lengths, sort, batch, unsort.
Texts run longest first in right-padded batches (exact for a causal model), each stopped before
its padding passes `max_padding` of its real tokens or its tokens pass `max_tokens`."""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from athena.preflight.checks import check_positions

if TYPE_CHECKING:  # numpy is imported where used: athena.models.olmoe imports this module
    import numpy as np

TOKENIZE_CHUNK = 512  # texts per tokenizer call: bounds the Python lists it returns


def check_batch_size(batch_size: object, *, name: str = "batch_size") -> int:
    """`batch_size` if it is an integer >= 1, else ValueError naming it as `name`."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"{name}={batch_size!r} is not allowed; use an integer >= 1")
    return batch_size


def token_ids(
    tokenizer: Any, texts: list[str], *, limit: int | None, truncate: bool, single: bool = False
) -> list[np.ndarray]:
    """Each text's ids as an int32 array, as `tokenizer.encode(text)` gives them; beyond
    `limit`, TextTooLong (naming its index, or "the text" when `single`) unless `truncate`."""
    import numpy as np

    # mlx-lm's TokenizerWrapper (not callable) wraps transformers' tokenizer (callable).
    hf = tokenizer if callable(tokenizer) else tokenizer._tokenizer
    ids: list[np.ndarray] = []
    for start in range(0, len(texts), TOKENIZE_CHUNK):
        chunk = texts[start : start + TOKENIZE_CHUNK]
        # verbose=False: no "longer than the specified maximum" warning; lengths are checked here.
        encoded = hf(chunk, add_special_tokens=True, return_attention_mask=False, verbose=False)
        for offset, row in enumerate(encoded["input_ids"]):
            if truncate and limit is not None:
                row = row[:limit]
            check_positions(len(row), limit, index=None if single else start + offset)
            ids.append(np.asarray(row, dtype=np.int32))
    return ids


def pad_id(tokenizer: Any) -> int:
    """Any valid id will do (padded positions are never pooled nor attended to by real ones)."""
    ids = (getattr(tokenizer, name, None) for name in ("pad_token_id", "eos_token_id"))
    return next((value for value in ids if isinstance(value, int)), 0)


# Padding allowed in a batch, as a share of its real tokens (see the module docstring).
MAX_PADDING = 0.0  # mlx's CPU build, and the default
TRANSFORMERS_MAX_PADDING = 1.0  # at most as many padded tokens as real ones
# Padded tokens (rows x longest) a batch may hold (None: no limit); see the module docstring.
TRANSFORMERS_MAX_BATCH_TOKENS = 2048


def plan_batches(
    lengths: np.ndarray,
    batch_size: int,
    *,
    max_padding: float | None = None,
    max_tokens: int | None = None,
) -> list[np.ndarray]:
    """Index arrays into `lengths`, longest first, of at most `batch_size` texts and padding
    `max_padding` (default MAX_PADDING) and `max_tokens` allow; a text alone always runs."""
    import numpy as np

    limit = MAX_PADDING if max_padding is None else max_padding
    budget = math.inf if max_tokens is None else max_tokens
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    batches: list[np.ndarray] = []
    start, n = 0, len(order)
    while start < n:
        longest = int(sorted_lengths[start])
        end, real = start + 1, longest
        # Each next text is no longer than the ones before, so padding only grows: stop at the
        # first text that would take the batch past the limit.
        while end < n and end - start < batch_size:
            grown = real + int(sorted_lengths[end])
            padded = (end - start + 1) * longest
            if padded > (1 + limit) * grown or padded > budget:
                break
            end, real = end + 1, grown
        batches.append(order[start:end])
        start = end
    return batches


def run_batches(
    ids: list[np.ndarray],
    batch_size: int,
    hidden_size: int,
    run_batch: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    pad: int,
    on_batch: Callable[[int], None] | None = None,
    max_padding: float | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """(len(ids), hidden_size) float32 in input order, `run_batch(tokens, mask)` over the
    `plan_batches` batches; `on_batch(b)` is told after each."""
    import numpy as np

    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    out = np.empty((len(ids), hidden_size), dtype=np.float32)
    for index in plan_batches(lengths, batch_size, max_padding=max_padding, max_tokens=max_tokens):
        longest = max(len(ids[i]) for i in index)  # right-padded with `pad`, mask 0 there
        tokens = np.full((len(index), longest), pad, dtype=np.int32)
        for row, i in enumerate(index):
            tokens[row, : len(ids[i])] = ids[i]
        mask = (np.arange(longest) < lengths[index, None]).astype(np.float32)
        out[index] = run_batch(tokens, mask)
        if on_batch is not None:
            on_batch(len(index))
    return out


@contextlib.contextmanager
def progress(
    total: int | None, show: bool, on_batch: Callable[[int], None] | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A callback told after each batch how many texts it finished: the caller's `on_batch`
    and, if `show` on a terminal, a tqdm bar of `total` texts (None: no end) on stderr, started
    after the first batch if that left texts to do."""
    if not (show and sys.stderr.isatty()):
        yield on_batch
        return
    bar: Any = None
    finished = 0

    def report(done: int) -> None:
        nonlocal bar, finished
        finished += done
        if bar is not None:
            bar.update(done)
        elif total is None or finished < total:
            from tqdm import tqdm

            bar = bars.enter_context(
                tqdm(total=total, initial=finished, unit="text", desc="encode", file=sys.stderr)
            )
        if on_batch is not None:
            on_batch(done)

    with contextlib.ExitStack() as bars:  # closes the bar, if one started
        yield report
