"""The `athena` command. Subcommands import their backends only when they run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from athena import __version__
from athena.commands import machine, model, train_head
from athena.commands.model import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="athena",
        description="OLMoE on Apple Silicon: mlx first, transformers as the fallback.",
    )
    parser.add_argument("--version", action="version", version=f"athena {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    model.add_loader_commands(sub)
    machine.add_inspect_command(sub)
    model.add_convert_command(sub)
    machine.add_doctor_commands(sub)
    train_head.add_train_head_command(sub)
    model.add_models_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
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
