"""The GRPO update on torch: the same math as mlx_learner.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from athena.heads.grpo_config import Learner, Metrics, Weights, grpo_terms
from athena.models.head import PARAMETER_NAMES, set_head_weights

if TYPE_CHECKING:
    import numpy as np


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: for a head this small, more threads only spin (measured on
    2 busy cores: 200 ms per step with 2 threads, 7 ms with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def action_logp(
    head: torch.nn.Module, features: torch.Tensor, actions: torch.Tensor, temperature: float
) -> torch.Tensor:
    """log pi(action | state) at `temperature` for actions (B, G) of states features (B, H)."""
    return torch.gather(torch.log_softmax(head(features) / temperature, dim=-1), 1, actions)


class TorchLearner(Learner):
    framework = "torch"

    def new_optimizer(self) -> torch.optim.AdamW:
        config = self.config
        self.head.train()
        self.reference.eval().requires_grad_(False)
        return torch.optim.AdamW(
            self.head.parameters(),
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            eps=config.adam_epsilon,
            weight_decay=config.weight_decay,
        )

    def logits(self, features: np.ndarray) -> np.ndarray:
        with single_thread():
            return super().logits(features)

    def update(self, features: np.ndarray, actions: np.ndarray, advantages: np.ndarray) -> Metrics:
        """num_iterations AdamW steps on one batch; their mean loss, KL and clip ratio."""
        config = self.config
        start = time.perf_counter()
        x = torch.from_numpy(features.astype("float32", copy=False))
        a = torch.from_numpy(actions.astype("int64"))
        adv = torch.from_numpy(advantages.astype("float32"))
        total = torch.zeros(3, dtype=torch.float64)
        with single_thread():
            with torch.no_grad():
                old_logp = action_logp(self.head, x, a, config.temperature)
                ref_logp = action_logp(self.reference, x, a, config.temperature)
            for _ in range(config.num_iterations):
                self.optimizer.zero_grad(set_to_none=True)
                logp = action_logp(self.head, x, a, config.temperature)
                loss, kl, clipped = grpo_terms(torch, logp, old_logp, ref_logp, adv, config)
                loss.backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.head.parameters(), config.max_grad_norm)
                self.optimizer.step()
                total += torch.stack([loss, kl, clipped]).detach().double()
        mean_loss, mean_kl, clip_ratio = (float(v) / config.num_iterations for v in total)
        metrics = {"loss": mean_loss, "kl": mean_kl, "clip_ratio": clip_ratio}
        return metrics | {"compute_s": time.perf_counter() - start, "communicate_s": 0.0}

    def optimizer_state(self) -> tuple[Weights, int]:
        moments: Weights = {}
        step = 0
        for name, parameter in self.head.named_parameters():
            state = self.optimizer.state.get(parameter, {})
            for key in ("exp_avg", "exp_avg_sq"):  # zeros before the first step
                value = state.get(key, torch.zeros(parameter.shape))
                moments[f"{key}.{name}"] = value.detach().numpy().astype("float32", copy=True)
            step = int(state.get("step", step))
        return moments, step

    def load_state(self, weights: Weights, moments: Weights, step: int) -> None:
        set_head_weights(self.head, weights)
        parameters = dict(self.head.named_parameters())
        self.optimizer.state.clear()
        if step == 0:
            return
        for name in PARAMETER_NAMES:
            self.optimizer.state[parameters[name]] = {
                "step": torch.tensor(float(step)),
                "exp_avg": torch.from_numpy(moments[f"exp_avg.{name}"].copy()),
                "exp_avg_sq": torch.from_numpy(moments[f"exp_avg_sq.{name}"].copy()),
            }
