"""The `athena` command. Subcommands import their backends only when they run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from athena import __version__

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A problem the user can fix: printed as one sentence, exit code 1, no traceback."""


def _add_loader_commands(sub: argparse._SubParsersAction) -> None:
    """`generate`, `encode`, `tiny-model` (issue #3)."""
    tiny = sub.add_parser(
        "tiny-model",
        help="write a small deterministic OLMoE checkpoint (tests, guides, benchmarks)",
        description="Write a deterministic OLMoE folder (config.json, model.safetensors, "
        "tokenizer files) that mlx-lm and transformers both load.",
    )
    tiny.add_argument("out", metavar="OUT", help="the folder to write (created if needed)")
    tiny.add_argument("--size", default="tiny", help="tiny, small or medium (default: tiny)")
    tiny.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    tiny.add_argument(
        "--dtype", default="float32", help="float32, float16 or bfloat16 (default: float32)"
    )
    tiny.set_defaults(handler=_tiny_model_command)


def _tiny_model_command(args: argparse.Namespace) -> int:
    from athena.checkpoints import count_parameters, write_tiny_olmoe

    try:
        path = write_tiny_olmoe(args.out, size=args.size, seed=args.seed, dtype=args.dtype)
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    print(f"wrote {path} ({args.size}, {count_parameters(args.size):,} parameters, {args.dtype})")
    return 0


def _add_doctor_commands(sub: argparse._SubParsersAction) -> None:
    """`doctor`, `audit` (issue #4)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="athena",
        description="OLMoE on Apple Silicon: mlx first, transformers as the fallback.",
    )
    parser.add_argument("--version", action="version", version=f"athena {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_loader_commands(sub)
    _add_doctor_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except CommandError as error:
        print(f"athena {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
