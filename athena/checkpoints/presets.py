"""The OLMoE shapes the tiny checkpoints come in, their parameter counts and config.json."""

from __future__ import annotations

import math
from typing import Any

from athena.checkpoints.tokenizer import VOCAB_SIZE
from athena.checkpoints.weights import tensor_shapes
from athena.source import DTYPES

# The architecture knobs of an OLMoE, and the presets' values of them.
KNOBS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
         "num_key_value_heads", "num_experts", "num_experts_per_tok")  # fmt: skip
SIZES: dict[str, dict[str, int]] = {
    size: dict(zip(KNOBS, values, strict=True))
    for size, values in (
        ("tiny", (64, 64, 2, 4, 4, 8, 2)),  # ~0.3 M parameters (tests)
        ("small", (256, 128, 2, 8, 8, 16, 4)),  # ~4 M (benchmarks)
        ("medium", (1024, 256, 6, 16, 16, 64, 8)),  # ~330 M (benchmarks; 1.3 GB in float32)
    )
}


def count_parameters(size: str = "tiny") -> int:
    """The number of parameters of a preset (what `write_tiny_olmoe` writes for it)."""
    return sum(math.prod(dims) for dims in tensor_shapes(preset(size), VOCAB_SIZE).values())


def olmoe_config(size: str = "tiny", *, dtype: str = "float32") -> dict[str, Any]:
    """config.json of a preset: what mlx-lm's ModelArgs and transformers' OlmoeConfig read."""
    shape = preset(size)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    return {
        "architectures": ["OlmoeForCausalLM"],
        "model_type": "olmoe",
        "vocab_size": VOCAB_SIZE,
        **shape,
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


def preset(size: str) -> dict[str, int]:
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not a preset; use one of {', '.join(SIZES)}")
    return SIZES[size]
