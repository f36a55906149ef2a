"""GRPO for the MemoryActionHead over frozen OLMoE features, on MLX or torch: GRPOTrainer runs
the steps (what one does: docs/training-head.md), a learner per framework does the update.
Sampling uses numpy's PCG64 over the whole global batch, so N ranks draw what one rank would
and both frameworks can be fed the same actions."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena.atomic import reason, replacing_folder
from athena.errors import SourceError
from athena.heads.grpo_config import GRPOConfig, Metrics, TrainError, Weights, is_number
from athena.models.head import (
    HeadError,
    HeadShape,
    check_framework,
    initial_weights,
    load_weights,
    save_weights,
)
from athena.source import read_json, read_safetensors_header

if TYPE_CHECKING:
    import numpy as np

    from athena.heads.mlx_learner import MLXLearner
    from athena.heads.torch_learner import TorchLearner

ADVANTAGE_EPSILON = 1e-4  # TRL's: advantages / (std + 1e-4)
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_WEIGHTS = ("head.safetensors", "reference.safetensors", "optimizer.safetensors")
STATE_NAME = "trainer_state.json"
SAMPLING_STREAM = 1  # the sampling RNG is seeded with (1, seed)
Reward = Callable[[str, int], float]
logger = logging.getLogger(__name__)


def sample_actions(logits: np.ndarray, uniforms: np.ndarray, temperature: float) -> np.ndarray:
    """Actions (B, G) drawn from softmax(logits / temperature) (B, A) by inverse CDF of
    `uniforms` (B, G) in [0, 1)."""
    import numpy as np

    z = logits.astype(np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    probs = np.exp(z)
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    actions = (uniforms[:, :, None] >= cdf[:, None, :]).sum(axis=2)
    return np.minimum(actions, logits.shape[1] - 1).astype(np.int64)


def group_advantages(rewards: np.ndarray) -> np.ndarray:
    """(r - mean) / (std + 1e-4) within each state's group; rewards (B, G). The std is the
    unbiased one (torch.std's default, as TRL uses)."""
    import numpy as np

    mean = rewards.mean(axis=1, keepdims=True)
    std = rewards.std(axis=1, ddof=1, keepdims=True)
    return ((rewards - mean) / (std + ADVANTAGE_EPSILON)).astype(np.float32)


def make_learner(
    framework: str,
    weights: Weights,
    config: GRPOConfig,
    *,
    reference: Weights | None = None,
    collectives: Any = None,
) -> MLXLearner | TorchLearner:
    if check_framework(framework) == "mlx":
        from athena.heads.mlx_learner import MLXLearner

        return MLXLearner(weights, config, reference, collectives)
    if collectives is not None and collectives.size > 1:
        raise TrainError("distributed training runs on MLX; use --framework mlx with mlx.launch")
    from athena.heads.torch_learner import TorchLearner

    return TorchLearner(weights, config, reference)


class GRPOTrainer:
    """GRPO over cached features (n, hidden) of `texts`, on `framework` ("mlx" or "torch"),
    from `head` (numpy weights; default: seeded from config.seed). With `collectives` of size
    N each rank works on its 1/N of every batch: give every rank the same arguments."""

    def __init__(
        self,
        features: np.ndarray,
        texts: Sequence[str],
        reward: Reward,
        config: GRPOConfig | None = None,
        *,
        framework: str = "mlx",
        head: Weights | None = None,
        reward_name: str = "reward",
        collectives: Any = None,
    ) -> None:
        import numpy as np

        config = self.config = config if config is not None else GRPOConfig()
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self.texts = list(texts)
        if self.features.ndim != 2 or self.features.shape[0] != len(self.texts):
            raise TrainError(
                f"features have shape {self.features.shape} for {len(self.texts)} texts; "
                "pass one (hidden,) vector per text"
            )
        if not self.texts:
            raise TrainError("no states to train on; the data needs at least one text")
        self.reward, self.reward_name = reward, reward_name
        self.collectives = collectives
        self.rank = collectives.rank if collectives is not None else 0
        self.world = collectives.size if collectives is not None else 1
        if config.batch_size % self.world:
            raise TrainError(
                f"batch_size {config.batch_size} does not split over {self.world} ranks; "
                f"use a multiple of {self.world}"
            )
        shape = HeadShape(int(self.features.shape[1]), config.num_actions, config.hidden_dim)
        if head is None:
            head = initial_weights(shape, config.seed)
        elif HeadShape.of(head) != shape:
            raise TrainError(
                f"the starting head is a {HeadShape.of(head)}; the features and config need "
                f"a {shape}"
            )
        self.framework = check_framework(framework)
        self.learner = make_learner(framework, head, config, collectives=collectives)
        # Its own stream: not the one initial_weights(seed) drew the head from.
        self.rng = np.random.default_rng([SAMPLING_STREAM, config.seed])
        self.step_count = 0

    def score(self, text: str, action: int) -> float:
        """reward(text, action) as a finite float, else TrainError."""
        short = text if len(text) <= 40 else text[:37] + "..."
        where = f"state {short!r}, action {action}"
        try:
            value = self.reward(text, action)
        except Exception as error:  # the user's code: any exception becomes the sentence
            raise TrainError(
                f"the reward {self.reward_name} raised {type(error).__name__}: {error} ({where}); "
                "fix the reward function"
            ) from None
        if not is_number(value):
            raise TrainError(
                f"the reward {self.reward_name} returned {value!r} ({type(value).__name__}) for "
                f"{where}; it must return a finite number"
            )
        return float(value)

    def step(self) -> Metrics:
        """A GRPO step on this rank's share of a seeded batch; its metrics, averaged over ranks."""
        import numpy as np

        n, config = len(self.texts), self.config
        batch = self.rng.choice(n, size=config.batch_size, replace=config.batch_size > n)
        uniforms = self.rng.random((config.batch_size, config.num_generations))
        share = config.batch_size // self.world
        mine = slice(self.rank * share, (self.rank + 1) * share)
        indices = batch[mine]
        logits = self.learner.logits(self.features[indices])
        actions = sample_actions(logits, uniforms[mine], config.temperature)
        pairs = zip([self.texts[i] for i in indices], actions, strict=True)
        rewards = np.array([[self.score(text, int(a)) for a in row] for text, row in pairs])
        metrics = self.learner.update(self.features[indices], actions, group_advantages(rewards))
        local = np.array([rewards.mean(), rewards.std(axis=1, ddof=1).mean()], np.float32)
        if self.world > 1:
            import mlx.core as mx

            averaged = self.collectives.average_gradients({"m": mx.array(local)}, "the metrics")
            local = np.array(averaged["m"])
        self.step_count += 1
        reward_mean, reward_std = (float(v) for v in local)
        return {"step": self.step_count, "reward": reward_mean, "reward_std": reward_std} | metrics

    def evaluate(self, features: np.ndarray, texts: Sequence[str]) -> float:
        """Mean reward of the greedy (argmax) action over held-out states."""
        actions = self.learner.logits(features).argmax(axis=1)
        scores = [self.score(text, int(a)) for text, a in zip(texts, actions, strict=True)]
        return sum(scores) / len(scores)

    def save_checkpoint(
        self, out_dir: str | os.PathLike[str], extra: dict[str, Any] | None = None
    ) -> Path:
        """Write OUT/checkpoint-<step>/ whole (athena.atomic.replacing_folder), on rank 0 only;
        TrainError if it cannot."""
        from safetensors import SafetensorError
        from safetensors.numpy import save_file

        out = Path(out_dir)
        target = out / f"{CHECKPOINT_PREFIX}{self.step_count:07d}"
        if self.rank != 0:
            return target
        moments, adam_step = self.learner.optimizer_state()
        state = {
            "step": self.step_count,
            "adam_step": adam_step,
            "framework": self.framework,
            "world_size": self.world,
            "rng": self.rng.bit_generator.state,
            "config": asdict(self.config),
            "reward": self.reward_name,
        } | (extra or {})
        try:
            with replacing_folder(target, overwrite=True) as temporary:
                save_weights(self.learner.weights(), temporary / "head.safetensors")
                save_weights(self.learner.reference_weights(), temporary / "reference.safetensors")
                save_file(moments, str(temporary / "optimizer.safetensors"))
                (temporary / STATE_NAME).write_text(json.dumps(state, indent=1) + "\n")
        except (OSError, SafetensorError) as error:  # a full disk, a read-only folder
            why = reason(error) if isinstance(error, OSError) else str(error)
            raise TrainError(
                f"could not save {target} ({why}); the checkpoints in {out} are as they were"
            ) from None
        return target

    def load_checkpoint(self, checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
        """Continue from a checkpoint folder (its config too); returns its trainer_state.json."""
        from safetensors.numpy import load_file

        folder = Path(checkpoint)
        try:
            state = read_json(folder / STATE_NAME)
            moments = load_file(str(folder / "optimizer.safetensors"))
            weights = load_weights(folder / "head.safetensors")
            reference = load_weights(folder / "reference.safetensors")
        except (OSError, ValueError, HeadError, SourceError) as error:
            raise TrainError(f"{folder} is not a complete checkpoint ({error})") from None
        self.config = GRPOConfig.from_dict(state["config"])
        self.learner = make_learner(
            self.framework, weights, self.config, reference=reference, collectives=self.collectives
        )
        self.learner.load_state(weights, moments, int(state["adam_step"]))
        self.rng.bit_generator.state = state["rng"]
        self.step_count = int(state["step"])
        return dict(state)


def latest_checkpoint(out_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder in `out_dir` (an incomplete one: a warning)."""
    for folder in sorted(Path(out_dir).glob(f"{CHECKPOINT_PREFIX}*/"), reverse=True):  # folders
        try:
            read_json(folder / STATE_NAME)
            for name in CHECKPOINT_WEIGHTS:
                read_safetensors_header(folder / name)
        except SourceError as error:
            logger.warning("skipping %s, not a complete checkpoint: %s", folder.name, error)
            continue
        return folder
    return None
