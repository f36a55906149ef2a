"""What GRPO's trainer (athena.heads.grpo) and its learners share: GRPOConfig (TRL's names and
defaults but learning_rate and beta: docs/training-head.md), TrainError, the objective and the
Learner base."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeAlias

from athena.models.config import is_int
from athena.models.head import head_from_weights, head_logits, head_weights

if TYPE_CHECKING:
    import numpy as np

Weights: TypeAlias = "dict[str, np.ndarray]"  # a head's (or AdamW's) arrays, by parameter name
Metrics: TypeAlias = dict[str, float]


class TrainError(ValueError):
    """Something the user can fix (data, reward, config): one sentence saying what to do."""


def is_number(value: object) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(low: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: is_int(v) and v >= low, f"an integer >= {low}")


_POSITIVE = (lambda v: is_number(v) and v > 0, "> 0")
_OPTIONAL = (lambda v: v is None or (is_number(v) and v > 0), "None or a number > 0")
_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "num_generations": (_whole(2)[0], "an integer >= 2 (the advantage needs a group)"),
    **dict.fromkeys(("batch_size", "num_iterations", "num_actions", "hidden_dim"), _whole(1)),
    **dict.fromkeys(("save_every", "steps_per_eval"), _whole(0)),
    "beta": (lambda v: is_number(v) and v >= 0, "a number >= 0"),
    "epsilon": (lambda v: is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    "epsilon_high": _OPTIONAL, "max_grad_norm": _OPTIONAL,
    "temperature": (lambda v: is_number(v) and v > 0, "a number > 0"),
    "weight_decay": (lambda v: is_number(v) and v >= 0, ">= 0"),
    **dict.fromkeys(("adam_beta1", "adam_beta2"), (lambda v: is_number(v) and 0 <= v < 1,
                                                   "[0, 1)")),
    "learning_rate": _POSITIVE, "adam_epsilon": _POSITIVE, "seed": (is_int, "an integer"),
    "collective_timeout": (lambda v: is_number(v) and v > 0, "a number of seconds > 0"),
}  # fmt: skip


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
        for name, (ok, allowed) in _RULES.items():
            if not ok(getattr(self, name)):
                raise TrainError(f"{name}={getattr(self, name)!r} is not allowed; use {allowed}")

    @property
    def upper_epsilon(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GRPOConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrainError(f"unknown GRPOConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def grpo_terms(
    xp: Any, logp: Any, old_logp: Any, ref_logp: Any, advantages: Any, config: GRPOConfig
) -> tuple[Any, Any, Any]:
    """(loss, mean KL, share of clipped ratios) of one batch in `xp` (mlx.core or torch): per
    action -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon_high) * A) + beta * k3 KL,
    averaged over all B * G actions (an action is one token, so TRL's loss types agree)."""
    ratio = xp.exp(logp - old_logp)
    clipped = xp.clip(ratio, 1.0 - config.epsilon, 1.0 + config.upper_epsilon)
    per_action = -xp.minimum(ratio * advantages, clipped * advantages)
    delta = ref_logp - logp
    kl = xp.exp(delta) - delta - 1.0  # TRL's k3 estimator of KL(policy || reference)
    is_clipped = (ratio < 1.0 - config.epsilon) | (ratio > 1.0 + config.upper_epsilon)
    return xp.mean(per_action + config.beta * kl), xp.mean(kl), xp.mean(is_clipped * 1.0)


class Learner:
    """The trainable head, its frozen reference and AdamW, on `framework`. Each learner adds
    update(features, actions, advantages), optimizer_state() and load_state()."""

    framework = ""

    def __init__(
        self,
        weights: Weights,
        config: GRPOConfig,
        reference: Weights | None = None,
        collectives: Any = None,
    ) -> None:
        self.config, self.collectives = config, collectives
        self.head: Any = head_from_weights(weights, self.framework)
        self.reference: Any = head_from_weights(
            weights if reference is None else reference, self.framework
        )
        self.optimizer: Any = self.new_optimizer()

    def new_optimizer(self) -> Any:
        raise NotImplementedError

    def logits(self, features: np.ndarray) -> np.ndarray:
        return head_logits(self.head, features)

    def weights(self) -> Weights:
        return head_weights(self.head)

    def reference_weights(self) -> Weights:
        return head_weights(self.reference)
