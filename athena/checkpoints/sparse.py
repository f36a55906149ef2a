"""OLMoE folders of a real model's shape whose weights take no disk (sparse files), for the
checks that read headers only (athena.preflight)."""

from __future__ import annotations

import math
from pathlib import Path

from athena.atomic import replacing, write_file
from athena.checkpoints.presets import KNOBS, olmoe_config
from athena.checkpoints.tokenizer import json_bytes, tokenizer_files
from athena.checkpoints.weights import safetensors_header, tensor_shapes

# OLMoE-1B-7B-0924's shape (6.92 B parameters; 27.7 GB in float32, 13.8 GB in bfloat16).
OLMOE_1B_7B: dict[str, int] = {
    "vocab_size": 50304,
    **dict(zip(KNOBS, (2048, 1024, 16, 16, 16, 64, 8), strict=True)),
}


def write_sparse_olmoe(
    out_dir: str | Path,
    shape: dict[str, int] | None = None,
    *,
    dtype: str = "float32",
    shards: int = 1,
) -> Path:
    """A valid OLMoE folder of any shape (default: OLMoE-1B-7B's) whose weights are sparse files
    (zeros, no disk); `shards` > 1 splits them into that many files with an index, as the hub."""
    shape = OLMOE_1B_7B if shape is None else shape
    config = {**olmoe_config("tiny", dtype=dtype), **shape}
    if shards < 1:
        raise ValueError(f"shards={shards!r}: it must be 1 or more")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_file(out / "config.json", json_bytes(config))
    itemsize = 4 if dtype == "float32" else 2
    tensors = [
        (name, dims, itemsize * math.prod(dims))
        for name, dims in sorted(tensor_shapes(shape, shape["vocab_size"]).items())
    ]
    total = sum(nbytes for _, _, nbytes in tensors)
    groups: list[list[tuple[str, tuple[int, ...], int]]] = [[] for _ in range(shards)]
    done = 0
    for tensor in tensors:  # the k-th shard takes the tensors that start in its k-th share
        groups[min(shards - 1, done * shards // total)].append(tensor)
        done += tensor[2]
    groups = [group for group in groups if group]
    count, weight_map = len(groups), dict[str, str]()
    for number, group in enumerate(groups, start=1):
        file = (
            "model.safetensors" if count == 1 else f"model-{number:05d}-of-{count:05d}.safetensors"
        )
        with replacing(out / file) as temporary, temporary.open("wb") as f:
            f.write(safetensors_header(group, dtype))
            f.truncate(f.tell() + sum(size for _, _, size in group))  # sparse: zeros, no disk
        weight_map |= {name: file for name, _, _ in group}
    if count > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        write_file(out / "model.safetensors.index.json", json_bytes(index))
    for name, content in tokenizer_files().items():
        write_file(out / name, content)
    return out
