"""Router-safe quantization of OLMoE on mlx, at load and in `athena convert`: the router
(`mlp.gate`, which picks the experts) stays at `router_bits` (default 8, as mlx-lm's qwen3_moe
recipe keeps its routers) while the rest takes `bits`: at 4 bits its rounding changes which
experts run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from athena.preflight.quantized import DEFAULT_ROUTER_BITS, is_router


def olmoe_predicate(
    bits: int, group_size: int, router_bits: int | None = DEFAULT_ROUTER_BITS
) -> Callable[[str, Any], bool | dict[str, Any]]:
    """The `class_predicate` of `nn.quantize` (and `quant_predicate` of `mlx_lm.convert`):
    False for a module that cannot be quantized at `group_size` (no `to_quantized`, or an input
    width that is not a multiple of it), the router's own parameters when `router_bits`
    differs from `bits`, True (the call's bits) for everything else."""
    router = router_bits or bits

    def predicate(path: str, module: Any) -> bool | dict[str, Any]:
        if not hasattr(module, "to_quantized"):
            return False
        if module.weight.shape[-1] % group_size != 0:
            return False
        if is_router(path) and router != bits:
            return {"group_size": group_size, "bits": router, "mode": "affine"}
        return True

    return predicate
