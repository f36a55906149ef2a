"""Every entry point of athena: `nox -l` lists them; CI only calls nox.

Each session installs from uv.lock (`uv sync --locked`) into its own virtualenv, prints the
versions it runs on, and runs pytest with --strict-markers --strict-config.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

nox.needs_version = ">=2025.5.1"
nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
# `nox` with no -s: what CI runs (README's test command). `bench` is run on request only.
nox.options.sessions = ["lint", "lock", "nix", "verify", "audit", "docs", "loader", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IS_MAC = sys.platform == "darwin" and platform.machine() == "arm64"
IS_LINUX = sys.platform.startswith("linux")
PYTEST = ("pytest", "--strict-markers", "--strict-config")


def _supported_pythons() -> list[str]:
    """The Python versions pyproject's classifiers name, e.g. ['3.11', '3.12', '3.13']."""
    prefix = "Programming Language :: Python :: 3."
    return [
        c.removeprefix("Programming Language :: Python :: ")
        for c in PYPROJECT["project"]["classifiers"]
        if c.startswith(prefix)
    ]


def _pythons_found() -> list[str]:
    """The supported Pythons that are on PATH here (the matrix of `tests`).

    nox fails on a missing interpreter in CI, so the matrix is what this machine has; CI puts
    every supported Python on PATH and tests/test_noxfile.py checks that all were found there.
    """
    found = [v for v in _supported_pythons() if _runs(f"python{v}")]
    return found or [f"{sys.version_info.major}.{sys.version_info.minor}"]


def _runs(command: str) -> bool:
    """True if `command` is on PATH and starts (pyenv's shims exist but fail when inactive)."""
    path = shutil.which(command)
    if path is None:
        return False
    result = subprocess.run([path, "-c", ""], capture_output=True, check=False, timeout=30)
    return result.returncode == 0


PYTHONS = _pythons_found()
# The groups that run the real backends: torch everywhere; MLX's CPU build on Linux (on a Mac
# mlx and mlx-lm are main dependencies).
BACKEND_GROUPS = ("torch", "mlx-cpu")


def sync(session: nox.Session, *groups: str) -> None:
    """Install the locked environment (the project, dev, and `groups`) into the session's venv."""
    venv = session.virtualenv.location
    args = ["uv", "sync", "--locked", "--python", f"{venv}/bin/python"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        env={"UV_PROJECT_ENVIRONMENT": venv},
        external=True,
    )
    session.run("python", "-m", "athena.versions", silent=False)


@nox.session(venv_backend="none")
def install(session: nox.Session) -> None:
    """Sync the project's own .venv from the lock (what `nix develop` and `uv sync` do)."""
    groups = ("--group", "mlx-cpu") if IS_LINUX else ()
    session.run("uv", "sync", "--locked", *groups, external=True)
    session.run(".venv/bin/python", "-m", "athena.versions", external=True)


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The full test suite, with both backends, on every supported Python found."""
    sync(session, *BACKEND_GROUPS)
    session.run(*PYTEST, *(session.posargs or ["tests"]))


@nox.session
def loader(session: nox.Session) -> None:
    """The OLMoE loader tests: real mlx (CPU build on Linux) and real transformers + torch."""
    sync(session, *BACKEND_GROUPS)
    session.run(*PYTEST, *(session.posargs or ["tests/loader"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy (with the backends installed, so it sees their types)."""
    sync(session, *BACKEND_GROUPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def lock(session: nox.Session) -> None:
    """uv.lock matches pyproject.toml, for the newest uv and for the flake's older uv."""
    sync(session)
    session.run("uv", "lock", "--check", external=True)
    session.run(*PYTEST, "tests/env/test_lock.py", *session.posargs)


@nox.session
def nix(session: nox.Session) -> None:
    """flake.nix evaluates for all three systems (against a stand-in nixpkgs, offline)."""
    sync(session)
    session.run(*PYTEST, "tests/env/test_flake.py", *session.posargs)


@nox.session
def verify(session: nox.Session) -> None:
    """The environment health check (#4): from the lock (+ mlx-cpu on Linux), the four mlx
    imports, the mlx and mlx-lm versions, the CUDA audit, verify_env, then tests/doctor."""
    sync(session, "mlx-cpu")
    if IS_MAC or IS_LINUX:
        for statement in (
            "import mlx",
            "import mlx.core",
            "import mlx_lm",
            "from mlx_lm import load, generate",
        ):
            session.run("python", "-c", statement)
        versions = "from importlib.metadata import version as v; print('mlx', v('mlx'))"
        session.run("python", "-c", versions + "; print('mlx-lm', v('mlx-lm'))")
    else:
        session.log("mlx imports skipped: mlx runs on Apple Silicon Macs and on Linux (mlx-cpu)")
    session.run("athena", "audit")
    session.run("python", "scripts/verify_env.py")
    session.run(*PYTEST, *(session.posargs or ["tests/doctor"]))


@nox.session
def audit(session: nox.Session) -> None:
    """The CUDA-package audit (#4): the lock per platform and the installed environment."""
    sync(session)
    session.run("athena", "audit")


@nox.session
def docs(session: nox.Session) -> None:
    """Run every code block of the guides in docs/ (#5)."""
    sync(session, *BACKEND_GROUPS)
    session.run(*PYTEST, *(session.posargs or ["docs"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (#6): JSON + Markdown + PNG under bench/results/. `-- --quick` for a smoke run."""
    sync(session, *BACKEND_GROUPS)
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONHASHSEED": "0"})
