"""The model lock's cost at a load (#29): the first load of a locked model hashes every file
(sparse, so sha256's throughput on this CPU), a later one only stats them.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from athena import modellock
from bench.common import Results

SHARDS = 6
SHARD_BYTES = 2_300_000_000


def measure(results: Results, work: Path, *, quick: bool) -> None:
    shard_bytes = 8 * 2**20 if quick else SHARD_BYTES
    project = work / "model-lock"
    folder = project / "olmoe"
    folder.mkdir(parents=True)
    (project / "pyproject.toml").write_text('[tool.athena.models]\n"olmoe" = { path = "olmoe" }\n')
    for shard in range(1, SHARDS + 1):
        with (folder / f"model-{shard:05d}-of-{SHARDS:05d}.safetensors").open("wb") as f:
            f.truncate(shard_bytes)
    cache = os.environ.get("HF_HUB_CACHE")
    os.environ["HF_HUB_CACHE"] = str(work / "hf-cache")  # where the verified state is kept
    try:
        first, later = _first_and_later(project, repeats=1 if quick else 2)
    finally:
        os.environ.pop("HF_HUB_CACHE")
        if cache is not None:
            os.environ["HF_HUB_CACHE"] = cache
    total = SHARDS * shard_bytes
    context = {"what": f"{SHARDS} sparse shards, {total / 1e9:.2f} GB", "bytes": total}
    label = f"model lock, first load: hash {total / 1e9:.2f} GB"
    results.add("files.model_lock_first", label, first, "s", None, context)
    label = "model lock, later load: stat the remembered files"
    results.add("files.model_lock_later", label, later, "s", None, context)
    rate = [total / 1e9 / min(first)]
    results.add("files.model_lock_hash_rate", "sha256 throughput", rate, "GB/s")


def _first_and_later(project: Path, *, repeats: int) -> tuple[list[float], list[float]]:
    modellock.lock(project)  # hashes once to write the lock; lock keeps no state
    first: list[float] = []
    later: list[float] = []
    for _ in range(repeats):
        modellock.state_file().unlink(missing_ok=True)
        for times in (first, later):
            started = time.perf_counter()
            problems = modellock.verify(project)
            times.append(time.perf_counter() - started)
            if problems:
                raise RuntimeError(problems[0])
    return first, later
