"""One measurement in a fresh interpreter: `python bench/worker.py '<json spec>'`.

The parent (bench/run.py) starts one worker per configuration and repeat, so load time, peak
memory and import state are never shared. The worker prints one line `ATHENA_BENCH_RESULT
{json}` at the end. Tasks (TASKS): `bandwidth` (bench/bandwidth.py), `generate`
(bench/runners.py), `encode` (bench/encode.py), `prepare` (below).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bandwidth import copy_task
from bench.common import RESULT_MARK
from bench.runners import generate


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the float32 checkpoint of a size preset and, if mlx-lm is here, its 8- and 4-bit
    conversions (`mlx_lm.convert`, affine, group size 64). Returns {variant: folder}."""
    from athena.checkpoints import write_tiny_olmoe

    root = Path(spec["out"])
    start = time.perf_counter()
    fp32 = write_tiny_olmoe(root / f"{spec['size']}-fp32", size=spec["size"], seed=0)
    out: dict[str, Any] = {"fp32": str(fp32), "write_s": time.perf_counter() - start}
    try:
        import contextlib
        import io

        from mlx_lm import convert
    except ImportError as error:
        out["convert_skipped"] = f"mlx_lm is not importable ({error})"
        return out
    for bits in spec.get("bits", (8, 4)):
        folder = root / f"{spec['size']}-q{bits}"
        with contextlib.redirect_stdout(io.StringIO()):
            convert(
                str(fp32),
                str(folder),
                quantize=True,
                q_bits=bits,
                q_group_size=64,
                dtype="float32",
            )
        out[f"q{bits}"] = str(folder)
    return out


def encode(spec: dict[str, Any]) -> dict[str, Any]:
    """encode() texts/s per mode, or its peak memory for N texts: see bench/encode.py."""
    from bench import encode as encode_bench

    return encode_bench.worker(spec)


TASKS = {"bandwidth": copy_task, "generate": generate, "prepare": prepare, "encode": encode}


def main() -> None:
    spec = json.loads(sys.argv[1])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = TASKS[spec["task"]](spec)
    print(RESULT_MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
