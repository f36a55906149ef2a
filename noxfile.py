"""Every entry point of athena: `nox -l` lists them; CI only calls nox.

Each session installs from uv.lock (`uv sync --locked`) into its own virtualenv, prints the
versions it runs on, and runs pytest with --strict-markers --strict-config.

`nox` alone (README's test command, and what CI runs) runs every test once:

  tests    on each supported Python: tests/ but tests/env (the loader, the doctor, the heads,
           the CLI), the code whose behaviour can depend on the Python; PIN_ONLY_TESTS (the
           guides in docs/, the benchmarks' runs, the audit mutations, the ring of ranks) on
           the pinned Python only;
  lint     ruff, mypy, import-linter (the floors), and tests/env's checks of CI's own files;
  lock     `uv lock --check` and tests/env/test_lock.py;
  nix      tests/env/test_flake.py;
  verify   the environment acceptance: the four mlx imports, the versions, the CUDA audit,
           verify_env --smoke (the reference numerics), and tests/env/test_python_pin.py
           (its other tests, tests/doctor, are in `tests`).

`tests` runs on every core (pytest-xdist, a test file or a guide to a worker), one thread a
worker. `nox -p 3.12` runs every default session on the pinned Python alone.

tests/env drives uv, nix and nox as commands, so it does not depend on the Python running
pytest: each of its files runs once, in the session ENV_TESTS gives it. `loader` (tests/loader),
`docs` (the guides alone) and `audit` (`athena audit`, which `verify` runs too) are quick entry
points outside the default selection; `bench` and `install` run on request only.
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
# `nox` with no -s: what CI runs (README's test command); see the docstring for who runs what.
nox.options.sessions = ["lint", "lock", "nix", "verify", "tests"]

ROOT = Path(__file__).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IS_MAC = sys.platform == "darwin" and platform.machine() == "arm64"
IS_LINUX = sys.platform.startswith("linux")
PYTEST = ("pytest", "--strict-markers", "--strict-config")
# The test sessions run on every core (pytest-xdist), a test file to a worker: a file's module
# fixtures (a bench run, a model written once) run once. Most of a test's time is CPU-bound
# (a child process importing mlx or torch, a tiny model running), so a worker per core pays.
# The files are handed out in the order tests/conftest.py collects them, those with a `slow`
# test first; xdist's own order (most tests first) left the few-test, minutes-long files (the
# bench smoke runs) to the end, one worker running two of them while the other idled (~45 s
# of the 3.12 session on 2 cores, simulated from measured durations).
PARALLEL = ("-n", "auto", "--dist", "loadfile", "--no-loadscope-reorder")
# ... and each worker (and every child process it starts) on one thread: the workers are the
# parallelism. torch's OpenMP threads on a tiny model only spin: tests/loader took 73 s of CPU
# with them and 44 s without, on 2 cores (OpenBLAS and MKL read the same variable).
# Python writes its bytecode into the session's virtualenv even where the shell says not to
# (PYTHONDONTWRITEBYTECODE=1, as on our CI machines): the suite's child processes import torch,
# transformers and mlx-lm, 14 s from source and 7 s from bytecode on 2 cores (the 3.12 session
# took 325 s with the variable and 237 s without).
# Compiling the whole virtualenv at install instead (`uv sync --compile-bytecode`, 11,924
# files) took 29 s of every session.
TEST_ENV = {"OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": None}
# The one Python of the single-Python sessions (lint, lock, nix, verify, docs): .python-version,
# which pins the flake's Python; `tests` runs on every supported one, so `nox -p 3.12` runs
# every default session on the pinned Python alone. tests/env/test_python_pin.py
# checks that the pin, the flake, these sessions and CI's checks job agree.
PYTHON_PIN = (ROOT / ".python-version").read_text().split()[0]
# tests/env's files, each run once by one default session; `tests` leaves the folder out.
ENV_TESTS = {
    "lint": (
        "tests/env/test_noxfile.py",
        "tests/env/test_workflow.py",
        "tests/env/test_ci_user.py",
    ),
    "lock": ("tests/env/test_lock.py",),
    "nix": ("tests/env/test_flake.py",),
    "verify": ("tests/env/test_python_pin.py",),
}
# What `tests` runs on the pinned Python only, not on each of the three (~3 minutes a Python):
# tests that drive commands rather than Python code (the benchmarks' smoke runs are
# bench/run.py in child processes; the audit mutations run `uv lock` on altered copies; the
# reasons of the others are beside them), and
# the guides, whose code blocks run on the pinned Python as a teammate reads them. The guides
# run among the tests, not in a session of their own: on one worker they left the other idle.
GUIDES = "docs"
PIN_ONLY_TESTS = (
    GUIDES,
    "tests/bench/test_smoke_models.py",
    "tests/bench/test_smoke_encode.py",
    "tests/bench/test_smoke_memory.py",
    "tests/doctor/test_audit_mutations.py",
    # A real ring of ranks (mlx.launch on loopback, ranks killed, stalled and timed out): what
    # it shows is MLX's ring and the OS's process supervision. athena's own part, the status
    # lines, the closing sentence and each rank's settings, runs on every Python in
    # tests/heads/test_launch.py, without processes (the ring: ~115 s of a worker here).
    "tests/heads/test_distributed.py",
    # bench/fit.py measuring a child's peak anonymous memory while mlx loads a model (a
    # benchmark, like the smoke runs): MLX's allocations and the kernel's accounting. The
    # preflight's estimates it is held to are tested on every Python in tests/loader/test_fit.py.
    "tests/bench/test_fit_bench.py",
    # The model lock against a hub server on 127.0.0.1: `athena models lock/sync/verify` and
    # `athena generate` children, downloads cut and resumed, huggingface_hub's cache layout.
    # What they show is the hub protocol and the file system; athena.modellock itself is
    # tomllib, hashlib and huggingface_hub, nothing that differs by Python (~85 s of a worker).
    "tests/loader/test_model_lock.py",
)


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
    every supported Python on PATH and tests/env/test_noxfile.py checks that all were found there.
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
    """The test suite but tests/env, with both backends, on every supported Python found.

    tests/env runs in `lint`, `lock`, `nix` and `verify` (ENV_TESTS), and PIN_ONLY_TESTS (the
    guides among them) on the pinned Python only: neither depends on the Python running pytest.
    """
    sync(session, *BACKEND_GROUPS)
    default = [*PARALLEL, *tests_paths(str(session.python))]
    session.run(*PYTEST, *(session.posargs or default), env=TEST_ENV)


def tests_paths(python: str) -> list[str]:
    """What `tests` runs on `python`: tests/ but tests/env, and PIN_ONLY_TESTS on the pin only."""
    if python == PYTHON_PIN:
        return ["tests", "--ignore=tests/env", GUIDES]
    return ["tests", "--ignore=tests/env", *(f"--ignore={path}" for path in PIN_ONLY_TESTS)]


@nox.session
def loader(session: nox.Session) -> None:
    """The OLMoE loader tests alone (`tests` runs them too): real mlx and transformers + torch.

    On Linux mlx is MLX's CPU build. Not in the default selection, so they run once there.
    """
    sync(session, *BACKEND_GROUPS)
    session.run(*PYTEST, *(session.posargs or [*PARALLEL, "tests/loader"]), env=TEST_ENV)


@nox.session(python=PYTHON_PIN)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check), mypy, import-linter (athena's floors and no import
    circles, pyproject's [tool.importlinter]), and the tests of the noxfile and the CI workflow.

    mypy runs with the backends installed, so it sees their types.
    """
    sync(session, *BACKEND_GROUPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("lint-imports")
    session.run(*PYTEST, *ENV_TESTS["lint"], *session.posargs)


@nox.session(python=PYTHON_PIN)
def lock(session: nox.Session) -> None:
    """uv.lock matches pyproject.toml, for the newest uv and for the flake's older uv."""
    sync(session)
    session.run("uv", "lock", "--check", external=True)
    session.run(*PYTEST, *ENV_TESTS["lock"], *session.posargs)


@nox.session(python=PYTHON_PIN)
def nix(session: nox.Session) -> None:
    """flake.nix evaluates for all three systems (against a stand-in nixpkgs, offline)."""
    sync(session)
    session.run(*PYTEST, *ENV_TESTS["nix"], *session.posargs)


@nox.session(python=PYTHON_PIN)
def verify(session: nox.Session) -> None:
    """The environment health check (#4, #12): the four mlx imports, the CUDA audit,
    verify_env --smoke (reference numerics), and the check that the Python pin agrees.

    From the lock (+ mlx-cpu on Linux), on the pinned Python; it prints the mlx and mlx-lm
    versions too. Its other tests, tests/doctor, run in `tests`, on every Python.
    """
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
    # --smoke: the canonical tiny checkpoint's logits and greedy ids against the reference.
    session.run("python", "scripts/verify_env.py", "--smoke")
    session.run(*PYTEST, *ENV_TESTS["verify"], *session.posargs)


@nox.session
def audit(session: nox.Session) -> None:
    """The CUDA-package audit alone (#4; `verify` runs it too): the lock and this environment."""
    sync(session)
    session.run("athena", "audit")


@nox.session(python=PYTHON_PIN)
def docs(session: nox.Session) -> None:
    """Run every code block of the guides in docs/ (#5), alone; `nox` runs them in `tests`,
    on the pinned Python, beside the rest of the suite."""
    sync(session, *BACKEND_GROUPS)
    # One process: the guides alone take ~30 s, less than a second worker's imports cost.
    session.run(*PYTEST, *(session.posargs or [GUIDES]), env=TEST_ENV)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks (#6): JSON, Markdown, PNG in bench/results/runs/. `-- --quick`: a smoke run."""
    sync(session, *BACKEND_GROUPS)
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONHASHSEED": "0"})
