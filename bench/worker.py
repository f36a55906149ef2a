"""One measurement in a fresh interpreter: `python bench/worker.py '<json spec>'`; it prints one
line `ATHENA_BENCH_RESULT {json}` at the end. Tasks: TASKS.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import encode
from bench.bandwidth import copy_task
from bench.common import RESULT_MARK
from bench.runners import generate


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the float32 checkpoint of a size preset and, if mlx-lm is here, its `bits`
    conversions (`mlx_lm.convert`, affine, group size 64). Returns {variant: folder}."""
    from athena.checkpoints import write_tiny_olmoe

    root, size = Path(spec["out"]), spec["size"]
    start = time.perf_counter()
    fp32 = write_tiny_olmoe(root / f"{size}-fp32", size=size, seed=0)
    out: dict[str, Any] = {"fp32": str(fp32), "write_s": time.perf_counter() - start}
    try:
        from mlx_lm import convert
    except ImportError as error:
        out["convert_skipped"] = f"mlx_lm is not importable ({error})"
        return out
    for bits in spec.get("bits", (8, 4)):
        out[f"q{bits}"] = folder = str(root / f"{size}-q{bits}")
        with contextlib.redirect_stdout(io.StringIO()):
            convert(str(fp32), folder, quantize=True, q_bits=bits, q_group_size=64, dtype="float32")
    return out


TASKS = {"bandwidth": copy_task, "generate": generate, "prepare": prepare, "encode": encode.worker}


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = TASKS[spec["task"]](spec)
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
