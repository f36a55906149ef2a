"""The MemoryActionHead in torch, imported lazily (importing athena never imports torch)."""

from __future__ import annotations

import torch
from torch import nn


class MemoryActionHead(nn.Module):
    """ATHENA's memory-action head: a pooled hidden state (batch, hidden) -> logits
    (batch, num_actions), through LayerNorm -> Linear -> GELU -> Linear."""

    def __init__(self, hidden_size: int, num_actions: int = 4, hidden_dim: int = 256) -> None:
        super().__init__()
        self.hidden_size, self.num_actions, self.hidden_dim = hidden_size, num_actions, hidden_dim
        self.net = nn.Sequential(
            nn.LayerNorm(hidden_size),
            nn.Linear(hidden_size, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, num_actions),
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(pooled.float())
        return out
