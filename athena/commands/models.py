"""`athena models lock | sync | verify`: the project's models pinned by commit and hash, as
`uv lock` and `uv sync` pin its packages (athena.modellock)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from athena.commands.common import CommandError


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
    try:
        if args.action == "lock" and not args.check:
            models = modellock.lock(project, upgrade=args.upgrade)
            print(f"locked {len(models)} model(s) in {project / modellock.LOCK_FILE}")
            return 0
        if args.action == "lock":
            problems = modellock.lock_problems(project)
        elif args.action == "sync":
            problems = modellock.sync(project)
        else:
            problems = modellock.verify(project)
    except SourceError as error:
        raise CommandError(str(error)) from None
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems and not modellock.declared(project):
        print(f"no model in [tool.athena.models] of {project / 'pyproject.toml'}: nothing locked")
    elif not problems:
        print(f"{project / modellock.LOCK_FILE}: every model as locked")
    return 1 if problems else 0
