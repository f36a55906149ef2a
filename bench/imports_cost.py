"""Import cost: `import athena`, `import athena.models.olmoe` vs `import mlx_lm`, each in a fresh
interpreter under `python -X importtime`, interleaved; ratios per repeat (bench/README.md).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from bench.common import ROOT, Results, Target

HEAVY = ("mlx", "mlx_lm", "transformers", "torch")
MODULES = ("athena", "athena.models.olmoe", "mlx_lm")


def time_import(module: str) -> tuple[float, list[str]]:
    """(seconds to import `module` in a fresh interpreter, the heavy packages it pulled in)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    # Lines `import time: self [us] | cumulative | name`, nested imports indented under it.
    rows = [line.split("|") for line in proc.stderr.splitlines() if line.startswith("import time:")]
    top = [int(row[1]) for row in rows[1:] if row[2].rstrip() == f" {module}"]
    if proc.returncode != 0 or not top:
        raise RuntimeError(f"import {module} failed: {proc.stderr.strip().splitlines()[-1:]}")
    heavy = sorted({row[2].strip().split(".")[0] for row in rows[1:]} & set(HEAVY))
    return top[-1] / 1e6, heavy


def measure(results: Results, repeats: int, *, warmup: bool = False) -> None:
    print(f"import cost ({repeats} fresh interpreters per module, interleaved)", flush=True)
    present = [m for m in MODULES if importlib.util.find_spec(m.split(".")[0]) is not None]
    if "mlx_lm" not in present:
        reason = "mlx_lm is not installed (the mlx-cpu group on Linux)"
        results.skip("import.mlx_lm", "import mlx_lm", reason)
    if warmup:  # one untimed import each, so the timed ones read files from a warm page cache
        for m in present:
            time_import(m)
    seconds: dict[str, list[float]] = {m: [] for m in present}
    heavy: dict[str, list[str]] = {}
    for i in range(repeats):
        for m in present[i % len(present) :] + present[: i % len(present)]:
            took, heavy[m] = time_import(m)
            seconds[m].append(took)
    for m in present:
        context = {"heavy_modules_imported": heavy[m], "fresh_process": True}
        results.add(f"import.{m}", f"import {m}", seconds[m], "s", None, context)
    if "mlx_lm" not in present:
        return
    target = Target("<=", 0.01, "athena import <= 1% of mlx_lm import")
    for m in present[:-1]:
        ratios = [a / b for a, b in zip(seconds[m], seconds["mlx_lm"], strict=True)]
        ctx = {"heavy_modules_imported": heavy[m]}
        results.add(
            f"import.{m}.ratio_to_mlx_lm",
            f"import {m} / import mlx_lm",
            ratios,
            "ratio",
            target,
            ctx,
        )
