"""`athena train-head`: GRPO for the MemoryActionHead from a JSONL of states and a reward.

    athena train-head --model M --data states.jsonl --reward pkg.mod:fn --steps 60 --out DIR

Encodes every state once with OLMoE (cached in DIR/features.safetensors, the --eval-data
states in DIR/eval-features.safetensors, keyed by the texts and the model arguments),
then trains the head on MLX (default where installed) or torch. DIR gets checkpoint-<step>/
folders (atomic), log.jsonl (one line per step), head.safetensors (the last head) and
train.png (reward and KL against steps; skipped with one line if matplotlib is missing).
Under `mlx.launch` every rank runs this and only rank 0 writes; `--ranks N` encodes the
states once before it starts the ranks, which read them (one model in memory, not N).

The reward is `module:function` (called as function(state_text, action) -> float), or
`path/to/file.py:function` (that file, loaded by its path), or a .jsonl file of lines
{"text": ..., "rewards": [one number per action]}. The run's settings are a TrainSettings
(what the command line asked for, typed); `--ranks` hands them to each rank as JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena.atomic import append_line, replacing, write_file
from athena.heads.grpo import (
    CHECKPOINT_PREFIX,
    GRPOConfig,
    GRPOTrainer,
    Reward,
    TrainError,
    latest_checkpoint,
)
from athena.heads.train_inputs import load_reward, read_states
from athena.models.head import load_weights, save_weights

if TYPE_CHECKING:
    import numpy as np

LOG_NAME = "log.jsonl"
PLOT_NAME = "train.png"
HEAD_NAME = "head.safetensors"
FEATURES_NAME = "features.safetensors"
EVAL_FEATURES_NAME = "eval-features.safetensors"


@dataclass
class TrainSettings:
    """What one `athena train-head` run is asked to do: the command line, typed."""

    data: str
    reward: str
    steps: int
    out: str
    config: GRPOConfig = field(default_factory=GRPOConfig)
    model: dict[str, Any] = field(default_factory=dict)  # the CLI's model arguments
    framework: str | None = None
    eval_data: str | None = None
    init: str | None = None
    resume: bool = False
    verbose: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> TrainSettings:
        values = json.loads(text)
        return cls(**{**values, "config": GRPOConfig.from_dict(values["config"])})


# -- features (encoded once) ---------------------------------------------------------------


# What the features depend on: the model and how it is loaded (the CLI's model arguments).
LOAD_ARGUMENTS = ("model", "backend", "dtype", "quantize_bits", "router_bits")


def features_key(settings: TrainSettings, texts: list[str]) -> str:
    """The cache key of `texts`' features, from the settings alone (no model loaded)."""
    load = {name: settings.model.get(name) for name in LOAD_ARGUMENTS}
    return hashlib.sha256(json.dumps([load, texts], sort_keys=True).encode()).hexdigest()


def cached_features(cache: Path | None, key: str) -> np.ndarray | None:
    """The features in `cache` if it holds exactly those of `key`, else None."""
    from safetensors import SafetensorError, safe_open

    if cache is None or not cache.is_file():
        return None
    try:
        with safe_open(str(cache), "np") as f:
            if (f.metadata() or {}).get("key") == key:
                features: np.ndarray = f.get_tensor("features")
                return features
    except (OSError, ValueError, SafetensorError):  # a damaged cache is encoded again
        return None
    return None


def encode_states(model: Any, texts: list[str], cache: Path | None, key: str) -> np.ndarray:
    """encode() of every text, written to `cache` (whole, or not at all) when one is given."""
    import numpy as np
    from safetensors.numpy import save_file

    features = np.asarray(model.encode(texts), dtype=np.float32)
    if cache is not None:
        with replacing(cache) as temporary:
            save_file({"features": features}, str(temporary), {"key": key})
    return features


