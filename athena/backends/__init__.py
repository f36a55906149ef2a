"""The two inference backends of OLMoEModel behind one contract (`athena.backends.base`).

`mlx_backend` (mlx-lm; Apple Silicon, or mlx's CPU build on Linux) and `transformers_backend`
(transformers + torch) each provide only what differs between them; what is the same
(generation, streaming, batched encode) is written once in `base`. Nothing here imports mlx,
transformers or torch at import time.
"""

from __future__ import annotations

# The error types live on floor 0 (athena.errors); these names stay for existing callers.
from athena.errors import BackendMissing, LoadError, SourceError, first_line

__all__ = ["BackendMissing", "LoadError", "SourceError", "first_line"]
