"""The GRPO update on MLX (mlx.nn.value_and_grad, AdamW); torch_learner.py is the same math."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

from athena.heads.grpo_config import Learner, Metrics, Weights, grpo_terms
from athena.models.head import PARAMETER_NAMES, set_head_weights
from athena.models.head_mlx import MemoryActionHead

if TYPE_CHECKING:
    import numpy as np


def action_logp(
    head: MemoryActionHead, features: mx.array, actions: mx.array, temperature: float
) -> mx.array:
    """log pi(action | state) at `temperature` for actions (B, G) of states features (B, H)."""
    return mx.take_along_axis(nn.log_softmax(head(features) / temperature), actions, axis=1)


class MLXLearner(Learner):
    framework = "mlx"

    def new_optimizer(self) -> optim.AdamW:
        """AdamW with every knob set: MLX's defaults differ from torch's (bias_correction)."""
        config = self.config
        self.reference.freeze()
        optimizer = optim.AdamW(
            learning_rate=config.learning_rate,
            betas=[config.adam_beta1, config.adam_beta2],
            eps=config.adam_epsilon,
            weight_decay=config.weight_decay,
            bias_correction=True,
        )
        optimizer.init(self.head.trainable_parameters())
        return optimizer

    def update(self, features: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> Metrics:
        """num_iterations AdamW steps on one batch; their mean loss, KL and clip ratio."""
        config = self.config
        start, communicate = time.perf_counter(), 0.0
        x = mx.array(features)
        a = mx.array(actions.astype("int32"))
        adv = mx.array(advantages.astype("float32"))
        old_logp = mx.stop_gradient(action_logp(self.head, x, a, config.temperature))
        ref_logp = mx.stop_gradient(action_logp(self.reference, x, a, config.temperature))
        mx.eval(old_logp, ref_logp)

        def loss(head: MemoryActionHead) -> Any:
            logp = action_logp(head, x, a, config.temperature)
            return grpo_terms(mx, logp, old_logp, ref_logp, adv, config)

        loss_and_grad = nn.value_and_grad(self.head, loss)
        total = [0.0, 0.0, 0.0]
        for _ in range(config.num_iterations):
            (loss_value, kl, clipped), grads = loss_and_grad(self.head)
            values = mx.stack([loss_value, kl, clipped])
            mx.eval(values, grads)
            if self.collectives is not None and self.collectives.size > 1:
                # One all_sum for the gradients and the metrics (the same float32 bucket).
                sent = time.perf_counter()
                averaged = self.collectives.average_gradients({"grads": grads, "metrics": values})
                grads, values = averaged["grads"], averaged["metrics"]
                communicate += time.perf_counter() - sent
            if config.max_grad_norm is not None:
                grads, _ = optim.clip_grad_norm(grads, config.max_grad_norm)
            self.optimizer.update(self.head, grads)
            mx.eval(self.head.parameters(), self.optimizer.state)
            step_values: list[float] = values.tolist()  # type: ignore[assignment]
            total = [t + v for t, v in zip(total, step_values, strict=True)]
        mean_loss, mean_kl, clip_ratio = (t / config.num_iterations for t in total)
        metrics = {"loss": mean_loss, "kl": mean_kl, "clip_ratio": clip_ratio}
        compute = time.perf_counter() - start - communicate
        return metrics | {"compute_s": compute, "communicate_s": communicate}

    def optimizer_state(self) -> tuple[Weights, int]:
        import numpy as np

        state = dict(tree_flatten(self.optimizer.state))
        moments: Weights = {}
        for name in PARAMETER_NAMES:
            moments[f"exp_avg.{name}"] = np.array(state[f"{name}.m"], dtype=np.float32)
            moments[f"exp_avg_sq.{name}"] = np.array(state[f"{name}.v"], dtype=np.float32)
        return moments, int(self.optimizer.state["step"].item())

    def load_state(self, weights: Weights, moments: Weights, step: int) -> None:
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
