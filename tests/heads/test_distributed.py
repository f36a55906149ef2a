"""Data-parallel GRPO with mx.distributed, for real: `mlx.launch -n 2 --backend ring` on
loopback with MLX's CPU build, and `athena train-head --ranks 2`, which starts it and checks
every rank. Each launch has a subprocess timeout (a hang fails the test)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from athena.heads import toy
from athena.models.head import load_weights

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LAUNCH = Path(sys.executable).parent / "mlx.launch"
SMALL = ["--steps", "6", "--states", "48", "--hidden-size", "32", "--hidden-dim", "16"]
SMALL += ["--batch-size", "8", "--group-size", "4", "--num-iterations", "2", "--warmup", "0"]

pytestmark = pytest.mark.skipif(not LAUNCH.exists(), reason="needs mlx.launch (mlx installed)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(*command: str, ranks: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    """mlx.launch -n RANKS --backend ring on loopback, on a free port, in this venv."""
    argv = [str(LAUNCH), "-n", str(ranks), "--backend", "ring"]
    argv += ["--starting-port", str(_free_port()), "--python", sys.executable, *command]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT, check=False
    )


def test_two_ranks_equal_one_rank_on_the_same_global_batch(
    mlx_installed: None, tmp_path: Path
) -> None:
    outputs = [
        "--out",
        str(tmp_path / "one.json"),
        "--save-head",
        str(tmp_path / "one.safetensors"),
    ]
    one = subprocess.run(
        [sys.executable, "-m", "athena.heads.ring_check", *SMALL, *outputs],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        check=False,
    )
    assert one.returncode == 0, one.stderr
    two = _launch(
        "-m",
        "athena.heads.ring_check",
        *SMALL,
        "--out",
        str(tmp_path / "two.json"),
        "--save-head",
        str(tmp_path / "two.safetensors"),
    )
    assert two.returncode == 0, two.stdout + two.stderr
    a = json.loads((tmp_path / "one.json").read_text())
    b = json.loads((tmp_path / "two.json").read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert b["communicate_s"] > 0 and a["communicate_s"] == 0
    assert a["rewards"] == b["rewards"]  # the same sampled actions on the shards
    np.testing.assert_allclose(a["losses"], b["losses"], atol=1e-5, rtol=0)
    one_head = load_weights(tmp_path / "one.safetensors")
    two_head = load_weights(tmp_path / "two.safetensors")
    diff = max(float(np.abs(one_head[k] - two_head[k]).max()) for k in one_head)
    print(
        f"2 ranks vs 1: max |loss diff| {np.abs(np.subtract(a['losses'], b['losses'])).max():.1e}, "
        f"max |weight diff| {diff:.1e}"
    )
    assert diff < 1e-5


def test_a_peer_that_never_connects_stops_the_wait_to_join_with_a_message(
    mlx_installed: None,
) -> None:
    proc = _launch(str(HERE / "stall_ranks.py"), "2", "init", timeout=120)
    output = proc.stdout + proc.stderr
    assert "rank 1 exited with code -15" in output  # stopped: it never tried to connect
    assert "rank 0 exited with code -9" in output  # killed by its watcher: init holds the GIL
    expected = "rank 0: connecting to the other ranks (mx.distributed.init) did not finish within 2"
    assert expected in output
    assert "rank 0 connected" not in output


def test_a_hung_all_sum_stops_with_a_message_instead_of_hanging(mlx_installed: None) -> None:
    # 10 s: both ranks must join within it too, however loaded the machine
    proc = _launch(str(HERE / "stall_ranks.py"), "10", timeout=120)
    output = proc.stdout + proc.stderr
    assert "rank 1 woke up" not in output  # the watchdog ended the run, not rank 1's sleep
    # and rank 1 was stopped (SIGTERM) rather than finishing its sleep (which exits 0).
    assert "rank 1 exited with code -15" in output
    # mlx.launch itself exits 0 here; it reports each rank's code, and stops the others.
    assert "rank 0 exited with code 75" in output
    assert "rank 0 of 2: averaging the gradients (all_sum) did not finish within 10 s" in output
    assert "the all_sum returned" not in proc.stdout


def _train_head_on_ranks(
    tiny_olmoe: Path,
    tmp_path: Path,
    reward: str,
    *extra: str,
    steps: int,
    deadline: float = 20,
    stall: str = "",
) -> subprocess.CompletedProcess:
    """`athena train-head --ranks 2` (it starts mlx.launch itself) on the toy states, from
    this folder so that the rewards in failing_reward.py load; `deadline` is the run's
    --collective-timeout, far below the subprocess timeout: a run that hangs fails the test."""
    (tmp_path / "states.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in toy.states(32, seed=1))
    )
    argv = [sys.executable, "-m", "athena.cli", "train-head", "--ranks", "2"]
    argv += ["--model", str(tiny_olmoe), "--data", str(tmp_path / "states.jsonl")]
    argv += ["--reward", reward, "--steps", str(steps), "--batch-size", "8"]
    argv += ["--out", str(tmp_path / "out"), "--collective-timeout", str(deadline), *extra]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "STALL_RANKS": stall}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env=env, cwd=HERE, check=False
    )


def _exit_code_of(rank: int, sentence: str) -> int:
    found = re.search(rf"rank {rank} [^;]*\(exit code (-?\d+)\)", sentence)
    assert found, sentence
    return int(found.group(1))


@pytest.mark.slow
def test_train_head_on_two_ranks_writes_once_from_rank_0(
    mlx_installed: None, tiny_olmoe: Path, tmp_path: Path
) -> None:
    proc = _train_head_on_ranks(
        tiny_olmoe, tmp_path, "athena.heads.toy:reward", "--verbose", steps=4
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The launcher encodes the states once; the ranks read them and never load the model.
    assert (proc.stdout + proc.stderr).count("Loading OLMoE") == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("trained 4 steps on mlx x 2 ranks") == 1
    assert "athena-rank-status" not in proc.stdout + proc.stderr  # read by the launcher
    out = tmp_path / "out"
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["communicate_s"] > 0 for r in rows)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint-0000004",
        "features.safetensors",
        "head.safetensors",
        "log.jsonl",
        "train.png",
    ]


def test_a_rank_killed_mid_run_stops_every_rank_and_the_command_names_it(
    mlx_installed: None, tiny_olmoe: Path, tmp_path: Path
) -> None:
    """Rank 1 is SIGKILLed in step 4 of 8 (by its reward: no message, no clean-up). Rank 0
    must stop at its next all_sum, not at the watchdog, and the command must not exit 0."""
    proc = _train_head_on_ranks(tiny_olmoe, tmp_path, "failing_reward:kill_rank_1", steps=8)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "athena train-head: rank 1 of 2 failed: killed by SIGKILL before it could say why; "
    ), output
    assert _exit_code_of(0, last) != 0  # every rank exited non-zero
    assert "did not finish within" not in output  # not the watchdog
    assert "Traceback" not in output
    out = tmp_path / "out"
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps in ([1, 2], [1, 2, 3])  # it was mid-run: steps 1-3 done, step 4 never was
    assert not (out / "head.safetensors").exists()  # nothing that looks like a finished run


@pytest.mark.slow
def test_a_rank_whose_reward_raises_stops_the_run_with_its_sentence(
    mlx_installed: None, tiny_olmoe: Path, tmp_path: Path
) -> None:
    proc = _train_head_on_ranks(tiny_olmoe, tmp_path, "failing_reward:raise_on_rank_1", steps=8)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "athena train-head: rank 1 of 2 failed: the reward failing_reward:raise_on_rank_1 "
        "raised ConnectionError: the scoring service on rank 1 is down"
    ), output
    assert _exit_code_of(0, last) != 0
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("stall", "named"),
    [("1", "rank 1 of 2 failed: it never started connecting"), ("0,1", "rank 0 of 2 failed: it")],
)
def test_a_rank_that_never_joins_the_ring_fails_the_run_within_the_deadline(
    mlx_installed: None, tiny_olmoe: Path, tmp_path: Path, stall: str, named: str
) -> None:
    """The stalled ranks hang importing the reward, before mx.distributed.init; the
    launcher's deadline (--collective-timeout) for every rank to join ends the run."""
    reward = "failing_reward:kill_rank_1"
    proc = _train_head_on_ranks(tiny_olmoe, tmp_path, reward, steps=4, deadline=15, stall=stall)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"athena train-head: {named}"), output
    assert ("(rank 1 too)" if stall == "0,1" else "rank 0 was stopped at the deadline") in last
    assert "Traceback" not in output


def test_a_malformed_status_line_is_that_ranks_failure_shown_escaped(
    mlx_installed: None, tiny_olmoe: Path, tmp_path: Path
) -> None:
    reward = "failing_reward:malformed_status_on_rank_1"
    proc = _train_head_on_ranks(tiny_olmoe, tmp_path, reward, steps=8)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("athena train-head: rank 1 of 2 failed: it wrote a malformed status "), (
        output
    )
    assert '"code": "done?"' in last and "\x1b" not in last  # the escape code is shown escaped
    assert "Traceback" not in output
