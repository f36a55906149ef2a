"""OLMoEConfig: what to load and how to run it, checked on construction (re-exported by
athena.models.olmoe)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from athena.source import DTYPES

DEFAULT_MODEL = "allenai/OLMoE-1B-7B-0924"
QUANTIZE_BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
# Sampling seeds both backends take: mlx's mx.random.seed is unsigned 64-bit, torch's
# manual_seed signed; 0 to 2**63 - 1 is what both accept.
SEED_MAX = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63 - 1"


@dataclass
class OLMoEConfig:
    """What to load and how to run it. Wrong values raise ValueError on construction."""

    model_name: str = DEFAULT_MODEL  # hub id ("org/name") or local folder
    revision: str | None = None  # a hub branch, tag or commit for a name models.lock does not pin
    use_mlx: bool = True  # use mlx-lm when it is installed
    allow_fallback: bool = True  # if the mlx-lm load fails, try transformers
    mlx_model_path: str | None = None  # an mlx-specific folder (e.g. converted); else model_name
    lora_path: str | None = None  # LoRA adapter folder (mlx-lm format on mlx, PEFT on torch)
    dtype: str | None = None  # None: the checkpoint's (float32 on mlx's CPU for MoE)
    quantize_bits: int | None = None  # None, 4 or 8: quantize after loading (mlx path)
    quantize_group_size: int = 64
    router_bits: int = 8  # 4 or 8: bits of the router (mlp.gate) when quantize_bits is set
    allow_oversize: bool = False  # load even when the estimated peak exceeds the memory
    max_tokens: int = 256
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 1.0
    seed: int = 0
    # MemoryActionHead (transformers path): pooled hidden state -> memory-action logits.
    num_memory_actions: int = 4
    action_head_hidden: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.model_name, os.PathLike):
            self.model_name = os.fspath(self.model_name)
        if isinstance(self.mlx_model_path, os.PathLike):
            self.mlx_model_path = os.fspath(self.mlx_model_path)
        if isinstance(self.lora_path, os.PathLike):
            self.lora_path = os.fspath(self.lora_path)
        check_value(
            "model_name",
            self.model_name,
            isinstance(self.model_name, str) and bool(self.model_name.strip()),
            "a hub id or a local folder",
        )
        for name in ("use_mlx", "allow_fallback", "allow_oversize"):
            value = getattr(self, name)
            check_value(name, value, isinstance(value, bool), "True or False")
        check_value(
            "revision",
            self.revision,
            self.revision is None
            or (isinstance(self.revision, str) and bool(self.revision.strip())),
            "None or a hub branch, tag or commit",
        )
        for name in ("mlx_model_path", "lora_path"):
            value = getattr(self, name)
            ok = value is None or (isinstance(value, str) and bool(value.strip()))
            check_value(name, value, ok, "None or a folder path")
        check_value(
            "dtype", self.dtype, self.dtype is None or self.dtype in DTYPES, _one_of(DTYPES)
        )
        check_value(
            "quantize_bits",
            self.quantize_bits,
            self.quantize_bits is None
            or (is_int(self.quantize_bits) and self.quantize_bits in QUANTIZE_BITS),
            "None, 4 or 8",
        )
        check_value(
            "router_bits",
            self.router_bits,
            is_int(self.router_bits) and self.router_bits in QUANTIZE_BITS,
            "4 or 8 (the router's bits when quantize_bits is set)",
        )
        check_value(
            "quantize_group_size",
            self.quantize_group_size,
            is_int(self.quantize_group_size) and self.quantize_group_size in GROUP_SIZES,
            "32, 64 or 128",
        )
        check_value(
            "max_tokens",
            self.max_tokens,
            is_int(self.max_tokens) and self.max_tokens >= 1,
            "an integer >= 1",
        )
        check_value(
            "temperature",
            self.temperature,
            is_number(self.temperature) and 0 <= self.temperature < float("inf"),
            "a number >= 0 (0 is greedy)",
        )
        check_value(
            "top_p",
            self.top_p,
            is_number(self.top_p) and 0 < self.top_p <= 1,
            "a number in (0, 1]",
        )
        check_value("seed", self.seed, is_seed(self.seed), SEED_RANGE)
        check_value(
            "num_memory_actions",
            self.num_memory_actions,
            is_int(self.num_memory_actions) and self.num_memory_actions >= 1,
            "an integer >= 1",
        )
        check_value(
            "action_head_hidden",
            self.action_head_hidden,
            is_int(self.action_head_hidden) and self.action_head_hidden >= 1,
            "an integer >= 1",
        )


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_seed(value: object) -> bool:
    return is_int(value) and 0 <= value <= SEED_MAX  # type: ignore[operator]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(values: tuple[str, ...]) -> str:
    return "None or one of " + ", ".join(repr(v) for v in values)


def check_value(field: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"OLMoEConfig.{field}={value!r} is not allowed; use {allowed}")
