"""`athena train-head`: encode the states once with OLMoE (cached in --out, keyed by the texts
and the model arguments), then train the head with GRPO; rank 0 writes checkpoint-<step>/,
log.jsonl, head.safetensors and train.png (docs/training-head.md). `--ranks N` encodes the
states before it starts the ranks, which read them (one model in memory, not N)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from athena.atomic import append_line, replacing, write_file
from athena.heads.grpo import CHECKPOINT_PREFIX, GRPOTrainer, Reward, latest_checkpoint
from athena.heads.grpo_config import GRPOConfig, TrainError, Weights, is_number
from athena.models.head import load_weights, save_tensors, save_weights
from athena.source import parse_json

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


LOAD_ARGUMENTS = ("model", "revision", "backend", "dtype", "device", "quantize_bits", "router_bits")


def state_features(
    settings: TrainSettings, inputs: RunInputs, load_model: Callable[[], Any], *, write: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(features of the states, of the eval states or None): from --out's cache when it holds
    them (a rank of --ranks never loads the model), else encoded and cached when `write`."""
    import numpy as np
    from safetensors import SafetensorError, safe_open

    wanted = {FEATURES_NAME: inputs.texts}
    if inputs.eval_texts:
        wanted[EVAL_FEATURES_NAME] = inputs.eval_texts
    load = {name: settings.model.get(name) for name in LOAD_ARGUMENTS}  # what they depend on
    keys, found = {}, {}
    for name, texts in wanted.items():
        keys[name] = hashlib.sha256(json.dumps([load, texts], sort_keys=True).encode()).hexdigest()
        cache = inputs.out / name  # none, or damaged: encoded again
        with suppress(OSError, ValueError, SafetensorError), safe_open(str(cache), "np") as f:
            if (f.metadata() or {}).get("key") == keys[name]:
                found[name] = f.get_tensor("features")
    if missing := [name for name in wanted if name not in found]:
        model = load_model()
        if write:
            inputs.out.mkdir(parents=True, exist_ok=True)
        for name in missing:
            found[name] = np.asarray(model.encode(wanted[name]), dtype=np.float32)
            if write:  # whole, or not at all
                save_tensors({"features": found[name]}, inputs.out / name, {"key": keys[name]})
        model.unload()  # the ranks train next: the model's memory goes back first
    return found[FEATURES_NAME], found.get(EVAL_FEATURES_NAME)


LINE_LIMIT = 2**20  # a state's line in --data: far more than a model's context of text


