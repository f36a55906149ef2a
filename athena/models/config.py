"""OLMoEConfig (re-exported by athena.models.olmoe): what to load and how to run it, checked."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from athena.host import TORCH_DEVICES
from athena.source import DTYPES

QUANTIZE_BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
# Sampling seeds both backends take: mlx's mx.random.seed is unsigned 64-bit, torch's
# manual_seed signed; 0 to 2**63 - 1 is what both accept.
SEED_MAX = 2**63 - 1
SEED_RANGE = "an integer from 0 to 2**63 - 1"


@dataclass
class OLMoEConfig:
    """What to load and how to run it. Wrong values raise ValueError on construction."""

    model_name: str = "allenai/OLMoE-1B-7B-0924"  # hub id ("org/name") or local folder
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
    device: str = "auto"  # transformers' device: auto (mps on a Mac that has it), cpu or mps
    max_tokens: int = 256
    temperature: float = 0.0  # 0 is greedy
    top_p: float = 1.0
    seed: int = 0
    # MemoryActionHead: pooled hidden state -> memory-action logits. A fresh seeded head on
    # the transformers path, or the head saved at action_head_path (by `athena train-head`)
    # on either path; its num_actions must be num_memory_actions, its hidden_dim is its own.
    num_memory_actions: int = 4
    action_head_hidden: int = 256
    action_head_path: str | None = None

    def __post_init__(self) -> None:
        for name in ("model_name", "mlx_model_path", "lora_path", "action_head_path"):
            if isinstance(getattr(self, name), os.PathLike):
                setattr(self, name, os.fspath(getattr(self, name)))
        checks = {
            "model_name": (_text_or_none(self.model_name) and self.model_name is not None,
                           "a hub id or a local folder"),
            **{name: (isinstance(getattr(self, name), bool), "True or False")
               for name in ("use_mlx", "allow_fallback", "allow_oversize")},
            "revision": (_text_or_none(self.revision), "None or a hub branch, tag or commit"),
            **{name: (_text_or_none(getattr(self, name)), "None or a folder path")
               for name in ("mlx_model_path", "lora_path")},
            "action_head_path": (_text_or_none(self.action_head_path), "None or a file path"),
            "dtype": (self.dtype is None or self.dtype in DTYPES,
                      "None or one of " + ", ".join(map(repr, DTYPES))),
            "quantize_bits": (self.quantize_bits is None or _in(self.quantize_bits, QUANTIZE_BITS),
                              "None, 4 or 8"),
            "router_bits": (_in(self.router_bits, QUANTIZE_BITS),
                            "4 or 8 (the router's bits when quantize_bits is set)"),
            "device": (self.device in TORCH_DEVICES, "'auto', 'cpu' or 'mps'"),
            "quantize_group_size": (_in(self.quantize_group_size, GROUP_SIZES), "32, 64 or 128"),
            **{name: (is_int(value := getattr(self, name)) and value >= 1, "an integer >= 1")
               for name in ("max_tokens", "num_memory_actions", "action_head_hidden")},
            "temperature": (is_number(self.temperature) and 0 <= self.temperature < math.inf,
                            "a number >= 0 (0 is greedy)"),
            "top_p": (is_number(self.top_p) and 0 < self.top_p <= 1, "a number in (0, 1]"),
            "seed": (is_seed(self.seed), SEED_RANGE),
        }  # fmt: skip
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(
                    f"OLMoEConfig.{name}={getattr(self, name)!r} is not allowed; use {allowed}"
                )


def _text_or_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and bool(value.strip()))


def _in(value: object, allowed: tuple[int, ...]) -> bool:
    return is_int(value) and value in allowed


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_seed(value: object) -> bool:
    return is_int(value) and 0 <= value <= SEED_MAX  # type: ignore[operator]


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
