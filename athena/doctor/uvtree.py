"""`uv tree` for the CUDA audit (audit.py): the platform views of uv.lock it checks, running
uv for one, parsing its text, and the chains of `uv tree --invert`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from athena.doctor.lock import FIXES
from athena.doctor.names import normalize
from athena.doctor.report import shareable, shown

# Groups allowed to pull CUDA on Linux: PyPI's Linux torch wheel depends on nvidia-* and triton.
LINUX_CUDA_GROUPS = ("torch",)


@dataclass(frozen=True)
class Target:
    """One platform view of uv.lock."""

    name: str  # darwin-arm64, linux-x86_64
    python_platform: str  # uv's --python-platform
    group_args: tuple[str, ...]  # which dependency groups uv includes
    scope: str  # said in the report


TARGETS = (
    Target("darwin-arm64", "aarch64-apple-darwin", ("--all-groups",), "every group and extra"),
    Target(
        "linux-x86_64",
        "x86_64-unknown-linux-gnu",
        ("--all-groups", *(f"--no-group={group}" for group in LINUX_CUDA_GROUPS)),
        "every group but torch, and every extra: the opt-in torch group is left out because "
        "PyPI's Linux torch is a CUDA build (nvidia-*, triton) by design",
    ),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}


@dataclass(frozen=True)
class TreeLine:
    depth: int
    name: str
    version: str | None
    annotation: str  # "(group: torch)", "(extra: gpu)", "(*)", ...
    extras: str = ""  # "[cpu]" in "mlx[cpu] v0.32.4"

    def label(self) -> str:
        text = self.name + self.extras + (f" {self.version}" if self.version else "")
        return f"{text} {self.annotation}".strip()


_TREE_ENTRY = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?(?: v(?P<version>\S+))?"
    r"(?P<rest>.*)$"
)


def parse_tree(text: str) -> list[TreeLine]:
    """`uv tree`'s text output: one entry per line, four characters of indent per level."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.lstrip("│├└─ \u00a0")
        match = _TREE_ENTRY.match(stripped)
        if not stripped or not match:
            continue
        depth = (len(raw) - len(stripped)) // 4
        name, rest = normalize(match["name"]), match["rest"].strip()
        lines.append(TreeLine(depth, name, match["version"], rest, match["extras"] or ""))
    return lines


def uv_executable() -> str | None:
    """The uv that runs this (`uv run` sets $UV), else the one on PATH (seen through a pyenv
    shim, see `pyenv_uv`)."""
    candidate = os.environ.get("UV")
    if candidate and Path(candidate).is_file():
        return candidate
    found = shutil.which("uv")
    if found and Path(found).parent.name == "shims" and "pyenv" in found:
        return pyenv_uv() or found
    return found


def pyenv_uv() -> str | None:
    """The real uv behind pyenv's shim. The shim follows the checkout's .python-version: with
    the pin it looks for uv in the pinned Python, and a uv that pip installed into another
    pyenv Python is not there ("pyenv: uv: command not found"). pyenv's global version, asked
    from outside the checkout, is where `pip install uv` put it."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return None
    env = {k: v for k, v in os.environ.items() if k != "PYENV_VERSION"}
    try:
        completed = subprocess.run(
            [pyenv, "which", "uv"], cwd=Path.home(), env=env, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    path = completed.stdout.strip()
    return path if completed.returncode == 0 and Path(path).is_file() else None


class UvError(Exception):
    """uv is missing or refused to show the tree (one sentence, for the report)."""


def run_uv_tree(root: Path, target: Target, *extra: str, uv: str | None = None) -> str:
    uv = uv or uv_executable()
    if uv is None:
        raise UvError("uv is not on PATH; install uv (https://docs.astral.sh/uv/) to audit uv.lock")
    command = [uv, "tree", "--locked", "--offline", "--no-progress", "--color", "never"]
    command += ["--python-platform", target.python_platform, *target.group_args, *extra]
    # without credentials (it works offline), so that its messages cannot repeat them
    shared = {name: shareable(name, value) for name, value in os.environ.items()}
    env = {name: value for name, value in shared.items() if value is not None}
    try:
        completed = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise UvError(f"`{' '.join(command[:2])}` could not run: {error}") from error
    if "Failed to parse `uv.lock`" in completed.stderr:
        cause = completed.stderr.partition("cause:")[2].strip().splitlines()[:1] or ["?"]
        raise UvError(f"uv cannot parse {root / 'uv.lock'} ({shown(cause[0])}): {FIXES['uv.lock']}")
    if completed.returncode != 0:
        detail = " ".join(line.strip() for line in completed.stderr.strip().splitlines()[-3:])
        raise UvError(f"`uv tree --locked` failed in {root}: {detail}")
    return completed.stdout


def chains_from_inverted(lines: Sequence[TreeLine]) -> list[list[str]]:
    """Every root-to-leaf path of `uv tree --invert`, reversed: project first, offender last."""
    chains: list[list[str]] = []
    path: list[TreeLine] = []
    for index, line in enumerate(lines):
        del path[line.depth :]
        path.append(line)
        next_depth = lines[index + 1].depth if index + 1 < len(lines) else 0
        if next_depth <= line.depth and len(path) > 1:
            chains.append([entry.label() for entry in reversed(path)])
    chains.sort(key=len)
    return chains
