"""`athena convert`: an mlx-quantized copy of an OLMoE folder, its router kept at 8 bits."""

from __future__ import annotations

import argparse

from athena.commands.common import CommandError


def add_convert_command(sub: argparse._SubParsersAction) -> None:
    convert = sub.add_parser(
        "convert",
        help="write an mlx-quantized copy of a model (4 or 8 bits; the router stays at 8)",
        description="Quantize MODEL with mlx_lm.convert into OUT, a new mlx folder that "
        "`athena generate --model OUT` loads as stored. Everything takes --bits except "
        "OLMoE's router (mlp.gate), which stays at --router-bits (default 8): at 4 bits its "
        "rounding changes which experts run. OUT appears complete or not at all; it must be "
        "new or empty. Needs mlx-lm (on Linux: uv sync --group mlx-cpu).",
    )
    convert.add_argument("model", metavar="MODEL", help="a model folder (or an org/name hub id)")
    convert.add_argument("out", metavar="OUT", help="the folder to write (new or empty)")
    convert.add_argument("--bits", type=int, choices=(4, 8), default=4, help="default: 4")
    convert.add_argument(
        "--group-size", type=int, choices=(32, 64, 128), default=64, help="default: 64"
    )
    convert.add_argument(
        "--router-bits",
        type=int,
        choices=(4, 8),
        default=8,
        help="bits of the router, mlp.gate (default: 8; --router-bits 4 quantizes it like "
        "the rest, as plain mlx_lm.convert does)",
    )
    convert.set_defaults(handler=_convert_command)


def _convert_command(args: argparse.Namespace) -> int:
    from athena.backends.mlx_convert import convert_model
    from athena.checkpoints import FolderBusy, FolderNotEmpty
    from athena.errors import BackendMissing, LoadError, SourceError

    try:
        path = convert_model(
            args.model,
            args.out,
            bits=args.bits,
            group_size=args.group_size,
            router_bits=args.router_bits,
        )
    except FolderNotEmpty as error:
        raise CommandError(
            f"{error.folder} is not empty; choose a new or empty folder for the copy"
        ) from None
    except (BackendMissing, LoadError, SourceError, FolderBusy, ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    print(
        f"wrote {path} ({args.bits}-bit, group size {args.group_size}, router "
        f"{args.router_bits}-bit)"
    )
    return 0
