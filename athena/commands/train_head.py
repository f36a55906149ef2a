"""`athena train-head`: GRPO for the MemoryActionHead (athena/heads/train.py)."""

from __future__ import annotations

import argparse

from athena.commands.common import CommandError, add_model_arguments, load_model, loader_logging


def add_train_head_command(sub: argparse._SubParsersAction) -> None:
    """`train-head` (issue #13): GRPO for the MemoryActionHead; see athena/heads/train.py."""
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
    train.add_argument("--group-size", type=int, help="actions sampled per state (default: 8)")
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
        from athena.heads import HeadError
        from athena.heads.grpo import TrainError
        from athena.heads.launch import rank_status, run_ranks
        from athena.heads.train import check_distributed_inputs, prepare_features, run

        try:
            if args.hostfile is not None or (args.ranks is not None and args.ranks != 1):
                ranks = ranks_of(args)
                if args.hostfile is None:  # the ranks read these very files: check them once,
                    inputs = check_distributed_inputs(args)  # and encode the states once
                    with loader_logging(args.verbose):
                        prepare_features(args, inputs, load_model)
                run_ranks(ranks, rank_argv(train, args), hostfile=args.hostfile)
                return 0
            with loader_logging(args.verbose), rank_status((TrainError, HeadError, CommandError)):
                return run(args, load_model)
        except (TrainError, HeadError) as error:
            raise CommandError(str(error)) from None

    train.set_defaults(handler=run_train_head)


def ranks_of(args: argparse.Namespace) -> int:
    """The number of ranks --ranks or --hostfile asks for (TrainError if they disagree)."""
    from athena.heads.grpo import TrainError
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


def rank_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The train-head arguments of `args` as a command line for each rank (without --ranks
    and --hostfile: a rank runs the training itself)."""
    argv: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        skip = ("help", "ranks", "hostfile")
        if not action.option_strings or action.dest in skip or value is None:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[-1]] if value else []
        else:
            argv += [action.option_strings[-1], str(value)]
    return argv
