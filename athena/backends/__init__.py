"""The two inference backends of OLMoEModel, with the same small surface.

`mlx_backend` (mlx-lm; Apple Silicon, or mlx's CPU build on Linux) and `transformers_backend`
(transformers + torch) each have `load`, `generate`, `stream`, `encode` and `logits`.
`source` tells a local folder from a hub id and checks a folder before a backend sees it.
Nothing here imports mlx, transformers or torch at import time.
"""

from __future__ import annotations


class LoadError(Exception):
    """A model could not be loaded. The message is one sentence: what was wrong, what to do."""


class SourceError(LoadError):
    """The checkpoint itself is wrong (missing, damaged, not OLMoE): no backend can load it."""


class BackendMissing(LoadError):
    """The backend's packages are not installed (as opposed to installed but broken)."""


def first_line(error: BaseException) -> str:
    """`TypeName: first line of the message`, for wrapping a library's exception in a sentence."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
