"""Router-safe quantization of OLMoE on mlx (load and `athena convert`): the router
(`mlp.gate`) stays at `router_bits` (default 8, as mlx-lm's qwen3_moe recipe) while the rest
takes `bits`: at 4 bits its rounding would change which experts run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from athena.preflight.quantized import DEFAULT_ROUTER_BITS, is_router


def olmoe_predicate(
    bits: int, group_size: int, router_bits: int | None = DEFAULT_ROUTER_BITS
) -> Callable[[str, Any], bool | dict[str, Any]]:
    """`nn.quantize`'s class_predicate (`mlx_lm.convert`'s quant_predicate): False where
    `group_size` cannot be, the router's own parameters when `router_bits` differs, else True."""
    router = router_bits or bits

    def predicate(path: str, module: Any) -> bool | dict[str, Any]:
        if not hasattr(module, "to_quantized") or module.weight.shape[-1] % group_size:
            return False
        if is_router(path) and router != bits:
            return {"group_size": group_size, "bits": router, "mode": "affine"}
        return True

    return predicate
