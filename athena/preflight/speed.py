"""How fast, as a ceiling: decoding one token reads every active weight once, so tokens/s
cannot exceed the memory bandwidth (the caller's) / the bytes read per token (docs/preflight.md)."""

from __future__ import annotations

from typing import Any

from athena.host import Bandwidth
from athena.preflight.info import DTYPE_ITEMSIZE, EXPERT, ModelInfo
from athena.preflight.memory import Estimate
from athena.preflight.quantized import is_router


def bytes_per_token(info: ModelInfo, estimate: Estimate, group_size: int = 64) -> int:
    """Bytes of weights read per token with this option: all but the experts (top-k run) and
    the embedding (one row), at the option's precision; a quantized folder as stored."""
    config = info.config
    experts = int(config.get("num_experts") or 1)
    top_k = min(int(config.get("num_experts_per_tok") or experts), experts)
    vocab = int(config.get("vocab_size") or 1)
    size = DTYPE_ITEMSIZE.get(estimate.dtype, 4)
    total = 0.0
    for tensor in info.tensors:
        share = 1.0
        if EXPERT.match(tensor.name) or ".switch_mlp." in tensor.name:
            share = top_k / experts
        elif "embed_tokens." in tensor.name:
            share = 1 / vocab
        if info.quantization is not None:
            nbytes = float(tensor.nbytes)
        elif estimate.quantize_bits and len(tensor.shape) > 1 and not tensor.shape[-1] % group_size:
            bits = (is_router(tensor.name) and estimate.router_bits) or estimate.quantize_bits
            nbytes = tensor.elements * (bits / 8 + 2 * size / group_size)
        elif tensor.dtype.startswith("F") or tensor.dtype == "BF16":
            nbytes = float(tensor.elements * size)
        else:
            nbytes = float(tensor.nbytes)
        total += nbytes * share
    return int(total)


def decode_ceiling(
    info: ModelInfo, estimate: Estimate, bandwidth: Bandwidth | None
) -> dict[str, Any]:
    """The decode ceiling of one option, JSON-ready: tokens/s (None without a bandwidth),
    the bytes read per token, and where the bandwidth came from."""
    per_token = bytes_per_token(info, estimate)
    rate = None if bandwidth is None else bandwidth.bytes_per_second
    return {
        "bytes_per_token": per_token,
        "tokens_per_second": None if rate is None else round(rate / per_token, 1),
        "bandwidth": rate,
        "source": None if bandwidth is None else bandwidth.source,
    }