def read_states(path: str | os.PathLike[str], what: str = "--data") -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, each with a non-empty "text" (blank lines skipped)."""
    source = Path(path)
    if not source.is_file():
        raise TrainError(f'{what} {source} not found; pass a JSONL file of {{"text": ...}} lines')
    try:
        with source.open("rb") as f:  # streamed, each line at most LINE_LIMIT bytes
            lines = enumerate(iter(lambda: f.readline(LINE_LIMIT + 1), b""), 1)
            records = [record for n, line in lines if (record := _state(source, n, line))]
    except OSError as error:
        raise TrainError(f"{what} {source} cannot be read ({error.strerror})") from None
    if not records:
        raise TrainError(f'{source} has no states; add lines like {{"text": "..."}}')
    return records


def _state(source: Path, number: int, line: bytes) -> dict[str, Any] | None:
    """Line `number` of a states file as its JSON object; None for a blank line."""
    if len(line) > LINE_LIMIT:
        raise TrainError(
            f"{source} line {number} is longer than {LINE_LIMIT // 2**20} MiB; "
            "a state is a text of at most a model's context"
        )
    if not line.strip():
        return None
    record, problem = parse_json(line)
    like = 'each line must be an object like {"text": "..."}'
    if problem:
        raise TrainError(f"{source} line {number} {problem}; {like}")
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise TrainError(f'{source} line {number} has no "text" string; {like}')
    if not record["text"].strip():
        raise TrainError(f'{source} line {number} has an empty "text"; remove the line')
    return record


def load_reward(spec: str, num_actions: int) -> Reward:
    """The reward `spec` names: module:function, path/to/file.py:function (loaded by its path,
    its folder not put on sys.path) or a .jsonl table of rewards."""
    if spec.endswith(".jsonl") or (":" not in spec and Path(spec).exists()):
        return _reward_table(spec, num_actions)
    module_name, _, function_name = spec.rpartition(":")
    if not module_name or not function_name:
        raise TrainError(
            f"--reward {spec!r} is neither module:function (e.g. mypkg.rewards:score or "
            "rewards.py:score) nor a .jsonl file of rewards"
        )
    file = Path(module_name if module_name.endswith(".py") else module_name + ".py")
    try:
        if file.is_file():
            found = importlib.util.spec_from_file_location(f"athena_reward_{file.stem}", file)
            assert found is not None and found.loader is not None
            module = importlib.util.module_from_spec(found)
            found.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise TrainError(
            f"reward module {module_name!r} not found ({error}); name its file "
            "(path/to/rewards.py:function) or install it"
        ) from None
    except Exception as error:  # the user's module failed while importing
        raise TrainError(
            f"importing the reward module {module_name!r} raised {type(error).__name__}: {error}"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise TrainError(
            f"reward module {module_name!r} has no function {function_name!r}; name a "
            "function(state_text, action) -> float"
        )
    return cast(Reward, function)


def _reward_table(path: str, num_actions: int) -> Reward:
    table: dict[str, list[float]] = {}
    for index, record in enumerate(read_states(path, what="--reward"), start=1):
        rewards = record.get("rewards")
        ok = isinstance(rewards, list) and len(rewards) == num_actions
        if not ok or not all(is_number(r) for r in rewards):  # type: ignore[union-attr]
            raise TrainError(
                f'{path} record {index} needs "rewards": a list of {num_actions} numbers '
                "(one per action)"
            )
        table[record["text"]] = [float(r) for r in rewards]  # type: ignore[union-attr]

    def reward(text: str, action: int) -> float:
        if text not in table:
            raise KeyError(f"no line for this state in {path}")
        return table[text][action]

    return reward


@dataclass
class RunInputs:
    """What a run reads before the model, checked."""

    out: Path
    texts: list[str]
    eval_texts: list[str]
    reward: Reward
    checkpoint: Path | None
    head: Weights | None


def read_inputs(settings: TrainSettings) -> RunInputs:
    """Check and read --out, --steps, the data, the reward, the checkpoint and --init."""
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


def run(settings: TrainSettings, load_model: Callable[[], Any]) -> int:
    """The `athena train-head` command (TrainError for anything the user can fix)."""
    inputs = read_inputs(settings)
    out, eval_texts, checkpoint = inputs.out, inputs.eval_texts, inputs.checkpoint
    config, steps = settings.config, settings.steps
    framework = settings.framework or ("mlx" if importlib.util.find_spec("mlx") else "torch")
    check_installed(framework)
    collectives = None
    if framework == "mlx":
        from athena.heads.distributed import Collectives

        collectives = Collectives(timeout=config.collective_timeout)
    elif "MLX_RANK" in os.environ:
        raise TrainError("distributed training runs on MLX; use --framework mlx with mlx.launch")
    rank0 = collectives is None or collectives.rank == 0
    # rank 0 makes --out when it caches the features there (a cache hit: it is there)
    features, eval_features = state_features(settings, inputs, load_model, write=rank0)

    trainer = GRPOTrainer(
        features,
        inputs.texts,
        inputs.reward,
        config,
        framework=framework,
        head=inputs.head,
        reward_name=settings.reward,
        collectives=collectives,
    )
    if checkpoint is not None:
        trainer.load_checkpoint(checkpoint)
        if rank0:
            message = f"resuming {checkpoint} at step {trainer.step_count} (its settings are used)"
            print(f"athena train-head: {message}", file=sys.stderr, flush=True)
    log = out / LOG_NAME
    if rank0:  # a line per step, each appended whole; a resumed run keeps those up to its step
        _restart_log(log, trainer.step_count)
    if rank0 and eval_features is not None and trainer.step_count == 0:
        held_out = trainer.evaluate(eval_features, eval_texts)
        append_line(log, json.dumps({"step": 0, "eval_reward": held_out}))
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
            if rank0:
                append_line(log, json.dumps(metrics))
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


def check_installed(framework: str) -> None:
    if importlib.util.find_spec(framework) is None:
        group = "mlx-cpu" if framework == "mlx" else "torch"
        raise TrainError(
            f"--framework {framework} needs {framework}, which is not installed here "
            f"(uv sync --group {group}; on a Mac mlx comes with uv sync)"
        )


def _restart_log(path: Path, keep_until: int) -> None:
    kept: list[str] = []
    if keep_until and path.is_file():
        for line in path.read_text().splitlines():
            with suppress(json.JSONDecodeError, KeyError, TypeError):
                if json.loads(line)["step"] <= keep_until:
                    kept.append(line)
    write_file(path, "".join(line + "\n" for line in kept))


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
    """Reward (and held-out reward) and KL against steps; False without matplotlib."""
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
    top.set(ylabel="reward")
    top.legend(loc="lower right")
    bottom.plot(steps, [r["kl"] for r in rows], color="tab:red")
    bottom.set(ylabel="KL to reference", xlabel="step")
    figure.suptitle("athena train-head")
    figure.tight_layout()
    with replacing(png) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
    return True