def state_features(
    settings: TrainSettings, inputs: RunInputs, load_model: Callable[[], Any], *, write: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(features of the states, of the eval states or None): from the folder's cache
    (features.safetensors, eval-features.safetensors) when it holds them, else encoded with
    the model, loaded once, and cached when `write`. A rank that finds both cached never loads
    the model: `--ranks N` encodes once, in the launcher, not N times (N models in memory)."""
    wanted = {FEATURES_NAME: inputs.texts}
    if inputs.eval_texts:
        wanted[EVAL_FEATURES_NAME] = inputs.eval_texts
    keys = {name: features_key(settings, texts) for name, texts in wanted.items()}
    found = {name: cached_features(inputs.out / name, keys[name]) for name in wanted}
    missing = [name for name, features in found.items() if features is None]
    if missing:
        model = load_model()
        if write:
            inputs.out.mkdir(parents=True, exist_ok=True)
        for name in missing:
            cache = inputs.out / name if write else None
            found[name] = encode_states(model, wanted[name], cache, keys[name])
        model.unload()  # the ranks train next: the model's memory goes back first
    features = found[FEATURES_NAME]
    assert features is not None
    return features, found.get(EVAL_FEATURES_NAME)


# -- the run ---------------------------------------------------------------------------------


@dataclass
class RunInputs:
    """What a run reads before the model, checked."""

    out: Path
    texts: list[str]
    eval_texts: list[str]
    reward: Reward
    checkpoint: Path | None
    head: dict[str, np.ndarray] | None


def read_inputs(settings: TrainSettings) -> RunInputs:
    """Check and read --out, --steps, the data, the reward, the checkpoint and --init
    (TrainError for anything wrong). `--ranks` calls it before starting any rank, so a
    mistake there is one sentence, not one per rank."""
    out = Path(settings.out)
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {out} exists and is not a folder; pass a folder")
    if settings.steps < 1:
        raise TrainError(f"--steps {settings.steps} is not allowed; use an integer >= 1")
    texts = [r["text"] for r in read_states(settings.data)]
    evaluated = read_states(settings.eval_data, "--eval-data") if settings.eval_data else []
    eval_texts = [r["text"] for r in evaluated]
    reward = load_reward(settings.reward, settings.config.num_actions)
    checkpoint = latest_checkpoint(out)
    if checkpoint is not None and not settings.resume:
        raise TrainError(
            f"{out} already has {checkpoint.name}; pass --resume to continue it, or a new --out"
        )
    if settings.resume and checkpoint is None:
        raise TrainError(f"--resume: {out} has no {CHECKPOINT_PREFIX}* folder to continue from")
    head = load_weights(settings.init) if settings.init else None
    return RunInputs(out, texts, eval_texts, reward, checkpoint, head)


def check_distributed_inputs(settings: TrainSettings) -> RunInputs:
    """Before `--ranks` starts any rank: the inputs (returned), and mlx to run them."""
    inputs = read_inputs(settings)
    _check_installed("mlx")
    return inputs


def run(settings: TrainSettings, load_model: Callable[[], Any]) -> int:
    """The `athena train-head` command (TrainError for anything the user can fix)."""
    inputs = read_inputs(settings)
    out, texts, eval_texts, checkpoint = (
        inputs.out,
        inputs.texts,
        inputs.eval_texts,
        inputs.checkpoint,
    )
    config, steps = settings.config, settings.steps
    framework = settings.framework or _default_framework()
    _check_installed(framework)
    collectives = _collectives(framework, config.collective_timeout)
    rank0 = collectives is None or collectives.rank == 0

    if rank0:
        out.mkdir(parents=True, exist_ok=True)
    features, eval_features = state_features(settings, inputs, load_model, write=rank0)

    trainer = GRPOTrainer(
        features,
        texts,
        inputs.reward,
        config,
        framework=framework,
        head=inputs.head,
        reward_name=settings.reward,
        collectives=collectives,
    )
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
        _say(rank0, f"resuming {checkpoint} at step {trainer.step_count} (its settings are used)")
    log = _Log(out / LOG_NAME, keep_until=trainer.step_count, enabled=rank0)
    if eval_features is not None and trainer.step_count == 0:
        log.write({"step": 0, "eval_reward": trainer.evaluate(eval_features, eval_texts)})
    bar = _Progress(rank0, steps, trainer.step_count)
    config = trainer.config
    metrics: dict[str, float] = {}
    try:
        while trainer.step_count < steps:
            start = time.perf_counter()
            metrics = trainer.step()
            metrics["step_s"] = time.perf_counter() - start
            step = trainer.step_count
            if eval_features is not None and (
                step == steps or (config.steps_per_eval and step % config.steps_per_eval == 0)
            ):
                metrics["eval_reward"] = trainer.evaluate(eval_features, eval_texts)
            log.write(metrics)
            bar.update(metrics)
            if config.save_every and step % config.save_every == 0 and step < steps:
                trainer.save_checkpoint(out)
    finally:
        bar.close()
    if trainer.step_count == steps and metrics:
        trainer.save_checkpoint(out)
    if rank0:
        save_weights(trainer.learner.weights(), out / HEAD_NAME)
        plotted = plot_log(out / LOG_NAME, out / PLOT_NAME)
        summary = f"reward {metrics['reward']:.3f}" if metrics else "no new steps"
        if "eval_reward" in metrics:
            summary += f", held-out greedy reward {metrics['eval_reward']:.3f}"
        written = f"{out / HEAD_NAME}, {LOG_NAME}" + (f", {PLOT_NAME}" if plotted else "")
        world = f" x {trainer.world} ranks" if trainer.world > 1 else ""
        print(
            f"trained {trainer.step_count} steps on {framework}{world}: {summary}; wrote {written}"
        )
    return 0


def _default_framework() -> str:
    import importlib.util

    return "mlx" if importlib.util.find_spec("mlx") is not None else "torch"


def _check_installed(framework: str) -> None:
    import importlib.util

    if importlib.util.find_spec(framework) is None:
        group = "mlx-cpu" if framework == "mlx" else "torch"
        raise TrainError(
            f"--framework {framework} needs {framework}, which is not installed here "
            f"(uv sync --group {group}; on a Mac mlx comes with uv sync)"
        )


def _collectives(framework: str, timeout: float) -> Any:
    launched = "MLX_RANK" in os.environ
    if framework == "torch":
        if launched:
            raise TrainError(
                "distributed training runs on MLX; use --framework mlx with mlx.launch"
            )
        return None
    from athena.heads.distributed import Collectives

    return Collectives(timeout=timeout)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(f"athena train-head: {message}", file=sys.stderr, flush=True)


class _Log:
    """log.jsonl: one JSON line per step (rank 0 only), each appended whole; a resumed run
    keeps the lines up to its checkpoint's step (the file replaced whole) and appends after."""

    def __init__(self, path: Path, *, keep_until: int, enabled: bool) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept: list[str] = []
        if keep_until and path.is_file():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] <= keep_until:
                        kept.append(line)
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        write_file(path, "".join(line + "\n" for line in kept))

    def write(self, metrics: dict[str, Any]) -> None:
        if self.enabled:
            append_line(self.path, json.dumps(metrics))


