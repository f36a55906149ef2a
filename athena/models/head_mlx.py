"""The MemoryActionHead network in MLX (only the network; the learners are in athena/heads/).

Same architecture and parameter names as the torch head (athena/models/head_torch.py):
LayerNorm(eps 1e-5) -> Linear -> GELU (exact erf: mlx.nn.GELU's default approx="none"; its
"precise" is the tanh approximation) -> Linear. The layers are a plain list named `net`, so
MLX names the parameters `net.0.weight` ... `net.3.bias`, as torch's nn.Sequential does.
Imported lazily, like the torch one.
"""

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
