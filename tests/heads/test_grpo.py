"""GRPO for the head: the math, MLX = torch, it learns the toy task, checkpoints resume."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from athena.heads import toy
from athena.heads.grpo import (
    GRPOConfig,
    GRPOTrainer,
    TrainError,
    group_advantages,
    latest_checkpoint,
    make_learner,
    sample_actions,
)
from athena.models.head import HeadShape, initial_weights

TOY_STEPS = 80  # the guide's figure: >= 95% greedy accuracy on held-out states by then


def test_group_advantages_are_normalised_per_state() -> None:
    rewards = np.array([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    adv = group_advantages(rewards)
    np.testing.assert_allclose(adv[0], (rewards[0] - 0.25) / (0.5 + 1e-4), rtol=1e-6)
    np.testing.assert_array_equal(adv[1], 0.0)  # a group that agrees teaches nothing
    np.testing.assert_allclose(adv[2].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(adv[2].std(ddof=1), 1.0, atol=1e-3)


def test_sampling_follows_the_policy() -> None:
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 1e-9, 1e-9, 1e-9]]))
    uniforms = np.random.default_rng(0).random((2, 20000))
    actions = sample_actions(logits, uniforms, temperature=1.0)
    counts = np.bincount(actions[0], minlength=4) / 20000
    np.testing.assert_allclose(counts, [0.1, 0.2, 0.3, 0.4], atol=0.015)
    assert (actions[1] == 0).all()
    hot = sample_actions(logits[:1], uniforms[:1], temperature=100.0)  # nearly uniform
    np.testing.assert_allclose(np.bincount(hot[0], minlength=4) / 20000, 0.25, atol=0.015)


def test_config_rejects_bad_values_with_the_field_name() -> None:
    with pytest.raises(TrainError, match=r"num_generations=1 is not allowed"):
        GRPOConfig(num_generations=1)
    with pytest.raises(TrainError, match=r"epsilon=1.5 is not allowed"):
        GRPOConfig(epsilon=1.5)
    with pytest.raises(TrainError, match="unknown GRPOConfig field"):
        GRPOConfig.from_dict({"lr": 1.0})


def _parity_run(framework: str, steps: int = 10) -> dict[str, Any]:
    config = GRPOConfig(
        learning_rate=1e-2, num_iterations=3, beta=0.1, num_generations=6, hidden_dim=24
    )
    rng = np.random.default_rng(11)
    features = rng.standard_normal((8, 16)).astype(np.float32) * 2
    learner = make_learner(framework, initial_weights(HeadShape(16, 4, 24), seed=5), config)
    batches = [
        (rng.integers(0, 4, (8, 6)), rng.standard_normal((8, 6)).astype(np.float32))
        for _ in range(steps)
    ]
    losses, kls, clips = [], [], []
    for actions, advantages in batches:
        metrics = learner.update(features, actions, advantages)
        losses.append(metrics["loss"])
        kls.append(metrics["kl"])
        clips.append(metrics["clip_ratio"])
    moments, adam_step = learner.optimizer_state()
    return {
        "losses": np.array(losses),
        "kls": np.array(kls),
        "clips": np.array(clips),
        "weights": learner.weights(),
        "moments": moments,
        "adam_step": adam_step,
    }


def test_mlx_and_torch_give_the_same_losses_and_weights_after_10_steps(
    mlx_installed: None, torch_installed: None
) -> None:
    mlx_run, torch_run = _parity_run("mlx"), _parity_run("torch")
    assert mlx_run["adam_step"] == torch_run["adam_step"] == 30  # 10 steps x 3 iterations
    np.testing.assert_allclose(mlx_run["losses"], torch_run["losses"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mlx_run["kls"], torch_run["kls"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mlx_run["clips"], torch_run["clips"], atol=1e-7)  # same counts
    assert mlx_run["kls"][-1] > 0 and mlx_run["clips"].max() > 0  # both terms were active
    start = initial_weights(HeadShape(16, 4, 24), seed=5)
    for name, value in mlx_run["weights"].items():
        assert np.abs(value - start[name]).max() > 1e-3  # the weights moved
        np.testing.assert_allclose(value, torch_run["weights"][name], atol=1e-5, rtol=0)
    for name, value in mlx_run["moments"].items():
        np.testing.assert_allclose(value, torch_run["moments"][name], atol=1e-5, rtol=1e-4)
    loss_diff = np.abs(mlx_run["losses"] - torch_run["losses"]).max()
    weight_diff = max(
        np.abs(v - torch_run["weights"][k]).max() for k, v in mlx_run["weights"].items()
    )
    print(
        f"parity after 10 steps: max |loss diff| {loss_diff:.2e}, "
        f"max |weight diff| {weight_diff:.2e}"
    )


def _toy_trainer(data: dict[str, Any], framework: str, **config: Any) -> GRPOTrainer:
    return GRPOTrainer(
        data["train_features"],
        data["train"],
        toy.reward,
        GRPOConfig(**config),
        framework=framework,
        reward_name="athena.heads.toy:reward",
    )


def test_it_learns_the_toy_task_from_chance_to_95_percent(
    toy_data: dict[str, Any], framework: str
) -> None:
    trainer = _toy_trainer(toy_data, framework)
    held, held_features = toy_data["held"], toy_data["held_features"]
    before = trainer.evaluate(held_features, held)
    assert before <= 0.45  # about chance (0.25) with 4 actions
    rewards = [trainer.step()["reward"] for _ in range(TOY_STEPS)]
    after = trainer.evaluate(held_features, held)
    assert after >= 0.95, (before, after)
    assert np.mean(rewards[-10:]) > np.mean(rewards[:10]) + 0.3  # the sampled policy improved


def test_resuming_a_checkpoint_continues_exactly(tmp_path: Path, framework: str) -> None:
    features = np.random.default_rng(3).standard_normal((40, 16)).astype(np.float32)
    texts = toy.states(40)
    config = {"batch_size": 8, "hidden_dim": 16, "num_iterations": 2}

    def trainer() -> GRPOTrainer:
        return GRPOTrainer(features, texts, toy.reward, GRPOConfig(**config), framework=framework)

    straight = trainer()
    for _ in range(5):
        straight.step()
    resumed = trainer()
    for _ in range(3):
        resumed.step()
    checkpoint = resumed.save_checkpoint(tmp_path)
    assert checkpoint.name == "checkpoint-0000003" and latest_checkpoint(tmp_path) == checkpoint
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "head.safetensors",
        "optimizer.safetensors",
        "reference.safetensors",
        "trainer_state.json",
    ]
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["step"] == 3 and state["adam_step"] == 6 and state["config"]["batch_size"] == 8
    fresh = trainer()
    fresh.load_checkpoint(checkpoint)
    tail = [fresh.step() for _ in range(2)]
    expected = _replay(trainer, 5)[3:]
    for got, want in zip(tail, expected, strict=True):
        assert got["step"] == want["step"]
        assert got["reward"] == want["reward"]  # the same sampled actions (RNG restored)
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)
    for name, value in fresh.learner.weights().items():
        np.testing.assert_allclose(value, straight.learner.weights()[name], atol=1e-6)


def _replay(make: Any, steps: int) -> list[dict[str, float]]:
    trainer = make()
    return [trainer.step() for _ in range(steps)]


# A trainer of two steps, saved into OUT with extra {"run": RUN} (run in a child: FW, OUT, RUN).
SAVE = """
import numpy as np
from athena.heads import toy
from athena.heads.grpo import GRPOConfig, GRPOTrainer

features = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
config = GRPOConfig(batch_size=4, hidden_dim=8)
trainer = GRPOTrainer(features, toy.states(8), toy.reward, config, framework=FW)
for _ in range(2):
    trainer.step()
trainer.save_checkpoint(OUT, extra={"run": RUN})
"""


def _save(framework: str, out: Path, run: str) -> str:
    return f"FW, OUT, RUN = {framework!r}, {str(out)!r}, {run!r}\n{SAVE}"


def _resumed_run(out: Path, framework: str) -> str:
    """The "run" of the checkpoint a resume picks, after loading it whole."""
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None, f"no complete checkpoint in {out}"
    features = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
    trainer = GRPOTrainer(features, toy.states(8), toy.reward, GRPOConfig(), framework=framework)
    return str(trainer.load_checkpoint(checkpoint)["run"])


def test_a_checkpoint_save_killed_at_any_step_leaves_a_complete_checkpoint(
    tmp_path: Path, mlx_installed: None, kill_at_each_step: Any
) -> None:
    """Saving over checkpoint-0000002 (same step, a resumed run): at every moment a resume
    finds a whole checkpoint, the old or the new. On MLX only: the folder writing is the same
    for both frameworks (numpy arrays by then)."""
    framework = "mlx"
    exec(_save(framework, tmp_path, "old"), {})
    runs: list[str] = []
    steps = kill_at_each_step(
        _save(framework, tmp_path, "new"),
        lambda step: runs.append(_resumed_run(tmp_path, framework)),
        "athena.heads.toy",
        "athena.heads.grpo",  # imported once, before the children fork (each import of the
        "numpy.random",  # trainer cost a child 0.15 s, most of its time: ~60 children)
        f"athena.heads.{framework}_learner",
    )
    assert steps > 10 and runs[0] == "old" and runs[-1] == "new", runs
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [
        "checkpoint-0000002"
    ]


def test_resume_skips_a_damaged_newest_checkpoint_and_says_why(
    tmp_path: Path, framework: str, caplog: pytest.LogCaptureFixture
) -> None:
    features = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
    config = GRPOConfig(batch_size=4, hidden_dim=8)
    trainer = GRPOTrainer(features, toy.states(8), toy.reward, config, framework=framework)
    trainer.step()
    good = trainer.save_checkpoint(tmp_path)
    trainer.step()
    newest = trainer.save_checkpoint(tmp_path)
    optimizer = newest / "optimizer.safetensors"
    size = optimizer.stat().st_size
    with optimizer.open("r+b") as f:  # a disk that lost the end of the file
        f.truncate(size - 16)
    with caplog.at_level(logging.WARNING, logger="athena.heads.grpo"):
        assert latest_checkpoint(tmp_path) == good
    assert [r.getMessage() for r in caplog.records] == [
        f"skipping checkpoint-0000002, not a complete checkpoint: optimizer.safetensors in "
        f"{newest} is truncated ({size - 16} bytes of {size}); re-download or re-create the "
        "checkpoint"
    ]


def test_a_full_disk_while_saving_keeps_the_old_checkpoint(
    tmp_path: Path, mlx_installed: None
) -> None:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) fails the new checkpoint's writes as
    a full disk would: one sentence, the old checkpoint whole, nothing left beside it. On MLX
    only, as the kill test."""
    framework = "mlx"
    exec(_save(framework, tmp_path, "old"), {})
    script = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))\n"
        f"{_save(framework, tmp_path, 'new')}"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert child.returncode == 1
    assert child.stderr.splitlines()[-1] == (
        f"athena.heads.grpo_config.TrainError: could not save {tmp_path}/checkpoint-0000002 "
        "(Error while serializing: I/O error: File too large (os error 27)); the checkpoints "
        f"in {tmp_path} are as they were"
    )
    assert _resumed_run(tmp_path, framework) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0000002"]
