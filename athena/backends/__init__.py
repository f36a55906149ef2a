"""The two inference backends of OLMoEModel behind one contract (`athena.backends.base`):
`mlx_backend` and `transformers_backend`; nothing here imports a framework at import time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from athena.backends import mlx_backend, transformers_backend

if TYPE_CHECKING:
    from athena.backends.base import Backend, BackendName


def backend_module(name: BackendName) -> Backend:
    """The module of backend `name` ("mlx" or "transformers"), checked against the Backend
    protocol by mypy; it imports its framework only when a function of it runs."""
    return mlx_backend if name == "mlx" else transformers_backend
