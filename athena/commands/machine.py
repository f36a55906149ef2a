"""`athena inspect`, `athena doctor` and `athena audit`: what a model folder and this machine
hold (standard library only until a command runs)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from athena.commands.model import CommandError, one_sentence
from athena.doctor import audit as cuda_audit
from athena.doctor import checks
from athena.doctor.lock import find_project_root, is_project_root
from athena.source import DTYPES

LOAD_OPTIONS = ("backend", "dtype", "quantize_bits", "router_bits", "context")


def add_inspect_command(sub: argparse._SubParsersAction) -> None:
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
    inspect.add_argument("--dtype", choices=DTYPES)
    inspect.add_argument("--quantize-bits", type=int, choices=(4, 8))
    inspect.add_argument(
        "--router-bits",
        type=int,
        choices=(4, 8),
        help="bits of the router (mlp.gate) in the quantized options (default: 8)",
    )
    inspect.add_argument(
        "--context",
        type=_tokens,
        metavar="N",
        help="tokens of context (prompt + generated) the table is for: KV cache and attention "
        "are added to each option (default: the model's max_position_embeddings; 0: the "
        "weights alone)",
    )
    inspect.set_defaults(handler=_inspect_command)


def _tokens(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens (0 or more)")
    return int(text)


def _inspect_command(args: argparse.Namespace) -> int:
    from athena import preflight
    from athena.errors import SourceError
    from athena.host import machine_bandwidth

    with one_sentence(SourceError):
        info = preflight.inspect_model(args.model)
    load = {name: getattr(args, name) for name in LOAD_OPTIONS}  # "this load", as the flags say
    report = preflight.describe(info, **load, bandwidth=machine_bandwidth())
    print(json.dumps(report, indent=2) if args.json else preflight.render(report))
    if report["problems"] and not args.json:
        raise CommandError(report["problems"][0])
    return 0 if report["ok"] else 1


def add_doctor_commands(sub: argparse._SubParsersAction) -> None:
    """`doctor`, `audit` (issue #4)."""
    doctor = sub.add_parser(
        "doctor",
        help="check the environment: system, packages, mlx, memory, the CUDA audit",
        description="What is installed, what works, and what to do (scripts/verify_env.py). "
        "Exit code 0 when every check required on this platform passes.",
    )
    checks.add_arguments(doctor)

    def run_doctor(args: argparse.Namespace) -> int:
        if problem := checks.usage_problem(args):
            raise CommandError(problem)
        return checks.run(args)

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
        if args.project is not None and not is_project_root(args.project):
            raise CommandError(
                f"{args.project} has no pyproject.toml and uv.lock: pass the project's folder"
            )
        root = args.project.resolve() if args.project else find_project_root()
        results = cuda_audit.run_audit(
            root, lock=not args.installed_only, installed=not args.lock_only
        )
        report = cuda_audit.audit_report(results)
        print(json.dumps(report, indent=2) if args.json else cuda_audit.render_audit(results))
        return 0 if all(result.ok for result in results) else 1

    audit.set_defaults(handler=run_audit)
