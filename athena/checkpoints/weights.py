"""The tiny checkpoints' weights: drawn deterministically, written as safetensors by hand
(numpy has no bfloat16)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from athena.checkpoints.presets import SAFETENSORS_DTYPE
from athena.checkpoints.tokenizer import SPECIAL_TOKENS, VOCAB_SIZE


def make_weights(preset: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """HF-named float32 weights, drawn in a fixed order from `rng`."""
    h, i = preset["hidden_size"], preset["intermediate_size"]
    head_dim = h // preset["num_attention_heads"]
    kv = preset["num_key_value_heads"] * head_dim

    def linear(out_features: int, in_features: int, gain: float = 1.0) -> np.ndarray:
        std = gain / np.sqrt(in_features)
        return (rng.standard_normal((out_features, in_features)) * std).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((VOCAB_SIZE, h)).astype(np.float32)
    }
    for layer in range(preset["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        w[f"{p}.input_layernorm.weight"] = norm(h)
        w[f"{p}.post_attention_layernorm.weight"] = norm(h)
        w[f"{p}.self_attn.q_proj.weight"] = linear(h, h)
        w[f"{p}.self_attn.k_proj.weight"] = linear(kv, h)
        w[f"{p}.self_attn.v_proj.weight"] = linear(kv, h)
        w[f"{p}.self_attn.o_proj.weight"] = linear(h, h, gain=0.5)
        w[f"{p}.self_attn.q_norm.weight"] = norm(h)
        w[f"{p}.self_attn.k_norm.weight"] = norm(kv)
        w[f"{p}.mlp.gate.weight"] = linear(preset["num_experts"], h, gain=2.0)
        for expert in range(preset["num_experts"]):
            e = f"{p}.mlp.experts.{expert}"
            w[f"{e}.gate_proj.weight"] = linear(i, h)
            w[f"{e}.up_proj.weight"] = linear(i, h)
            w[f"{e}.down_proj.weight"] = linear(h, i, gain=0.5)
    w["model.norm.weight"] = norm(h)
    lm_head = linear(VOCAB_SIZE, h, gain=3.0)
    # Damp the rows of non-printable bytes and specials so that greedy text is mostly
    # printable ASCII (readable gibberish in guides) rather than broken UTF-8. The merged
    # tokens (ids after the bytes) are all printable: the corpus is ASCII.
    printable = np.zeros(VOCAB_SIZE, dtype=bool)
    printable[len(SPECIAL_TOKENS) + 0x20 : len(SPECIAL_TOKENS) + 0x7F] = True
    printable[len(SPECIAL_TOKENS) + 256 :] = True
    lm_head[~printable] *= 0.25
    w["lm_head.weight"] = lm_head
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
    """The safetensors format written directly (numpy has no bfloat16): the header, then the
    raw little-endian data, one tensor at a time (so the peak is the weights plus one
    converted tensor)."""
    itemsize = 4 if dtype == "float32" else 2
    names = sorted(weights)
    with path.open("wb") as f:
        f.write(
            safetensors_header(
                [(n, weights[n].shape, weights[n].size * itemsize) for n in names], dtype
            )
        )
        for name in names:
            if dtype == "bfloat16":
                f.write(to_bfloat16_bytes(weights[name]))
            else:
                f.write(np.ascontiguousarray(weights[name], dtype=f"<f{itemsize}").tobytes())
