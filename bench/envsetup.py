"""Environment set-up: how fast the locked environment is reproduced (uv sync, pip, nox; what
each runs: bench/README.md, "env"). Nothing here touches the repo's .venv or .nox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, Results, tail, timed_command

LABELS = {
    "env.uv_sync_fresh": "uv sync --locked, fresh venv",
    "env.uv_sync_noop": "uv sync --locked, no-op",
    "env.pip_install": "python -m venv + pip install -r (uv export)",
    "env.nox_verify_reused": "nox -s verify, reused env",
}


def _skip(results: Results, fid: str, reason: str) -> None:
    results.skip(fid, LABELS[fid], reason)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the venv/nox variables of an enclosing session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME", "CONDA_PREFIX")
    }
    env.update(extra)
    return env


def base_python() -> str:
    """The interpreter this venv was made from (what `python -m venv` and `uv --python` use)."""
    return str(getattr(sys, "_base_executable", sys.executable))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _pip_cache_dir() -> Path | None:
    found = _version([base_python(), "-m", "pip", "cache", "dir"])
    return Path(found) if found else None


def measure(results: Results, work: Path, *, quick: bool) -> None:
    uv = shutil.which("uv")
    print("environment set-up", flush=True)
    if uv is None:
        for fid in ("env.uv_sync_fresh", "env.uv_sync_noop", "env.pip_install"):
            _skip(results, fid, "uv is not on PATH")
    else:
        _uv_sync(results, uv, work, repeats=1 if quick else 3)
    if quick:
        _skip(results, "env.pip_install", "--quick: pip takes minutes; run without --quick")
        reason = "--quick: the first (untimed) nox run builds a venv; run without --quick"
        _skip(results, "env.nox_verify_reused", reason)
        return
    if uv is not None:
        _pip(results, uv, work, repeats=2)
    _nox_verify(results, work, repeats=3)


def _uv_sync(results: Results, uv: str, work: Path, repeats: int) -> None:
    fresh: list[float] = []
    noop: list[float] = []
    packages = None
    for _ in range(repeats):
        venv = Path(tempfile.mkdtemp(dir=work, prefix="uv-venv-")) / "venv"
        env = _clean_env(UV_PROJECT_ENVIRONMENT=str(venv))
        cmd = [uv, "sync", "--locked", "--python", base_python()]
        seconds, proc = timed_command(cmd, cwd=ROOT, env=env)
        if proc.returncode != 0:
            _skip(results, "env.uv_sync_fresh", f"uv sync failed: {tail(proc.stderr)}")
            return
        fresh.append(seconds)
        packages = sum(1 for _ in (venv / "lib").glob("python3*/site-packages/*.dist-info"))
        for _ in range(2):
            seconds, proc = timed_command(cmd, cwd=ROOT, env=env)
            if proc.returncode == 0:
                noop.append(seconds)
        shutil.rmtree(venv.parent, ignore_errors=True)
    context = {
        "command": "UV_PROJECT_ENVIRONMENT=<fresh tmp> uv sync --locked (default groups)",
        "packages_installed": packages,
        "cache": "warm (uv's cache already holds the locked wheels)",
        "uv_version": _version([uv, "--version"]),
    }
    results.add("env.uv_sync_fresh", LABELS["env.uv_sync_fresh"], fresh, "s", None, context)
    context = {**context, "command": "uv sync --locked again on the synced venv"}
    results.add("env.uv_sync_noop", LABELS["env.uv_sync_noop"], noop, "s", None, context)


def _pip(results: Results, uv: str, work: Path, repeats: int) -> None:
    reqs = work / "requirements.txt"
    export_s, proc = timed_command(
        [uv, "export", "--locked", "--no-hashes", "--format", "requirements-txt", "-o", str(reqs)],
        cwd=ROOT,
        env=_clean_env(),
    )
    if proc.returncode != 0:
        _skip(results, "env.pip_install", f"uv export failed: {tail(proc.stderr)}")
        return
    cache = _pip_cache_dir()
    totals: list[float] = []
    cache_before: list[int | None] = []
    for _ in range(repeats):
        venv = Path(tempfile.mkdtemp(dir=work, prefix="pip-venv-")) / "venv"
        cache_before.append(_dir_bytes(cache) if cache and cache.exists() else None)
        venv_s, proc = timed_command([base_python(), "-m", "venv", str(venv)], env=_clean_env())
        if proc.returncode != 0:
            _skip(results, "env.pip_install", f"venv: {tail(proc.stderr)}")
            return
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
        pip_s, proc = timed_command([*pip, "-q", "-r", str(reqs)], cwd=ROOT, env=_clean_env())
        shutil.rmtree(venv.parent, ignore_errors=True)
        if proc.returncode != 0:
            _skip(results, "env.pip_install", f"pip failed: {tail(proc.stderr)}")
            return
        totals.append(venv_s + pip_s)
    ctx: dict[str, Any] = {
        "command": "uv export --locked --no-hashes; python -m venv; pip install -r"
    }
    ctx.update(export_s=export_s, pip_cache_bytes_before_each=cache_before)
    ctx["pip_version"] = _version([base_python(), "-m", "pip", "--version"])
    ctx["note"] = "the first repeat may fill pip's cache; its bytes before each repeat are "
    ctx["note"] += "in pip_cache_bytes_before_each"
    results.add("env.pip_install", LABELS["env.pip_install"], totals, "s", None, ctx)
    if (fresh := results.get("env.uv_sync_fresh")) is not None:
        ratios = [t / fresh["median"] for t in totals]
        ctx = {"note": "each pip repeat over the median fresh uv sync"}
        results.add(
            "env.pip_over_uv", "pip install time / uv sync time", ratios, "ratio", None, ctx
        )


def _nox_verify(results: Results, work: Path, repeats: int) -> None:
    envdir = work / "nox-envs"
    cmd = [sys.executable, "-m", "nox", "-s", "verify", "--envdir", str(envdir)]
    seconds = []
    for _ in range(repeats + 1):  # the first run builds the env: untimed
        s, proc = timed_command(cmd, cwd=ROOT, env=_clean_env())
        if proc.returncode != 0:
            reason = f"nox -s verify failed (exit {proc.returncode}): {tail(proc.stderr, 2)}"
            _skip(results, "env.nox_verify_reused", reason)
            return
        seconds.append(s)
    first_s = seconds.pop(0)
    ctx: dict[str, Any] = {
        "command": "nox -s verify --envdir <tmp> (reuse_venv=yes: uv sync is a no-op)"
    }
    ctx["first_run_s"] = first_s
    results.add("env.nox_verify_reused", LABELS["env.nox_verify_reused"], seconds, "s", None, ctx)
    shutil.rmtree(envdir, ignore_errors=True)


def _version(cmd: list[str]) -> str | None:
    """What `cmd` prints on success (a version, a folder), None otherwise."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (proc.returncode == 0 and proc.stdout.strip()) or None
