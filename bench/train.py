"""GRPO training of the MemoryActionHead: steps/s and states/s on 1 and 2 ranks (issue #13),
each a `python -m athena.heads.ring_check` in fresh processes (bench/README.md, "train").
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, Results, importable, tail

HIDDEN_SIZE = 2048
BATCH_SIZE = 32
GROUP_SIZE = 8


def _launcher() -> str | None:
    found = Path(sys.executable).parent / "mlx.launch"
    return str(found) if found.exists() else shutil.which("mlx.launch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_check(ranks: int, steps: int, timeout: float = 600.0) -> dict[str, Any]:
    """One ring_check run on `ranks` processes; its JSON (rank 0's)."""
    with tempfile.TemporaryDirectory(prefix="athena-bench-train-") as folder:
        out = Path(folder) / "result.json"
        args = ["-m", "athena.heads.ring_check", "--steps", str(steps), "--out", str(out)]
        args += ["--hidden-size", str(HIDDEN_SIZE), "--batch-size", str(BATCH_SIZE)]
        args += ["--group-size", str(GROUP_SIZE), "--warmup", "3"]
        if ranks == 1:
            command = [sys.executable, *args]
        else:
            launcher = _launcher()
            assert launcher is not None
            command = [launcher, "-n", str(ranks), "--backend", "ring"]
            command += ["--starting-port", str(_free_port()), "--python", sys.executable, *args]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"ring_check on {ranks} rank(s) failed: {tail(proc.stderr)}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def measure(results: Results, *, quick: bool) -> None:
    rounds, steps = (1, 5) if quick else (3, 30)
    print(f"train: GRPO on the head, {rounds} round(s) of {steps} steps per rank count", flush=True)
    if not importable("mlx.core"):
        reason = "mlx is not installed (the mlx-cpu group on Linux)"
        for ranks in (1, 2):
            results.skip(f"train.{ranks}rank.steps_per_s", f"GRPO steps/s, {ranks} rank(s)", reason)
        return
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(rounds):  # interleaved, so load changes hit both alike
        runs[1].append(run_check(1, steps))
        if _launcher() is not None:
            runs[2].append(run_check(2, steps))
    context: dict[str, Any] = {"hidden_size": HIDDEN_SIZE, "batch_size": BATCH_SIZE}
    context["group_size"] = GROUP_SIZE
    context.update(steps=steps, transport="ring on loopback, both ranks on this machine")
    for ranks, found in runs.items():
        if not found:
            label = f"GRPO steps/s, {ranks} ranks"
            results.skip(f"train.{ranks}rank.steps_per_s", label, "mlx.launch not found")
            continue
        label = f"{ranks} rank" + ("s" if ranks > 1 else "")
        figures = [
            ("steps_per_s", f"GRPO steps/s, {label}", "steps/s"),
            ("states_per_s", f"GRPO states/s, {label}", "states/s"),
        ]
        if ranks > 1:
            figures += [
                ("communication_share", f"share of the step in all_sum, {label}", "fraction"),
                ("allreduce_bytes_per_update", "bytes averaged per update", "bytes"),
            ]
        for key, name, unit in figures:
            results.add(
                f"train.{ranks}rank.{key}", name, [r[key] for r in found], unit, None, context
            )
