"""Generated ids to text, the same on both backends: exactly `tokenizer.decode(ids)`, the
end-of-sequence dropped, special tokens kept, nothing trimmed (mlx-lm's streaming detokenizer
drops a leading space). A stream holds back a character while its decode still ends in U+FFFD,
so the pieces join to the decode."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

REPLACEMENT = "\ufffd"  # what decode gives for bytes that are not (yet) a whole character


def decode(tokenizer: Any, ids: list[int]) -> str:
    """The completion text of `ids`: the tokenizer's own decode, special tokens kept."""
    return str(tokenizer.decode(ids))


def stream_pieces(tokenizer: Any, tokens: Iterable[int]) -> Iterator[tuple[str, int | None]]:
    """Yield (text piece, token id) per generated token, then (rest, None) if text was still
    held back at the end. The pieces join to exactly `decode(tokenizer, all ids)`."""
    ids: list[int] = []
    emitted = ""  # always a prefix of decode(ids)
    for token in tokens:
        ids.append(token)
        final = decode(tokenizer, ids).rstrip(REPLACEMENT)
        if not final.startswith(emitted):  # the decoder rewrote earlier text: wait
            yield "", token
            continue
        yield final[len(emitted) :], token
        emitted = final
    text = decode(tokenizer, ids)
    if not text.startswith(emitted):
        logger.warning(
            "the streamed text differs from the decoded completion (this tokenizer's decode "
            "is not prefix-stable); use generate() for the exact text"
        )
    elif text != emitted:
        yield text[len(emitted) :], None
