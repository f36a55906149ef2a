"""The error types of athena (floor 0): every load failure is one of these, and its message is
one sentence that says what was wrong and what to do."""

from __future__ import annotations


class LoadError(Exception):
    """A model could not be loaded. The message is one sentence: what was wrong, what to do."""


class SourceError(LoadError):
    """The checkpoint itself is wrong (missing, damaged, not OLMoE): no backend can load it."""


class BackendMissing(LoadError):
    """The backend's packages are not installed (as opposed to installed but broken)."""


class OversizeError(LoadError):
    """The load's estimated peak memory is above this machine's memory. Not a SourceError:
    the other backend may need less (e.g. transformers keeps bf16 where mlx's CPU upcasts);
    `fallback_fits` says whether transformers' load would fit (mlx path only)."""

    def __init__(self, message: str, *, fallback_fits: bool = False) -> None:
        super().__init__(message)
        self.fallback_fits = fallback_fits


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


def first_line(error: BaseException) -> str:
    """`TypeName: first line of the message`, for wrapping a library's exception in a sentence."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
