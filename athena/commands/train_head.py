"""`athena train-head`: GRPO for the MemoryActionHead (athena/heads/train.py). `--ranks N` and
`--hostfile` start one rank each with mlx.launch, running `main` below on the settings' JSON."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import TYPE_CHECKING

from athena.commands.model import (
    CommandError,
    add_model_arguments,
    load_model,
    loader_logging,
    one_sentence,
)
from athena.heads.grpo_config import GRPOConfig, TrainError
from athena.models.head import HeadError

if TYPE_CHECKING:
    from athena.heads.train import TrainSettings


def add_train_head_command(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train-head",
        help="train the MemoryActionHead with GRPO on OLMoE features (MLX or torch)",
        description="Encode the states once, then train the head with GRPO against a reward. "
        "--ranks N or --hostfile train across processes or Macs (docs/training-head.md).",
    )
    add_model_arguments(train)
    train.add_argument("--data", required=True, metavar="JSONL", help='lines of {"text": ...}')
    train.add_argument(
        "--reward",
        required=True,
        metavar="MOD:FN|JSONL",
        help="module:function(text, action) "
        '-> float, or a JSONL of {"text": ..., "rewards": [one per action]}',
    )
    train.add_argument("--steps", required=True, type=int, help="train until this step")
    train.add_argument("--out", required=True, metavar="DIR", help="checkpoints, log, plot")
    train.add_argument("--framework", choices=("mlx", "torch"), help="default: mlx if installed")
    train.add_argument(
        "--group-size", dest="num_generations", type=int, help="actions per state (default: 8)"
    )
    train.add_argument("--batch-size", type=int, help="states per step, all ranks (default: 32)")
    train.add_argument("--learning-rate", type=float, help="AdamW's (default: 3e-3)")
    train.add_argument("--beta", type=float, help="KL penalty to the initial head (default: 0.04)")
    train.add_argument("--epsilon", type=float, help="ratio clip (default: 0.2)")
    train.add_argument("--num-iterations", type=int, help="updates per sampled batch (default: 1)")
    train.add_argument("--temperature", type=float, help="sampling temperature (default: 1.0)")
    train.add_argument("--seed", type=int, help="init and sampling seed (default: 42)")
    train.add_argument("--num-actions", type=int, help="memory actions (default: 4)")
    train.add_argument("--hidden-dim", type=int, help="the head's hidden width (default: 256)")
    train.add_argument("--init", metavar="HEAD", help="start from this head .safetensors")
    train.add_argument("--eval-data", metavar="JSONL", help="held-out states: greedy reward")
    train.add_argument("--steps-per-eval", type=int, help="default: 10")
    train.add_argument("--save-every", type=int, help="steps between checkpoints (default: 100)")
    train.add_argument("--resume", action="store_true", help="continue DIR's last checkpoint")
    train.add_argument(
        "--collective-timeout", type=float, help="seconds before a hung all_sum stops the run"
    )
    train.add_argument(
        "--ranks",
        type=int,
        metavar="N",
        help="train on N processes on this machine (mlx.launch, ring over loopback); "
        "exits non-zero naming the rank if one fails",
    )
    train.add_argument(
        "--hostfile",
        metavar="JSON",
        help="train on the Macs of an mlx.launch hostfile, one rank each, checked as --ranks",
    )

    def run_train_head(args: argparse.Namespace) -> int:
        from athena.heads.launch import run_ranks
        from athena.heads.train import check_installed, read_inputs, state_features

        with one_sentence(TrainError, HeadError):
            settings = settings_of(args)
            if args.hostfile is None and args.ranks in (None, 1):
                return train_once(settings)
            ranks = ranks_of(args)
            if args.hostfile is None:  # the ranks read these very files: check them once,
                inputs = read_inputs(settings)  # and encode the states once (on MLX)
                check_installed("mlx")
                with loader_logging(args.verbose):  # write=True: into --out, for the ranks
                    state_features(settings, inputs, lambda: load_model(args), write=True)
            rank_command = ["-m", "athena.commands.train_head", settings.to_json()]
            timeout = settings.config.collective_timeout
            run_ranks(ranks, rank_command, hostfile=args.hostfile, timeout=timeout)
            return 0

    train.set_defaults(handler=run_train_head)


def settings_of(args: argparse.Namespace) -> TrainSettings:
    """The run's settings from the command line (TrainError for a knob out of range)."""
    from athena.heads.train import LOAD_ARGUMENTS, TrainSettings

    knobs = {f.name: getattr(args, f.name, None) for f in fields(GRPOConfig)}
    config = GRPOConfig(**{name: value for name, value in knobs.items() if value is not None})
    model = {name: getattr(args, name) for name in (*LOAD_ARGUMENTS, "allow_oversize")}
    same = {f.name for f in fields(TrainSettings)} - {"config", "model"}  # named as the options
    return TrainSettings(config=config, model=model, **{name: getattr(args, name) for name in same})


def train_once(settings: TrainSettings) -> int:
    """One run (or one rank of a distributed run): its status reported to the launcher."""
    from athena.heads.launch import rank_status
    from athena.heads.train import run

    with loader_logging(settings.verbose), rank_status((TrainError, HeadError, CommandError)):
        return run(settings, lambda: load_model(argparse.Namespace(**settings.model)))


def main(argv: list[str] | None = None) -> int:
    """A rank of `--ranks`/`--hostfile`: `python -m athena.commands.train_head SETTINGS_JSON`."""
    from athena.heads.train import TrainSettings

    (text,) = sys.argv[1:] if argv is None else argv
    try:
        with one_sentence(TrainError, HeadError):
            return train_once(TrainSettings.from_json(text))
    except CommandError as error:
        print(f"athena train-head: {error}", file=sys.stderr)
        return 1


def ranks_of(args: argparse.Namespace) -> int:
    """The number of ranks --ranks or --hostfile asks for (TrainError if they disagree)."""
    from athena.heads.launch import hostfile_ranks

    if args.framework == "torch":
        option = "--ranks" if args.hostfile is None else "--hostfile"
        raise TrainError(f"{option} trains on MLX; drop --framework torch")
    if args.hostfile is None:
        if args.ranks < 1:
            raise TrainError(f"--ranks {args.ranks} is not allowed; use an integer >= 1")
        return int(args.ranks)
    hosts = hostfile_ranks(args.hostfile)
    if args.ranks is not None and args.ranks != hosts:
        raise TrainError(
            f"--ranks {args.ranks} but --hostfile {args.hostfile} lists {hosts} hosts; "
            "drop --ranks (a hostfile starts one rank per host)"
        )
    return hosts


if __name__ == "__main__":
    sys.exit(main())
