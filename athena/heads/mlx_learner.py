"""The GRPO update for the MLX MemoryActionHead (mlx.nn.value_and_grad, AdamW).

The network is athena/models/head_mlx.py; the same math on torch is torch_learner.py.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from athena.models.head import (
    PARAMETER_NAMES,
    head_from_weights,
    head_logits,
    head_weights,
    set_head_weights,
)
from athena.models.head_mlx import MemoryActionHead

if TYPE_CHECKING:
    import numpy as np

    from athena.heads.distributed import Collectives
    from athena.heads.grpo_config import GRPOConfig


def grpo_loss(
    head: MemoryActionHead,
    features: mx.array,
    actions: mx.array,
    advantages: mx.array,
    old_logp: mx.array,
    ref_logp: mx.array,
    config: GRPOConfig,
) -> tuple[mx.array, mx.array, mx.array]:
    """The GRPO loss of one batch: (loss, mean KL, share of clipped ratios).

    features (B, hidden); actions, advantages, old_logp, ref_logp (B, G). Per sampled action:
    -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon_high) * A) + beta * k3 KL, averaged
    over all B * G actions (an action is one token, so TRL's loss types agree here).
    """
    logp = action_logp(head, features, actions, config.temperature)
    ratio = mx.exp(logp - old_logp)
    clipped = mx.clip(ratio, 1.0 - config.epsilon, 1.0 + config.upper_epsilon)
    per_action = -mx.minimum(ratio * advantages, clipped * advantages)
    delta = ref_logp - logp
    kl = mx.exp(delta) - delta - 1.0  # TRL's k3 estimator of KL(policy || reference)
    loss = mx.mean(per_action + config.beta * kl)
    is_clipped = (ratio < 1.0 - config.epsilon) | (ratio > 1.0 + config.upper_epsilon)
    return loss, mx.mean(kl), mx.mean(is_clipped.astype(mx.float32))


def action_logp(
    head: MemoryActionHead, features: mx.array, actions: mx.array, temperature: float
) -> mx.array:
    """log pi(action | state) at `temperature` for actions (B, G) of states features (B, H)."""
    logits = head(features) / temperature
    logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    return mx.take_along_axis(logp, actions, axis=1)


class MLXLearner:
    """The trainable head, its frozen reference and AdamW, on MLX.

    `update()` takes already-sampled actions and their advantages, so a test can feed the
    torch learner exactly the same batch.
    """

    framework = "mlx"

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        config: GRPOConfig,
        *,
        reference: dict[str, np.ndarray] | None = None,
        collectives: Collectives | None = None,
    ) -> None:
        self.config = config
        self.head = head_from_weights(weights, "mlx")
        self.reference = head_from_weights(reference if reference is not None else weights, "mlx")
        self.reference.freeze()
        self.collectives = collectives
        # Set every AdamW knob: MLX's defaults differ from torch's (bias_correction=False).
        self.optimizer = optim.AdamW(
            learning_rate=config.learning_rate,
            betas=[config.adam_beta1, config.adam_beta2],
            eps=config.adam_epsilon,
            weight_decay=config.weight_decay,
            bias_correction=True,
        )
        self.optimizer.init(self.head.trainable_parameters())
        self._loss_and_grad = nn.value_and_grad(self.head, grpo_loss)

    def logits(self, features: np.ndarray) -> np.ndarray:
        return head_logits(self.head, features)

    def update(
        self, features: np.ndarray, actions: np.ndarray, advantages: np.ndarray
    ) -> dict[str, float]:
        """num_iterations AdamW steps on one sampled batch; loss, KL and clip ratio averaged
        over them (and over the ranks)."""
        config = self.config
        x = mx.array(features)
        a = mx.array(actions.astype("int32"))
        adv = mx.array(advantages.astype("float32"))
        old_logp = mx.stop_gradient(action_logp(self.head, x, a, config.temperature))
        ref_logp = mx.stop_gradient(action_logp(self.reference, x, a, config.temperature))
        mx.eval(old_logp, ref_logp)
        total = [0.0, 0.0, 0.0]
        compute = communicate = 0.0
        for _ in range(config.num_iterations):
            start = time.perf_counter()
            (loss, kl, clipped), grads = self._loss_and_grad(
                self.head, x, a, adv, old_logp, ref_logp, config
            )
            mx.eval(loss, kl, clipped, grads)
            values = mx.stack([loss, kl, clipped])
            compute += time.perf_counter() - start
            if self.collectives is not None and self.collectives.size > 1:
                # One all_sum for the gradients and the metrics (the same float32 bucket).
                start = time.perf_counter()
                averaged = self.collectives.average_gradients({"grads": grads, "metrics": values})
                grads, values = averaged["grads"], averaged["metrics"]
                communicate += time.perf_counter() - start
            start = time.perf_counter()
            if config.max_grad_norm is not None:
                grads, _ = optim.clip_grad_norm(grads, config.max_grad_norm)
            self.optimizer.update(self.head, grads)
            mx.eval(self.head.parameters(), self.optimizer.state)
            compute += time.perf_counter() - start
            step_values: list[float] = values.tolist()  # type: ignore[assignment]
            total = [t + v for t, v in zip(total, step_values, strict=True)]
        loss_value, kl_value, clip_value = (t / config.num_iterations for t in total)
        metrics = {"loss": loss_value, "kl": kl_value, "clip_ratio": clip_value}
        return metrics | {"compute_s": compute, "communicate_s": communicate}

    # -- state, for checkpoints (the same layout as the torch learner's) ---------------------

    def weights(self) -> dict[str, np.ndarray]:
        return head_weights(self.head)

    def reference_weights(self) -> dict[str, np.ndarray]:
        return head_weights(self.reference)

    def optimizer_state(self) -> tuple[dict[str, np.ndarray], int]:
        """AdamW's moments as {"exp_avg.<param>", "exp_avg_sq.<param>"} and its step count."""
        import numpy as np

        state = dict(tree_flatten(self.optimizer.state))
        moments: dict[str, np.ndarray] = {}
        for name in PARAMETER_NAMES:
            moments[f"exp_avg.{name}"] = np.array(state[f"{name}.m"], dtype=np.float32)
            moments[f"exp_avg_sq.{name}"] = np.array(state[f"{name}.v"], dtype=np.float32)
        return moments, int(self.optimizer.state["step"].item())

    def load_state(
        self, weights: dict[str, np.ndarray], moments: dict[str, np.ndarray], step: int
    ) -> None:
        set_head_weights(self.head, weights)
        state = self.optimizer.state
        for name in PARAMETER_NAMES:
            node: Any = state
            for part in name.split("."):
                node = node[int(part)] if isinstance(node, list) else node[part]
            node["m"] = mx.array(moments[f"exp_avg.{name}"])
            node["v"] = mx.array(moments[f"exp_avg_sq.{name}"])
        state["step"] = mx.array(step, dtype=mx.uint64)
        mx.eval(self.optimizer.state)
