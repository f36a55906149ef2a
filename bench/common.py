"""What every measurement shares: summary statistics, figures with targets, fresh subprocesses.

A figure's `passed` is reported (True, False, or None without a target): benchmarks never assert.
"""

from __future__ import annotations

import importlib.util
import json
import operator
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "bench" / "worker.py"
RESULT_MARK = "ATHENA_BENCH_RESULT "
MiB = 1 << 20
COMPARE = {"<=": operator.le, ">=": operator.ge}


@dataclass
class Target:
    """`value op threshold`, e.g. ratio <= 0.01; `text` says it as the issue does."""

    op: str
    threshold: float
    text: str

    def judge(self, value: float) -> bool:
        return bool(COMPARE[self.op](value, self.threshold))


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """median, min, max, q1, q3, iqr and n of `values` (at least one value)."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("summarize() needs at least one value")
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 2 else xs * 3
    stats = {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3}
    return {**stats, "iqr": q3 - q1, "n": len(xs)}


@dataclass
class Results:
    """The figures and skips of one run, in the order they were measured."""

    figures: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        fid: str,
        label: str,
        values: Sequence[float],
        unit: str,
        target: Target | None = None,
        context: dict[str, Any] | None = None,
        *,
        group: str | None = None,
    ) -> dict[str, Any]:
        """Record a figure over `values` (one per repeat); judge its median against `target`.
        Its group is the id's first part unless `group` says otherwise."""
        stats = summarize(values)
        figure: dict[str, Any] = {
            "id": fid,
            "group": group or fid.split(".")[0],
            "label": label,
            "unit": unit,
            **stats,
            "values": [float(v) for v in values],
            "target": None,
            "passed": None,
            "context": context or {},
        }
        if target is not None:
            figure["target"] = {"op": target.op, "threshold": target.threshold, "text": target.text}
            figure["passed"] = target.judge(stats["median"])
        self.figures.append(figure)
        status = "" if target is None else ("  [met]" if figure["passed"] else "  [NOT met]")
        print(f"  {label}: {stats['median']:.4g} {unit} (n={stats['n']}){status}", flush=True)
        return figure

    def skip(self, fid: str, label: str, reason: str, *, group: str | None = None) -> None:
        """Record a figure that was not measured in this run, and why (group: as `add`)."""
        group = group or fid.split(".")[0]
        self.skipped.append({"id": fid, "group": group, "label": label, "reason": reason})
        print(f"  {label}: skipped ({reason})", flush=True)

    def get(self, fid: str) -> dict[str, Any] | None:
        return next((f for f in self.figures if f["id"] == fid), None)


def importable(*modules: str) -> bool:
    """Whether every one of `modules` can be imported here (found, not imported)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


def backend_importable(backend: str) -> bool:
    """mlx + mlx-lm for "mlx", torch + transformers otherwise."""
    return importable(*(("mlx", "mlx_lm") if backend == "mlx" else ("torch", "transformers")))


def worker_env() -> dict[str, str]:
    """A measured child's environment: fixed hash seed, no tokenizer threads, no hub."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


class WorkerError(RuntimeError):
    """A measurement subprocess failed; the message carries the tail of its stderr."""


def child_result(what: str, returncode: int | None, stdout: str, stderr: str) -> dict[str, Any]:
    """The JSON a child printed after RESULT_MARK; WorkerError with its stderr's tail if none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK) and returncode == 0:
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise WorkerError(f"{what} exited {returncode}: {tail(stderr, 6)}")


def run_worker(
    spec: dict[str, Any], *, timeout: float = 900.0, script: Path = WORKER
) -> dict[str, Any]:
    """Run `script` (default bench/worker.py) on `spec` in a fresh interpreter; its result."""
    cmd = [sys.executable, str(script), json.dumps(spec)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=worker_env()
    )
    return child_result(f"worker {spec.get('task')}", proc.returncode, proc.stdout, proc.stderr)


def timed_command(
    cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run a command; return (wall seconds, completed process). Never raises on exit code."""
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), capture_output=True, text=True, cwd=cwd, env=env, timeout=1800)
    return time.perf_counter() - start, proc


def tail(text: str, lines: int = 4) -> str:
    """The last `lines` non-empty lines of `text`, joined by ' | ' (for skip reasons)."""
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


# --- in a worker process ------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """RssAnon, RssFile, VmHWM, VmRSS (bytes) of a process from /proc (Linux); {} elsewhere."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("RssAnon", "RssFile", "VmHWM", "VmRSS"):
                    values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return values


def peak_rss() -> tuple[int, str]:
    """(bytes, method): this process's peak RSS so far (bench/README.md, "memory", says why
    VmHWM on Linux and not ru_maxrss)."""
    if "VmHWM" in (status := proc_status()):
        return status["VmHWM"], "VmHWM of the measured process (/proc/self/status, Linux)"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        return int(peak), "ru_maxrss of the measured process, a fresh interpreter (macOS)"
    return int(peak) * 1024, "ru_maxrss (may include the parent's peak: no /proc here)"


def rss_bytes() -> int:
    """The current resident set size (psutil, a dev dependency)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def mx_memory(what: str) -> int | None:
    """mlx's "peak" or "active" memory (bytes), None when mlx is not imported here."""
    if "mlx.core" not in sys.modules:
        return None
    import mlx.core as mx

    return int(mx.get_peak_memory() if what == "peak" else mx.get_active_memory())


def reset_mx_peak() -> None:
    if "mlx.core" in sys.modules:
        import mlx.core as mx

        mx.reset_peak_memory()


def torch_device() -> str:
    """The device raw transformers runs on here: MPS on an Apple Silicon Mac, else CPU."""
    import torch

    return "mps" if torch.backends.mps.is_available() else "cpu"


def load_spec_model(spec: dict[str, Any]) -> tuple[Any, float]:
    """(loaded OLMoEModel, seconds) for a bench child's spec (model, backend, dtype,
    quantize_bits): one backend, no fallback; RuntimeError with load()'s sentence otherwise."""
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    config = OLMoEConfig(
        model_name=spec["model"],
        use_mlx=spec["backend"] == "mlx",
        allow_fallback=False,
        dtype=spec["dtype"],
        quantize_bits=spec["quantize_bits"],
    )
    model = OLMoEModel(config)
    start = time.perf_counter()
    if not model.load():
        raise RuntimeError(f"load() returned False: {model.load_error}")
    return model, time.perf_counter() - start
