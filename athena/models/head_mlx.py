"""The MemoryActionHead in MLX, head_torch.py's twin: the same layers (exact-erf GELU) in a
list named `net`, so the parameter names are torch's nn.Sequential ones. Imported lazily."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


class MemoryActionHead(nn.Module):
    """A pooled hidden state (batch, hidden) -> memory-action logits (batch, num_actions)."""

    def __init__(self, hidden_size: int, num_actions: int = 4, hidden_dim: int = 256) -> None:
        super().__init__()
        self.hidden_size, self.num_actions, self.hidden_dim = hidden_size, num_actions, hidden_dim
        self.net = [
            nn.LayerNorm(hidden_size, eps=1e-5),
            nn.Linear(hidden_size, hidden_dim),
            nn.GELU(approx="none"),
            nn.Linear(hidden_dim, num_actions),
        ]

    def __call__(self, pooled: mx.array) -> mx.array:
        x = pooled.astype(mx.float32)
        for layer in self.net:
            x = layer(x)
        return x
