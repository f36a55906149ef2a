"""Import cost: `import athena`, `import athena.models.olmoe` vs `import mlx_lm`, each timed in a
fresh interpreter (so nothing is cached in sys.modules), interleaved over repeats.

Target (issue #6): athena <= 1% of mlx_lm. The ratio is taken per repeat (the i-th athena
import over the i-th mlx_lm import), so its spread is the spread of pairs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from bench.common import ROOT, Results, Target

HEAVY = ("mlx", "mlx_lm", "transformers", "torch")
MODULES = ("athena", "athena.models.olmoe", "mlx_lm")

_CHILD = """
import sys, time, json
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"seconds": seconds, "heavy": heavy}}))
"""


def time_import(module: str) -> dict[str, object]:
    """Seconds to import `module` in a fresh interpreter, and which heavy packages it pulled."""
    code = _CHILD.format(module=module, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"import {module} failed: {proc.stderr.strip().splitlines()[-1:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def measure(results: Results, repeats: int, *, warmup: bool = False) -> None:
    print(f"import cost ({repeats} fresh interpreters per module, interleaved)", flush=True)
    present = [m for m in MODULES if _available(m)]
    for m in MODULES:
        if m not in present:
            why = (
                "the loader (#3) is not in this tree yet"
                if m.startswith("athena")
                else ("mlx_lm is not installed (the mlx-cpu group on Linux)")
            )
            results.skip(f"import.{m}", f"import {m}", why, group="import")
    if warmup:  # one untimed import each, so the timed ones read files from a warm page cache
        for m in present:
            time_import(m)
    seconds: dict[str, list[float]] = {m: [] for m in present}
    heavy: dict[str, list[str]] = {}
    for i in range(repeats):
        order = present[i % len(present) :] + present[: i % len(present)]
        for m in order:
            out = time_import(m)
            seconds[m].append(float(out["seconds"]))  # type: ignore[arg-type]
            heavy[m] = list(out["heavy"])  # type: ignore[call-overload]
    for m in present:
        results.add(
            f"import.{m}",
            f"import {m}",
            seconds[m],
            "s",
            group="import",
            context={"heavy_modules_imported": heavy[m], "fresh_process": True},
        )
    if "mlx_lm" not in present:
        return
    target = Target("<=", 0.01, "athena import <= 1% of mlx_lm import")
    for m in present:
        if m == "mlx_lm":
            continue
        ratios = [a / b for a, b in zip(seconds[m], seconds["mlx_lm"], strict=True)]
        results.add(
            f"import.{m}.ratio_to_mlx_lm",
            f"import {m} / import mlx_lm",
            ratios,
            "ratio",
            group="import",
            target=target,
            context={"heavy_modules_imported": heavy[m]},
        )