class _Progress:
    """tqdm with reward and loss when stderr is a terminal; else a line every 10 steps."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc="train-head", unit="step")

    def update(self, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        shown = {"reward": f"{metrics['reward']:.3f}", "loss": f"{metrics['loss']:.4f}"}
        if "eval_reward" in metrics:
            shown["eval"] = f"{metrics['eval_reward']:.3f}"
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)
        elif metrics["step"] % 10 == 0 or metrics["step"] == self.total:
            text = ", ".join(f"{k} {v}" for k, v in shown.items())
            print(f"step {int(metrics['step'])}/{self.total}: {text}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def plot_log(log: Path, png: Path) -> bool:
    """Reward (and held-out reward) and KL against steps from log.jsonl; False, with one
    line on stderr, when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            "athena train-head: no plot: matplotlib is not installed (a dev dependency); "
            f"{log.name} has the same numbers",
            file=sys.stderr,
        )
        return False
    every = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in every if "reward" in r]
    steps = [r["step"] for r in rows]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
    top.plot(steps, [r["reward"] for r in rows], label="reward (sampled)")
    held = [(r["step"], r["eval_reward"]) for r in every if "eval_reward" in r]
    if held:
        top.plot(*zip(*held, strict=True), "o-", label="held-out greedy reward")
    top.set_ylabel("reward")
    top.legend(loc="lower right")
    bottom.plot(steps, [r["kl"] for r in rows], color="tab:red")
    bottom.set_ylabel("KL to reference")
    bottom.set_xlabel("step")
    figure.suptitle("athena train-head")
    figure.tight_layout()
    with replacing(png) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return True
