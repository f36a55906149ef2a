"""What the model commands share: the one error type of the CLI, the loader's arguments,
the loaded model, and the loader's log lines on stderr."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from athena.source import DTYPES

DTYPE_NAMES = ", ".join(DTYPES[:-1]) + " or " + DTYPES[-1]  # float32, float16 or bfloat16


class CommandError(Exception):
    """A problem the user can fix: printed as one sentence, exit code 1, no traceback."""


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="PATH", help="a model folder (or an org/name hub id)"
    )
    parser.add_argument(
        "--revision",
        help="a hub branch, tag or commit (for a name the project's models.lock does not pin)",
    )
    parser.add_argument(
        "--backend",
        choices=("mlx", "transformers"),
        help="force a backend (default: mlx-lm if installed, else transformers)",
    )
    parser.add_argument("--dtype", help=f"{DTYPE_NAMES} (default: the model's)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "mps"),
        default="auto",
        help="transformers' device (default auto: the Mac's GPU (mps) where torch has it)",
    )
    parser.add_argument("--quantize-bits", type=int, help="4 or 8: quantize after loading (mlx)")
    parser.add_argument(
        "--router-bits",
        type=int,
        default=8,
        help="4 or 8: the router's (mlp.gate) bits when quantizing (default: 8)",
    )
    parser.add_argument(
        "--allow-oversize",
        action="store_true",
        help="load even when the estimated peak memory is above this machine's",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the loader does")


@contextlib.contextmanager
def loader_logging(verbose: bool) -> Iterator[None]:
    """Show the loader's warnings (and with -v its steps) on stderr as `athena: ...` lines.
    Errors are not shown here: they become the CommandError sentence."""
    import logging
    import os

    log = logging.getLogger("athena")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("athena: %(message)s"))
    handler.addFilter(lambda record: record.levelno < logging.ERROR)
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    # No "Loading weights" bars: read at import by huggingface_hub, or switched off if imported.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    hf_logging: Any = getattr(sys.modules.get("transformers"), "logging", None)
    bars = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    if bars:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(args: argparse.Namespace) -> Any:
    """OLMoEModel per the arguments, loaded; a CommandError (one sentence) if it cannot be."""
    from athena.host import installed_backends
    from athena.models import olmoe

    if args.backend == "mlx" and "mlx" not in installed_backends():
        raise CommandError(
            "--backend mlx needs mlx-lm, which is not installed (on a Mac: uv sync; on "
            "Linux: uv sync --group mlx-cpu)"
        )
    try:
        config = olmoe.OLMoEConfig(
            model_name=args.model,
            revision=args.revision,
            use_mlx=args.backend != "transformers",
            allow_fallback=args.backend is None,
            dtype=args.dtype,
            device=args.device,
            quantize_bits=args.quantize_bits,
            router_bits=args.router_bits,
            allow_oversize=args.allow_oversize,
            action_head_path=getattr(args, "action_head", None),  # `encode --action-head`
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    model = olmoe.OLMoEModel(config)
    if not model.load():
        raise CommandError(model.load_error or "the model could not be loaded")
    return model
