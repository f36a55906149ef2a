"""The two inference backends of OLMoEModel behind one contract (`athena.backends.base`):
`mlx_backend` and `transformers_backend`; nothing here imports a framework at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from athena.backends.base import Backend, BackendName


def backend_module(name: BackendName) -> Backend:
    """The module of backend `name` ("mlx" or "transformers"), checked against the Backend
    protocol by mypy; it imports its framework only when a function of it runs."""
    if name == "mlx":
        from athena.backends import mlx_backend

        return mlx_backend
    from athena.backends import transformers_backend

    return transformers_backend
