"""GRPOConfig, GRPO's knobs for the MemoryActionHead, and TrainError (athena.heads.grpo
re-exports both).

The knobs keep TRL's GRPOConfig names; defaults are TRL's where they fit a small head:
num_generations 8, epsilon 0.2 (epsilon_high = epsilon), num_iterations 1, temperature 1.0,
max_grad_norm 1.0, weight_decay 0.0, adam betas (0.9, 0.999), adam_epsilon 1e-8, seed 42.
Different on purpose: learning_rate 3e-3 (TRL's 1e-6 is for fine-tuning an LM; this head
starts from scratch) and beta 0.04 (TRL's current 0.0 drops the reference; 0.04 was TRL's
default and DeepSeekMath's). batch_size (states per step, all ranks together),
save_every and steps_per_eval are mlx-lm's names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


class TrainError(ValueError):
    """Something the user can fix (data, reward, config): one sentence saying what to do."""


@dataclass
class GRPOConfig:
    """GRPO's knobs (TRL's names) and the head's shape. Wrong values raise TrainError."""

    learning_rate: float = 3e-3
    num_generations: int = 8  # G: actions sampled per state
    batch_size: int = 32  # states per step, over all ranks
    beta: float = 0.04  # KL penalty to the reference head
    epsilon: float = 0.2  # ratio clip, lower side
    epsilon_high: float | None = None  # upper side (None: epsilon)
    num_iterations: int = 1  # optimizer steps per sampled batch (TRL's mu)
    temperature: float = 1.0
    max_grad_norm: float | None = 1.0
    weight_decay: float = 0.0  # set on both AdamWs: torch's and MLX's default is 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    seed: int = 42
    num_actions: int = 4
    hidden_dim: int = 256
    save_every: int = 100  # steps between checkpoints (0: only at the end)
    steps_per_eval: int = 10  # steps between held-out greedy evaluations
    collective_timeout: float = 120.0  # seconds before a hung all_sum stops the run

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise TrainError(f"{name}={getattr(self, name)!r} is not allowed; use {allowed}")

        def number(value: object) -> bool:
            return (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            )

        def integer(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        check("learning_rate", number(self.learning_rate) and self.learning_rate > 0, "> 0")
        check(
            "num_generations",
            integer(self.num_generations) and self.num_generations >= 2,
            "an integer >= 2 (the advantage needs a group)",
        )
        for name in ("batch_size", "num_iterations", "num_actions", "hidden_dim"):
            check(
                name, integer(getattr(self, name)) and getattr(self, name) >= 1, "an integer >= 1"
            )
        for name in ("save_every", "steps_per_eval"):
            check(
                name, integer(getattr(self, name)) and getattr(self, name) >= 0, "an integer >= 0"
            )
        check("beta", number(self.beta) and self.beta >= 0, "a number >= 0")
        check("epsilon", number(self.epsilon) and 0 < self.epsilon < 1, "a number in (0, 1)")
        check(
            "epsilon_high",
            self.epsilon_high is None or (number(self.epsilon_high) and self.epsilon_high > 0),
            "None or a number > 0",
        )
        check("temperature", number(self.temperature) and self.temperature > 0, "a number > 0")
        check(
            "max_grad_norm",
            self.max_grad_norm is None or (number(self.max_grad_norm) and self.max_grad_norm > 0),
            "None or a number > 0",
        )
        check("weight_decay", number(self.weight_decay) and self.weight_decay >= 0, ">= 0")
        for name in ("adam_beta1", "adam_beta2"):
            check(name, number(getattr(self, name)) and 0 <= getattr(self, name) < 1, "[0, 1)")
        check("adam_epsilon", number(self.adam_epsilon) and self.adam_epsilon > 0, "> 0")
        check("seed", integer(self.seed), "an integer")
        check(
            "collective_timeout",
            number(self.collective_timeout) and self.collective_timeout > 0,
            "a number of seconds > 0",
        )

    @property
    def upper_epsilon(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRPOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainError(f"unknown GRPOConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)
