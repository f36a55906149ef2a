"""`athena generate`, `encode`, `tiny-model`, `convert` and `models`, and what every command
shares: CommandError, the loader's arguments, the loaded model, the loader's log lines."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from athena import encode_io
from athena.source import DTYPES

CONFIG_OPTIONS = ("revision", "dtype", "device", "quantize_bits", "router_bits", "allow_oversize")
DTYPE_NAMES = ", ".join(DTYPES[:-1]) + " or " + DTYPES[-1]  # float32, float16 or bfloat16


class CommandError(Exception):
    """A problem the user can fix: printed as one sentence, exit code 1, no traceback."""


@contextlib.contextmanager
def one_sentence(*errors: type[Exception]) -> Iterator[None]:
    """The `errors` the block raises become CommandError (their message is the sentence)."""
    try:
        yield
    except errors as error:
        raise CommandError(str(error)) from None


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
    with one_sentence(ValueError):
        same = {name: getattr(args, name) for name in CONFIG_OPTIONS}  # named as the flags
        config = olmoe.OLMoEConfig(
            model_name=args.model,
            use_mlx=args.backend != "transformers",
            allow_fallback=args.backend is None,
            action_head_path=getattr(args, "action_head", None),  # `encode --action-head`
            **same,
        )
    model = olmoe.OLMoEModel(config)
    if not model.load():
        raise CommandError(model.load_error or "the model could not be loaded")
    return model


def add_loader_commands(sub: argparse._SubParsersAction) -> None:
    """`generate`, `encode`, `tiny-model` (issue #3)."""
    generate = sub.add_parser(
        "generate",
        help="generate text with OLMoE (mlx-lm first, transformers as the fallback)",
        description="Print the completion of PROMPT as it is generated (greedy by default).",
    )
    add_model_arguments(generate)
    generate.add_argument("prompt", metavar="PROMPT", help="the text to continue")
    generate.add_argument("--max-tokens", type=int, default=64, help="default: 64")
    generate.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    generate.set_defaults(handler=_generate_command)

    encode = sub.add_parser(
        "encode",
        help="embed texts: the mean-pooled final hidden state, as JSON lines or a .npy file",
        description="Embed each TEXT, or each line of --input, as the mean-pooled final hidden "
        "state: one JSON array per text on stdout, or one float32 (n, hidden) array in "
        "--output (.npy). Texts run in length-sorted batches; vectors keep the input order.",
        epilog="--input is read line by line. A .txt line (also stdin) is one text without its "
        "line ending; a .jsonl/.ndjson line is a JSON string or a JSON object with a string "
        '"text" field. Empty lines are refused, so row i of the output is line i of the input. '
        "--output is written to a temporary file beside it and renamed when every text is "
        "encoded: an error never leaves a partial file.",
    )
    add_model_arguments(encode)
    encode.add_argument("texts", metavar="TEXT", nargs="*", help="the text(s) to encode")
    encode.add_argument(
        "--input",
        metavar="FILE",
        help="read the texts from FILE (.txt: one per line; .jsonl: see below; - is stdin)",
    )
    encode.add_argument(
        "--format", choices=encode_io.FORMATS, help="the --input format (default: its suffix)"
    )
    encode.add_argument(
        "--output",
        metavar="FILE",
        help="write a float32 (n, hidden) .npy to FILE instead of JSON lines to stdout",
    )
    encode.add_argument(
        "--batch-size", type=int, default=32, metavar="N", help="texts per batch (default: 32)"
    )
    encode.add_argument(
        "--truncate",
        action="store_true",
        help="keep the first max_position_embeddings tokens of a longer text (default: refuse)",
    )
    encode.add_argument(
        "--action-head",
        metavar="FILE",
        help="write the logits (n, num_actions) of the MemoryActionHead saved in FILE by "
        "`athena train-head` instead of the vectors (its sizes must fit the model)",
    )
    encode.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown on a terminal only)"
    )
    encode.set_defaults(handler=_encode_command)

    tiny = sub.add_parser(
        "tiny-model",
        help="write a small deterministic OLMoE checkpoint (tests, guides, benchmarks)",
        description="Write a deterministic OLMoE folder (config.json, model.safetensors, "
        "tokenizer files) that mlx-lm and transformers both load. A new folder appears complete "
        "or not at all; a folder that is not empty is refused unless --force.",
    )
    tiny.add_argument(
        "out", metavar="OUT", help="the folder to write (created; must be new or empty)"
    )
    tiny.add_argument("--size", default="tiny", help="tiny, small or medium (default: tiny)")
    tiny.add_argument("--seed", type=int, default=0, help="weights seed (default: 0)")
    tiny.add_argument("--dtype", default="float32", help=f"{DTYPE_NAMES} (default: float32)")
    tiny.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that has files: replace only the tiny checkpoint's own "
        "files (config.json, model.safetensors, tokenizer and generation files), keep the rest",
    )
    tiny.set_defaults(handler=_tiny_model_command)


