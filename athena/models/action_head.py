"""The torch MemoryActionHead, built on first use so that importing athena.models stays free
of torch (re-exported by athena.models.olmoe; the mlx one is athena/heads/mlx_head.py)."""

from __future__ import annotations

import functools


@functools.cache
def memory_action_head_class() -> type:
    """Build MemoryActionHead on first use, so importing this module does not import torch."""
    import torch
    from torch import nn

    class MemoryActionHead(nn.Module):
        """ATHENA's memory-action head: a pooled hidden state (batch, hidden) -> logits
        (batch, num_actions), through LayerNorm -> Linear -> GELU -> Linear."""

        def __init__(self, hidden_size: int, num_actions: int = 4, hidden_dim: int = 256) -> None:
            super().__init__()
            self.hidden_size, self.num_actions = hidden_size, num_actions
            self.net = nn.Sequential(
                nn.LayerNorm(hidden_size),
                nn.Linear(hidden_size, hidden_dim),
                nn.GELU(),
                nn.Linear(hidden_dim, num_actions),
            )

        def forward(self, pooled: torch.Tensor) -> torch.Tensor:
            return self.net(pooled.float())

    MemoryActionHead.__module__ = "athena.models.olmoe"  # where users import it from
    return MemoryActionHead
