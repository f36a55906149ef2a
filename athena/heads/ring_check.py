"""Check a data-parallel set-up: GRPO on synthetic features, timed, on every rank.

    python -m athena.heads.ring_check --steps 20                       # one process
    mlx.launch -n 2 --backend ring --python .venv/bin/python \\
        -m athena.heads.ring_check --steps 20                            # two, on loopback
    mlx.launch --hostfile hosts.json --backend ring -m athena.heads.ring_check --steps 20

The states are random vectors of --hidden-size, the reward 1 for the action a fixed random
projection picks. Rank 0 prints (or writes to --out) JSON: steps/s, states/s, the share of
the step in the all_sum, the bytes averaged, the per-step losses; --save-head the head."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from athena.atomic import write_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m athena.heads.ring_check")
    for flag, default, what in (
        ("steps", 20, None), ("warmup", 2, "untimed first steps"), ("seed", 42, None),
        ("states", 256, "synthetic states"), ("hidden-size", 2048, None), ("hidden-dim", 256, None),
        ("batch-size", 32, "states per step, all ranks"), ("num-iterations", 1, None),
    ):  # fmt: skip
        parser.add_argument(f"--{flag}", type=int, default=default, help=what)
    parser.add_argument("--group-size", dest="num_generations", type=int, default=8)
    parser.add_argument("--timeout", dest="collective_timeout", type=float, default=120.0,
                        help="collective timeout (s)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the JSON here (rank 0)")
    parser.add_argument("--save-head", type=Path, help="write the final head here (rank 0)")
    args = parser.parse_args(argv)
    import numpy as np

    from athena.heads.distributed import Collectives
    from athena.heads.grpo import GRPOConfig, GRPOTrainer
    from athena.models.head import HeadShape, save_weights

    knobs = ("batch_size", "num_generations", "num_iterations", "hidden_dim", "seed")
    config = GRPOConfig(**{name: getattr(args, name) for name in (*knobs, "collective_timeout")})
    collectives = Collectives(timeout=config.collective_timeout)
    # The states: random vectors; the right action: the one a fixed random projection picks.
    rng = np.random.default_rng(args.seed)
    features = rng.standard_normal((args.states, args.hidden_size)).astype(np.float32)
    projection = rng.standard_normal((args.hidden_size, config.num_actions)).astype(np.float32)
    texts = [f"state-{i}" for i in range(args.states)]
    right = dict(zip(texts, np.argmax(features @ projection, axis=1).tolist(), strict=True))

    def reward(text: str, action: int) -> float:
        return 1.0 if right[text] == action else 0.0

    trainer = GRPOTrainer(features, texts, reward, config, framework="mlx", collectives=collectives)
    collectives.barrier()
    rows = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        metrics = trainer.step()
        metrics["step_s"] = time.perf_counter() - start
        if step >= args.warmup:
            rows.append(metrics)
    shape = HeadShape(args.hidden_size, config.num_actions, config.hidden_dim)
    step_s = sum(r["step_s"] for r in rows) / len(rows)
    communicate_s = sum(r["communicate_s"] for r in rows) / len(rows)
    result = {
        "world_size": collectives.size,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "group_size": config.num_generations,
        "head_parameters": shape.num_parameters(),
        # average_gradients sends the float32 gradients (+ 3 metrics) in one all_sum
        "allreduce_bytes_per_update": 4 * (shape.num_parameters() + 3),
        "updates_per_step": config.num_iterations,
        "step_s": step_s,
        "steps_per_s": 1.0 / step_s,
        "states_per_s": args.batch_size / step_s,
        "communicate_s": communicate_s,
        "communication_share": communicate_s / step_s,
        "losses": [r["loss"] for r in rows],
        "rewards": [r["reward"] for r in rows],
    }
    if collectives.rank == 0:
        if args.save_head:
            save_weights(trainer.learner.weights(), args.save_head)
        text = json.dumps(result)
        if args.out:
            write_file(args.out, text + "\n")
        else:
            print(text)
    collectives.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
