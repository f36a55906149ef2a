"""The tiny checkpoints' weights: drawn deterministically, written as safetensors by hand
(numpy has no bfloat16)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from athena.checkpoints.tokenizer import SPECIAL_TOKENS, VOCAB_SIZE

SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
# The gain of a Linear's init by the end of its name (1 for the rest).
GAINS = {
    "o_proj.weight": 0.5,
    "down_proj.weight": 0.5,
    "mlp.gate.weight": 2.0,
    "lm_head.weight": 3.0,
}


def tensor_shapes(shape: dict[str, int], vocab: int) -> dict[str, tuple[int, ...]]:
    """Hugging Face names and shapes of an OLMoE's tensors, in the order `make_weights` draws."""
    h, i = shape["hidden_size"], shape["intermediate_size"]
    kv = shape["num_key_value_heads"] * (h // shape["num_attention_heads"])
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, h)}
    for layer in range(shape["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        shapes |= {
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.post_attention_layernorm.weight": (h,),
            f"{p}.self_attn.q_proj.weight": (h, h),
            f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h),
            f"{p}.self_attn.o_proj.weight": (h, h),
            f"{p}.self_attn.q_norm.weight": (h,),
            f"{p}.self_attn.k_norm.weight": (kv,),
            f"{p}.mlp.gate.weight": (shape["num_experts"], h),
        }
        for expert in range(shape["num_experts"]):
            e = f"{p}.mlp.experts.{expert}"
            shapes |= {
                f"{e}.gate_proj.weight": (i, h),
                f"{e}.up_proj.weight": (i, h),
                f"{e}.down_proj.weight": (h, i),
            }
    return shapes | {"model.norm.weight": (h,), "lm_head.weight": (vocab, h)}


def make_weights(preset: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """HF-named float32 weights, drawn in a fixed order from `rng`."""
    w: dict[str, np.ndarray] = {}
    for name, dims in tensor_shapes(preset, VOCAB_SIZE).items():
        if name == "model.embed_tokens.weight":
            w[name] = rng.standard_normal(dims).astype(np.float32)
        elif len(dims) == 1:  # a norm
            w[name] = (1.0 + 0.1 * rng.standard_normal(dims[0])).astype(np.float32)
        else:
            gain = next((g for end, g in GAINS.items() if name.endswith(end)), 1.0)
            std = gain / np.sqrt(dims[1])
            w[name] = (rng.standard_normal(dims) * std).astype(np.float32)
    lm_head = w["lm_head.weight"]
    # Damp the rows of non-printable bytes and specials so that greedy text is mostly
    # printable ASCII (readable gibberish in guides) rather than broken UTF-8. The merged
    # tokens (ids after the bytes) are all printable: the corpus is ASCII.
    printable = np.zeros(VOCAB_SIZE, dtype=bool)
    printable[len(SPECIAL_TOKENS) + 0x20 : len(SPECIAL_TOKENS) + 0x7F] = True
    printable[len(SPECIAL_TOKENS) + 256 :] = True
    lm_head[~printable] *= 0.25
    return w


def to_bfloat16_bytes(array: np.ndarray) -> bytes:
    """float32 -> bfloat16 (round to nearest even), as little-endian bytes."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def safetensors_header(tensors: list[tuple[str, tuple[int, ...], int]], dtype: str) -> bytes:
    """The 8-byte length and the JSON header (padded to 8 bytes) of a safetensors file holding
    `tensors` (name, shape, bytes), in that order, all of `dtype`."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, size in tensors:
        entry = {"dtype": SAFETENSORS_DTYPE[dtype], "shape": list(shape)}
        header[name] = entry | {"data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    return struct.pack("<Q", len(encoded)) + encoded


def save_safetensors(path: Path, weights: dict[str, np.ndarray], dtype: str) -> None:
    """The safetensors format written directly (numpy has no bfloat16), one tensor at a time
    (the peak: the weights plus one converted tensor)."""
    itemsize = 4 if dtype == "float32" else 2
    names = sorted(weights)
    entries = [(n, weights[n].shape, weights[n].size * itemsize) for n in names]
    with path.open("wb") as f:
        f.write(safetensors_header(entries, dtype))
        for name in names:
            if dtype == "bfloat16":
                f.write(to_bfloat16_bytes(weights[name]))
            else:
                f.write(np.ascontiguousarray(weights[name], dtype=f"<f{itemsize}").tobytes())
