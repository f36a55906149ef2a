"""Fixtures for the environment tests: real uv and nix commands on copies of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; skipped where it is missing, but a failure in CI (.ci/run installs it)."""
    # The running interpreter's bin folder first: the venv's tools without activating it.
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if path and name in ("uv", "uvx") and Path(path).parent.name == "shims":
        from athena.doctor.audit import pyenv_uv

        # pyenv's shim follows .python-version's pin to a Python that may not have uv.
        real = pyenv_uv()
        path = str(Path(real).with_name(name)) if real else path
    if path:
        return path
    message = f"`{name}` is not on PATH ({install_hint})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must install it")
    pytest.skip(message)


def run(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None, stderr: bool = False
) -> str:
    """Run a command, return its stdout (and stderr after it, with `stderr=True`).

    On failure the assertion shows both.
    """
    result = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600
    )
    assert result.returncode == 0, (
        f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout + (result.stderr if stderr else "")
