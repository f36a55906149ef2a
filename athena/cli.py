"""The `athena` command. Subcommands import their backends only when they run."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from athena import __version__

Handler = Callable[[argparse.Namespace], int]


class CommandError(Exception):
    """A problem the user can fix: printed as one sentence, exit code 1, no traceback."""


def _add_loader_commands(sub: argparse._SubParsersAction) -> None:
    """`generate`, `encode`, `tiny-model` (issue #3)."""
    generate = sub.add_parser(
        "generate",
        help="generate text with OLMoE (mlx-lm first, transformers as the fallback)",
        description="Print the completion of PROMPT as it is generated (greedy by default).",
    )
    _add_model_arguments(generate)
    generate.add_argument("prompt", metavar="PROMPT", help="the text to continue")
    generate.add_argument("--max-tokens", type=int, default=64, help="default: 64")
    generate.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    generate.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    generate.set_defaults(handler=_generate_command)

    encode = sub.add_parser(
        "encode",
        help="embed texts: the mean-pooled final hidden state, as JSON",
        description="Print one JSON array (the mean-pooled final hidden state) per TEXT.",
    )
    _add_model_arguments(encode)
    encode.add_argument("texts", metavar="TEXT", nargs="+", help="the text(s) to encode")
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
    tiny.add_argument(
        "--dtype", default="float32", help="float32, float16 or bfloat16 (default: float32)"
    )
    tiny.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that has files: replace only the tiny checkpoint's own "
        "files (config.json, model.safetensors, tokenizer and generation files), keep the rest",
    )
    tiny.set_defaults(handler=_tiny_model_command)


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, metavar="PATH", help="a model folder (or an org/name hub id)"
    )
    parser.add_argument(
        "--backend",
        choices=("mlx", "transformers"),
        help="force a backend (default: mlx-lm if installed, else transformers)",
    )
    parser.add_argument("--dtype", help="float32, float16 or bfloat16 (default: the model's)")
    parser.add_argument("--quantize-bits", type=int, help="4 or 8: quantize after loading (mlx)")
    parser.add_argument(
        "--allow-oversize",
        action="store_true",
        help="load even when the estimated peak memory is above this machine's",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the loader does")


@contextlib.contextmanager
def _loader_logging(verbose: bool) -> Iterator[None]:
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


def _load_model(args: argparse.Namespace) -> Any:
    """OLMoEModel per the arguments, loaded; a CommandError (one sentence) if it cannot be."""
    from athena.models import olmoe

    if args.backend == "mlx" and not olmoe.MLX_AVAILABLE:
        raise CommandError(
            "--backend mlx needs mlx-lm, which is not installed (on a Mac: uv sync; on "
            "Linux: uv sync --group mlx-cpu)"
        )
    try:
        config = olmoe.OLMoEConfig(
            model_name=args.model,
            use_mlx=args.backend != "transformers",
            allow_fallback=args.backend is None,
            dtype=args.dtype,
            quantize_bits=args.quantize_bits,
            allow_oversize=args.allow_oversize,
        )
    except ValueError as error:
        raise CommandError(str(error)) from None
    model = olmoe.OLMoEModel(config)
    if not model.load():
        raise CommandError(model.load_error or "the model could not be loaded")
    return model


def _generate_command(args: argparse.Namespace) -> int:
    with _loader_logging(args.verbose):
        model = _load_model(args)
        try:
            for piece in model.stream(
                args.prompt,
                max_tokens=args.max_tokens,
                temperature=args.temperature,
                seed=args.seed,
            ):
                print(piece, end="", flush=True)
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from None
    print()
    return 0


def _encode_command(args: argparse.Namespace) -> int:
    import json

    with _loader_logging(args.verbose):
        model = _load_model(args)
        try:
            vectors = model.encode(list(args.texts))
        except (TypeError, ValueError) as error:
            raise CommandError(str(error)) from None
    for vector in vectors:
        print(json.dumps([round(float(x), 6) for x in vector]))
    return 0


def _tiny_model_command(args: argparse.Namespace) -> int:
    from athena.checkpoints import FILES, FolderNotEmpty, count_parameters, write_tiny_olmoe

    try:
        path = write_tiny_olmoe(
            args.out, size=args.size, seed=args.seed, dtype=args.dtype, overwrite=args.force
        )
    except FolderNotEmpty as error:
        raise CommandError(error.sentence("--force")) from None
    except (ValueError, OSError) as error:
        raise CommandError(str(error)) from None
    kept = [p.name for p in path.iterdir() if p.name not in FILES]
    note = f"; left {len(kept)} other file(s) in it as they were" if kept else ""
    print(
        f"wrote {path} ({args.size}, {count_parameters(args.size):,} parameters, "
        f"{args.dtype}){note}"
    )
    return 0


def _add_inspect_command(sub: argparse._SubParsersAction) -> None:
    """`inspect` (issue #16): what the preflight knows about a model folder."""
    inspect = sub.add_parser(
        "inspect",
        help="check a model folder from its headers: parameters, dtype, tokenizer, memory",
        description="What MODEL (a folder, or a hub id in the local cache) holds and whether "
        "it fits this machine, read from config.json, the safetensors headers and the "
        "tokenizer files (no weight is read, no backend imported). Exit code 1 when it "
        "cannot be loaded.",
    )
    inspect.add_argument("model", metavar="MODEL", help="a model folder (or an org/name hub id)")
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    inspect.add_argument(
        "--backend", choices=("mlx", "transformers"), help="the backend of 'this load'"
    )
    inspect.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    inspect.add_argument("--quantize-bits", type=int, choices=(4, 8))
    inspect.set_defaults(handler=_inspect_command)


def _inspect_command(args: argparse.Namespace) -> int:
    import json

    from athena import preflight
    from athena.backends import SourceError

    try:
        info = preflight.inspect_model(args.model)
    except SourceError as error:
        raise CommandError(str(error)) from None
    report = preflight.describe(
        info, backend=args.backend, dtype=args.dtype, quantize_bits=args.quantize_bits
    )
    print(json.dumps(report, indent=2) if args.json else preflight.render(report))
    if report["problems"] and not args.json:
        raise CommandError(report["problems"][0])
    return 0 if report["ok"] else 1


def _add_doctor_commands(sub: argparse._SubParsersAction) -> None:
    """`doctor`, `audit` (issue #4)."""
    from pathlib import Path

    doctor = sub.add_parser(
        "doctor",
        help="check the environment: system, packages, mlx, memory, the CUDA audit",
        description="What is installed, what works, and what to do (scripts/verify_env.py). "
        "Exit code 0 when every check required on this platform passes.",
    )
    from athena.doctor.checks import add_arguments  # standard library only

    add_arguments(doctor)

    def run_doctor(args: argparse.Namespace) -> int:
        from athena.doctor.checks import run, usage_problem

        problem = usage_problem(args)
        if problem:
            raise CommandError(problem)
        return run(args)

    doctor.set_defaults(handler=run_doctor)

    audit = sub.add_parser(
        "audit",
        help="fail if uv.lock or this environment has a CUDA-specific package",
        description="The lock per platform (darwin-arm64 with every group; linux-x86_64 with "
        "the default groups, since the opt-in torch group pulls PyPI's CUDA torch there) and "
        "the installed distributions of this Python. Exit code 1 on any CUDA package.",
    )
    audit.add_argument(
        "--project",
        metavar="DIR",
        type=Path,
        help="the checkout with pyproject.toml and uv.lock (default: found)",
    )
    audit.add_argument("--json", action="store_true", help="print the result as JSON")
    levels = audit.add_mutually_exclusive_group()
    levels.add_argument("--lock-only", action="store_true", help="audit uv.lock only")
    levels.add_argument("--installed-only", action="store_true", help="audit this environment only")

    def run_audit(args: argparse.Namespace) -> int:
        import json

        from athena.doctor.audit import audit_report, render_audit
        from athena.doctor.audit import run_audit as audit_all
        from athena.doctor.lock import find_project_root, is_project_root

        if args.project is not None and not is_project_root(args.project):
            raise CommandError(
                f"{args.project} has no pyproject.toml and uv.lock: pass the project's folder"
            )
        root = args.project.resolve() if args.project else find_project_root()
        results = audit_all(root, lock=not args.installed_only, installed=not args.lock_only)
        if args.json:
            print(json.dumps(audit_report(results), indent=2))
        else:
            print(render_audit(results))
        return 0 if all(result.ok for result in results) else 1

    audit.set_defaults(handler=run_audit)


def _add_train_head_command(sub: argparse._SubParsersAction) -> None:
    """`train-head` (issue #13): GRPO for the MemoryActionHead; see athena/heads/train.py."""
    train = sub.add_parser(
        "train-head",
        help="train the MemoryActionHead with GRPO on OLMoE features (MLX or torch)",
        description="Encode the states once, then train the head with GRPO against a reward. "
        "Run under mlx.launch to train across processes or Macs (docs/training-head.md).",
    )
    _add_model_arguments(train)
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

    def run_train_head(args: argparse.Namespace) -> int:
        from athena.heads import HeadError
        from athena.heads.grpo import TrainError
        from athena.heads.train import run

        with _loader_logging(args.verbose):
            try:
                return run(args, _load_model)
            except (TrainError, HeadError) as error:
                raise CommandError(str(error)) from None

    train.set_defaults(handler=run_train_head)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="athena",
        description="OLMoE on Apple Silicon: mlx first, transformers as the fallback.",
    )
    parser.add_argument("--version", action="version", version=f"athena {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_loader_commands(sub)
    _add_inspect_command(sub)
    _add_doctor_commands(sub)
    _add_train_head_command(sub)
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