def _generate_command(args: argparse.Namespace) -> int:
    with loader_logging(args.verbose):
        model = load_model(args)
        sampling = dict(max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
        with one_sentence(TypeError, ValueError):
            for piece in model.stream(args.prompt, **sampling):
                print(piece, end="", flush=True)
    print()
    return 0


ENCODE_CHUNK = 1024  # texts read from --input per encode() call (bounds the memory)


def _encode_command(args: argparse.Namespace) -> int:
    from athena.backends.batching import check_batch_size, progress
    from athena.errors import TextTooLong

    if bool(args.texts) == (args.input is not None):
        raise CommandError("give the texts either as TEXT arguments or with --input, not both")
    if "" in args.texts:
        number = args.texts.index("") + 1
        raise CommandError(f"TEXT {number} is empty; pass at least one character")
    with one_sentence(ValueError):  # the check encode() makes, before a model is loaded
        check_batch_size(args.batch_size, name="--batch-size")
    if args.format is not None and args.input is None:
        raise CommandError("--format describes --input; pass --input FILE too")
    if args.input not in (None, "-") and not Path(args.input).is_file():
        raise CommandError(f"--input file not found: {args.input}")
    if args.output is not None:
        output = Path(args.output)
        if not output.resolve().parent.is_dir():
            raise CommandError(f"the folder of --output does not exist: {output.parent}")
        if output.is_dir():
            raise CommandError(f"--output {output} is a folder; name the .npy file to write")
        if args.input not in (None, "-") and output.resolve() == Path(args.input).resolve():
            raise CommandError("--output is the --input file; write the vectors to another file")
    with loader_logging(args.verbose):
        model = load_model(args)
        with contextlib.ExitStack() as stack:
            if args.input is None:
                name = "the arguments"
                lines: Iterator[tuple[int, str]] = enumerate(args.texts, 1)
            else:
                name = "stdin" if args.input == "-" else args.input
                stream = stack.enter_context(encode_io.open_input(args.input))
                fmt = encode_io.input_format(args.input, args.format)
                lines = encode_io.read_texts(stream, fmt, name)
            writer = None
            if args.output is not None:
                writer = stack.enter_context(encode_io.NpyWriter(args.output))
            report = stack.enter_context(progress(None, not args.no_progress))
            options = {"batch_size": args.batch_size, "truncate": args.truncate, "on_batch": report}
            count = 0
            try:
                size = max(ENCODE_CHUNK, args.batch_size)
                while chunk := list(itertools.islice(lines, size)):
                    numbers, texts = [n for n, _ in chunk], [t for _, t in chunk]
                    try:
                        vectors = model.encode(texts, show_progress=False, **options)
                    except TextTooLong as error:
                        number = numbers[error.index or 0]
                        where = f"line {number} of {name}" if args.input else f"TEXT {number}"
                        raise CommandError(
                            f"{where} has {error.tokens:,} tokens, more than this model's "
                            f"{error.limit:,} positions (max_position_embeddings); shorten or "
                            f"split it, or pass --truncate to keep its first {error.limit:,} "
                            "tokens"
                        ) from None
                    count += len(texts)
                    if args.action_head is not None:
                        vectors = model.last_action_logits
                    if writer is None:
                        for vector in vectors:
                            print(json.dumps([round(float(x), 6) for x in vector]))
                    else:
                        writer.append(vectors)
                if count == 0:
                    raise CommandError(f"{name} has no texts; put one text per line")
                if writer is not None:
                    writer.commit()
            except (encode_io.BadLine, TypeError, ValueError) as error:
                raise CommandError(str(error)) from None
            except OSError as error:  # e.g. a full disk
                where = error.filename or args.output or name
                raise CommandError(f"could not read or write {where} ({error.strerror})") from None
    return 0


def _tiny_model_command(args: argparse.Namespace) -> int:
    from athena.checkpoints import FILES, FolderNotEmpty, count_parameters, write_tiny_olmoe

    with one_sentence(ValueError, OSError):
        try:
            path = write_tiny_olmoe(
                args.out, size=args.size, seed=args.seed, dtype=args.dtype, overwrite=args.force
            )
        except FolderNotEmpty as error:
            raise CommandError(error.sentence("--force")) from None
    kept = [p.name for p in path.iterdir() if p.name not in FILES]
    note = f"; left {len(kept)} other file(s) in it as they were" if kept else ""
    parameters = count_parameters(args.size)
    print(f"wrote {path} ({args.size}, {parameters:,} parameters, {args.dtype}){note}")
    return 0


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
    from athena.checkpoints import FolderNotEmpty
    from athena.errors import LoadError

    quantization = {name: getattr(args, name) for name in ("bits", "group_size", "router_bits")}
    with one_sentence(LoadError, ValueError, OSError):  # OSError: FolderBusy too
        try:
            path = convert_model(args.model, args.out, **quantization)
        except FolderNotEmpty as error:
            raise CommandError(
                f"{error.folder} is not empty; choose a new or empty folder for the copy"
            ) from None
    print(
        f"wrote {path} ({args.bits}-bit, group size {args.group_size}, router "
        f"{args.router_bits}-bit)"
    )
    return 0


def add_models_command(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser(
        "models",
        help="lock, sync and verify the models pyproject.toml declares ([tool.athena.models])",
    )
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    lock = actions.add_parser("lock", help="resolve each declared model and write models.lock")
    lock.add_argument(
        "--check", action="store_true", help="exit 1 if pyproject.toml and models.lock disagree"
    )
    lock.add_argument(
        "--upgrade", action="store_true", help="re-resolve models already locked (default: keep)"
    )
    actions.add_parser("sync", help="fetch the locked files into the Hugging Face cache, verify")
    actions.add_parser("verify", help="check the cached files against models.lock")
    for parser in actions.choices.values():
        parser.add_argument(
            "--project",
            type=Path,
            metavar="DIR",
            help="the project folder (default: the nearest with a pyproject.toml, upward)",
        )
    models.set_defaults(handler=_models_command)


def _models_command(args: argparse.Namespace) -> int:
    from athena import modellock
    from athena.errors import SourceError

    start = args.project
    project = modellock.find_project(start)
    if project is None or (start is not None and project != start.resolve()):
        raise CommandError(
            f"no pyproject.toml in {start or Path.cwd()}{'' if start else ' or above'}; "
            "pass --project DIR"
        )
    with one_sentence(SourceError):
        if args.action == "lock" and not args.check:
            models = modellock.lock(project, upgrade=args.upgrade)
            print(f"locked {len(models)} model(s) in {project / modellock.LOCK_FILE}")
            return 0
        check = {"lock": modellock.lock_problems, "sync": modellock.sync}
        problems = check.get(args.action, modellock.verify)(project)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and not modellock.declared(project):
        print(f"no model in [tool.athena.models] of {project / 'pyproject.toml'}: nothing locked")
    elif not problems:
        print(f"{project / modellock.LOCK_FILE}: every model as locked")
    return 1 if problems else 0
