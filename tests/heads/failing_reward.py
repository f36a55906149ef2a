"""Rewards for test_distributed's failing runs: the toy task's reward, except on rank 1,
which dies mid-run (a real SIGKILL, no message), raises (a message) or writes a status line
that is not one. With STALL_RANKS=1 (or 0,1) in the environment, importing this module on
those ranks never returns: ranks stuck before they join the ring."""

from __future__ import annotations

import os
import signal

from athena.heads import toy

KILL_AT_CALL = 100  # rank 1 scores 4 states x 8 actions per step: this is in step 4
calls = 0

if "MLX_RANK" in os.environ and os.environ["MLX_RANK"] in os.environ.get("STALL_RANKS", ""):
    signal.pause()  # until mlx.launch or the launcher's deadline stops this process


def _on_rank_1_at_call(n: int) -> bool:
    global calls
    if os.environ.get("MLX_RANK") != "1":
        return False
    calls += 1
    return calls == n


def kill_rank_1(text: str, action: int) -> float:
    if _on_rank_1_at_call(KILL_AT_CALL):
        os.kill(os.getpid(), signal.SIGKILL)
    return toy.reward(text, action)


def raise_on_rank_1(text: str, action: int) -> float:
    if _on_rank_1_at_call(KILL_AT_CALL):
        raise ConnectionError("the scoring service on rank 1 is down")
    return toy.reward(text, action)


def malformed_status_on_rank_1(text: str, action: int) -> float:
    if _on_rank_1_at_call(KILL_AT_CALL):
        os.write(2, b'athena-rank-status: {"rank": 1, "code": "done?", "error": "\x1b[2J"}\n')
    return toy.reward(text, action)
