"""Quantized folders (mlx_lm.convert's, config.json "quantization"): whether every packed
weight agrees with its scales, biases and the config's bits, group size and mode (per-layer
overrides included), from the headers; and the router rule (`mlp.gate` stays at 8 bits)."""

from __future__ import annotations

import itertools
from typing import Any

from athena.preflight.info import ModelInfo, Tensor, quant_params

# OLMoE's router picks the top-k experts of every token from 64 logits: 4-bit noise there
# changes which experts run. mlx-lm's qwen3_moe keeps its routers at 8 bits; athena does the
# same for OLMoE (`router_bits` to change it).
DEFAULT_ROUTER_BITS = 8

# What mlx 0.32 (the locked version) quantizes and loads: mode -> (bits, group sizes, biases).
MLX_QUANT_MODES: dict[str, tuple[tuple[int, ...], tuple[int, ...], bool]] = {
    "affine": ((1, 2, 3, 4, 5, 6, 8), (32, 64, 128), True),
    "mxfp4": ((4,), (32,), False),
    "mxfp8": ((8,), (32,), False),
    "nvfp4": ((4,), (16,), False),
}


def is_router(path: str) -> bool:
    """Whether a module or tensor name is an MoE router (`mlp.gate`), not a gate_proj."""
    return path.removesuffix(".weight").endswith("mlp.gate")


def quantized_problems(info: ModelInfo) -> list[str]:
    """One sentence per quantized layer mlx would refuse or misread (the first few): a mode,
    bits or group size it cannot load, missing scales or biases, or shapes that disagree."""
    quant = info.quantization
    if quant is None:
        return []
    tensors = {t.name: t for t in info.tensors}
    packed = (t for t in info.tensors if t.dtype == "U32" and t.name.endswith(".weight"))
    found = (_layer_problem(t, quant, tensors, f"{info.name}'s config.json") for t in packed)
    return list(itertools.islice(filter(None, found), 3))


def _layer_problem(
    weight: Tensor, quant: dict[str, Any], tensors: dict[str, Tensor], where: str
) -> str | None:
    base = weight.name.removesuffix(".weight")
    params = quant_params(quant, base)
    mode, bits, group = params["mode"], params["bits"], params["group_size"]
    if mode not in MLX_QUANT_MODES:
        known = ", ".join(MLX_QUANT_MODES)
        return (
            f"{where} quantizes {base} with mode {mode!r}, which mlx cannot load (it loads "
            f"{known}); re-convert the model with one of those"
        )
    allowed_bits, allowed_groups, has_biases = MLX_QUANT_MODES[mode]
    if bits not in allowed_bits or group not in allowed_groups:
        return (
            f"{where} quantizes {base} with mode {mode!r}, bits {bits!r}, group size {group!r}; "
            f"mlx's {mode} takes bits {'/'.join(map(str, allowed_bits))} and group size "
            f"{'/'.join(map(str, allowed_groups))}: fix config.json or re-convert the model"
        )
    parts = ("scales", "biases") if has_biases else ("scales",)
    if missing := next((part for part in parts if f"{base}.{part}" not in tensors), None):
        return (
            f"{base}.weight is packed ({bits}-bit) but {base}.{missing} is missing; the folder "
            "is incomplete: re-convert or re-download it"
        )
    packed = weight.shape[-1] if weight.shape else 0
    inputs, remainder = divmod(packed * 32, bits)
    expected = (*weight.shape[:-1], inputs // group) if not remainder else None
    for part in (tensors[f"{base}.{name}"] for name in parts):
        if expected is None or inputs % group or tuple(part.shape) != expected:
            want = "none" if expected is None else str(list(expected))
            return (
                f"{part.name} has shape {list(part.shape)}, but {base}.weight "
                f"{list(weight.shape)} at {bits} bits and group size {group} (from config.json) "
                f"needs {want}; config.json's bits or group_size do not match these weights: "
                "fix config.json or re-convert the model"
            )
    return None
