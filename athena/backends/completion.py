"""Generated token ids to text, the same way on both backends.

The completion text is exactly `tokenizer.decode(completion_ids)`: the generated ids without
the end-of-sequence token, special tokens kept, nothing trimmed. So `prompt + completion`
reads as the decode of the prompt's and the completion's ids together wherever the tokenizer
round-trips. (mlx-lm's own streaming text is not used: its BPE detokenizer drops the leading
space of a completion, `BPEStreamingDetokenizer._maybe_trim_space`.)

Streaming decodes the ids so far after each token and gives out only what is final: a
character whose bytes are split across tokens (emoji, accented letters) is held back while its
decode still ends in U+FFFD, so `"".join(pieces) == decode(ids)` and no piece carries a
replacement character that the full text does not have. This holds for every tokenizer whose
decode of a prefix of the ids is a prefix of the full decode (byte-level BPE as in GPT-NeoX /
OLMo, SentencePiece, WordPiece without clean-up); for any other, pieces wait until the text is
consistent again, and a warning is logged if the end does not match.
"""

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
