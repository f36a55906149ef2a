"""An input against the model's positions (`max_position_embeddings`): the one check that
generate's prompt, stream's prompt and encode's texts all go through."""

from __future__ import annotations


class TextTooLong(ValueError):
    """An input has more tokens than the model's positions (`max_position_embeddings`)."""

    def __init__(
        self, index: int | None, tokens: int, limit: int, *, what: str | None = None
    ) -> None:
        self.index, self.tokens, self.limit = index, tokens, limit
        if what is not None:  # a prompt: it cannot be truncated
            message = (
                f"{what} is {tokens} tokens, beyond the model's max_position_embeddings "
                f"({limit}); shorten it to at most {limit} tokens"
            )
        else:
            which = "the text" if index is None else f"texts[{index}]"
            message = (
                f"{which} has {tokens:,} tokens, more than this model's {limit:,} positions "
                f"(max_position_embeddings); shorten or split it, or pass truncate=True to keep "
                f"its first {limit:,} tokens"
            )
        super().__init__(message)


def check_positions(
    tokens: int, limit: int | None, *, index: int | None = None, what: str | None = None
) -> None:
    """TextTooLong when `tokens` are more than `limit` positions (None: no limit known).
    `what` names a prompt ("the prompt"); without it the input is an encode text (`index`:
    its place in the list, None: the only one), which `truncate=True` may cut instead."""
    if limit is not None and tokens > limit:
        raise TextTooLong(index, tokens, limit, what=what)
