"""Tiny OLMoE checkpoints made locally, for tests, guides and benchmarks (no hub, no torch).

`write_tiny_olmoe(out_dir)` writes a deterministic OLMoE folder that both `mlx_lm.load` and
transformers' `AutoModelForCausalLM.from_pretrained` load:

- config.json: `model_type` "olmoe" with the fields mlx_lm/models/olmoe.py and transformers'
  OlmoeConfig read (untied embeddings, no explicit head_dim, so both agree on the q/k norms);
- model.safetensors: weights in Hugging Face naming, one tensor per expert
  (`model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight`; mlx-lm's `sanitize()` stacks
  them, transformers' conversion mapping packs them);
- tokenizer.json, tokenizer_config.json, special_tokens_map.json: a byte-level BPE over the
  256 bytes plus `<|endoftext|>` (id 0, eos) and `<|padding|>` (id 1, pad). Every text
  encodes, and it decodes back exactly.

Only numpy and `tokenizers` are imported. Weights are scaled so activations stay O(1) and
logits are well separated, so greedy decoding is not decided by rounding noise.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256

# Presets: the architecture knobs of an OLMoE. Parameter counts (float32 bytes = 4x):
# tiny ~0.3 M (tests), small ~4 M, medium ~330 M (benchmarks; 1.3 GB in float32).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_experts": 8,
        "num_experts_per_tok": 2,
    },
    "small": {
        "hidden_size": 256,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "num_experts": 16,
        "num_experts_per_tok": 4,
    },
    "medium": {
        "hidden_size": 1024,
        "intermediate_size": 256,
        "num_hidden_layers": 6,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "num_experts": 64,
        "num_experts_per_tok": 8,
    },
}

DTYPES = ("float32", "float16", "bfloat16")
_SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def count_parameters(size: str = "tiny") -> int:
    """The number of parameters of a preset (what `write_tiny_olmoe` writes for it)."""
    s = _preset(size)
    h, i, e = s["hidden_size"], s["intermediate_size"], s["num_experts"]
    head_dim = h // s["num_attention_heads"]
    kv = s["num_key_value_heads"] * head_dim
    attention = h * h * 2 + h * kv * 2 + h + kv  # q, o, k, v, q_norm, k_norm
    moe = e * h + e * 3 * h * i  # router, experts
    layer = attention + moe + 2 * h  # + the two layer norms
    return 2 * VOCAB_SIZE * h + s["num_hidden_layers"] * layer + h


def write_tiny_olmoe(
    out_dir: str | Path, *, size: str = "tiny", seed: int = 0, dtype: str = "float32"
) -> Path:
    """Write a deterministic OLMoE checkpoint folder to `out_dir` and return its path.

    The same (size, seed, dtype) always gives the same bytes. `out_dir` is created if needed;
    files of an earlier checkpoint in it are overwritten.
    """
    preset = _preset(size)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder; pass a folder path for the model")
    out.mkdir(parents=True, exist_ok=True)

    config = olmoe_config(size, dtype=dtype)
    weights = _make_weights(preset, np.random.default_rng(seed))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    _save_safetensors(out / "model.safetensors", weights, dtype)
    _write_tokenizer(out)
    generation = {"eos_token_id": 0, "pad_token_id": 1, "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    return out


def olmoe_config(size: str = "tiny", *, dtype: str = "float32") -> dict[str, Any]:
    """config.json of a preset: what mlx-lm's ModelArgs and transformers' OlmoeConfig read."""
    preset = _preset(size)
    return {
        "architectures": ["OlmoeForCausalLM"],
        "model_type": "olmoe",
        "vocab_size": VOCAB_SIZE,
        **preset,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "clip_qkv": None,
        "norm_topk_prob": False,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.01,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": 0,
        "pad_token_id": 1,
        "dtype": dtype,
    }


def _preset(size: str) -> dict[str, int]:
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not a preset; use one of {', '.join(SIZES)}")
    return SIZES[size]


def _make_weights(preset: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
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
    # printable ASCII (readable gibberish in guides) rather than broken UTF-8.
    printable = np.zeros(VOCAB_SIZE, dtype=bool)
    printable[len(SPECIAL_TOKENS) + 0x20 : len(SPECIAL_TOKENS) + 0x7F] = True
    lm_head[~printable] *= 0.25
    w["lm_head.weight"] = lm_head
    return w


def _to_bfloat16_bytes(array: np.ndarray) -> bytes:
    """float32 -> bfloat16 (round to nearest even), as little-endian bytes."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def _save_safetensors(path: Path, weights: dict[str, np.ndarray], dtype: str) -> None:
    """The safetensors format written directly (numpy has no bfloat16): an 8-byte header
    length, a JSON header of name -> dtype/shape/offsets, then the raw little-endian data."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(weights):
        array = weights[name]
        if dtype == "bfloat16":
            blob = _to_bfloat16_bytes(array)
        else:
            numpy_dtype = "<f4" if dtype == "float32" else "<f2"
            blob = np.ascontiguousarray(array, dtype=numpy_dtype).tobytes()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for blob in blobs:
            f.write(blob)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what tokenizers' ByteLevel uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _write_tokenizer(out: Path) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for byte, char in sorted(_bytes_to_unicode().items()):
        vocab[char] = len(SPECIAL_TOKENS) + byte
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])
    tokenizer.save(str(out / "tokenizer.json"))

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    special = {"eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


# OLMoE-1B-7B-0924's shape (6.92 B parameters; 27.7 GB in float32, 13.8 GB in bfloat16).
OLMOE_1B_7B: dict[str, int] = {
    "vocab_size": 50304,
    "hidden_size": 2048,
    "intermediate_size": 1024,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_experts": 64,
    "num_experts_per_tok": 8,
}


def write_sparse_olmoe(
    out_dir: str | Path, shape: dict[str, int] | None = None, *, dtype: str = "float32"
) -> Path:
    """A structurally valid OLMoE folder of any shape (default: OLMoE-1B-7B's) whose weights
    take no disk: the safetensors header is written, then the file is extended to its full
    length as a sparse file (its data reads as zeros). For checks that read headers only
    (athena.preflight); never load it. The tokenizer is the tiny checkpoints' (258 ids)."""
    shape = dict(OLMOE_1B_7B if shape is None else shape)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = shape.pop("vocab_size")
    config = {**olmoe_config("tiny", dtype=dtype), **shape, "vocab_size": vocab}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    itemsize = 4 if dtype == "float32" else 2
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, tensor_shape in sorted(_tensor_shapes(shape, vocab).items()):
        nbytes = itemsize
        for dim in tensor_shape:
            nbytes *= dim
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtype],
            "shape": list(tensor_shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with (out / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        f.truncate(8 + len(encoded) + offset)
    _write_tokenizer(out)
    return out


def _tensor_shapes(shape: dict[str, int], vocab: int) -> dict[str, tuple[int, ...]]:
    """Hugging Face names and shapes of an OLMoE's tensors (what `_make_weights` writes)."""
    h, i = shape["hidden_size"], shape["intermediate_size"]
    kv = shape["num_key_value_heads"] * (h // shape["num_attention_heads"])
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, h),
        "model.norm.weight": (h,),
        "lm_head.weight": (vocab, h),
    }
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
    return shapes
