"""What a model folder holds, as the preflight reads it from the headers (tensors, tokenizer)
and what follows (parameters, stored dtypes, packed quantized weights). Standard library only."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from athena.source import SAFETENSORS_ITEMSIZE

ITEMSIZE = SAFETENSORS_ITEMSIZE  # safetensors' dtypes and their item sizes (athena.source)
FLOAT_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
DTYPE_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
EXPERT = re.compile(r"^(.*\.experts)\.(\d+)\.(\w+)\.weight$")


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # the safetensors name: "F32", "BF16", "U32", ...
    shape: tuple[int, ...]
    nbytes: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TokenizerInfo:
    kind: str | None  # "tokenizer.json", "vocab.json + merges.txt", "tokenizer.model" or None
    vocab: int | None = None  # number of distinct ids (None: not known without loading it)
    max_id: int | None = None


@dataclass
class ModelInfo:
    """What `inspect_model` found. `problems` holds the sentences that stop a load (first is
    the one `check_load` raises); empty when the folder can be loaded."""

    name: str
    path: Path
    config: dict[str, Any]
    tensors: list[Tensor]
    file_sizes: dict[str, int]  # each model*.safetensors file's name and bytes
    tokenizer: TokenizerInfo
    quantization: dict[str, Any] | None = None  # mlx-lm's config.json "quantization"
    problems: list[str] = field(default_factory=list)
    config_problem: str | None = None  # the first of `problems` about config.json
    tokenizer_problem: str | None = None  # the first about the tokenizer

    @property
    def disk_bytes(self) -> int:
        return sum(self.file_sizes.values())

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def parameters(self) -> int:
        """Parameters: packed (U32) weights counted unpacked, quantization scales not at all."""
        names = {t.name for t in self.tensors}
        quant = [t.name for t in self.tensors if t.name.endswith((".scales", ".biases"))]
        skip = {name for name in quant if f"{name.rsplit('.', 1)[0]}.weight" in names}
        return sum(math.prod(self.logical_shape(t)) for t in self.tensors if t.name not in skip)

    @property
    def stored_dtypes(self) -> dict[str, int]:
        """Bytes per stored dtype, largest first ("float32", "bfloat16", "uint32", ...)."""
        out: dict[str, int] = {}
        for tensor in self.tensors:  # "U32" -> "uint32", "I64" -> "int64", "BOOL" -> "bool"
            kind = {"U": "uint", "I": "int"}.get(tensor.dtype[:1], tensor.dtype[:1])
            name = FLOAT_NAMES.get(tensor.dtype) or (kind + tensor.dtype[1:]).lower()
            out[name] = out.get(name, 0) + tensor.nbytes
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    @property
    def float_dtype(self) -> str:
        """The dtype most of the floating-point weights are stored in."""
        return next((name for name in self.stored_dtypes if name in DTYPE_ITEMSIZE), "float32")

    @property
    def has_experts(self) -> bool:
        return any(".experts." in t.name or ".switch_mlp." in t.name for t in self.tensors)

    @property
    def ok(self) -> bool:
        return not self.problems

    @functools.cached_property
    def _by_name(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}

    def _bits(self, tensor: Tensor) -> int:
        """Bits of a packed weight, from its shape and its scales' (group size from config)."""
        base = tensor.name.rsplit(".", 1)[0]
        scales = self._by_name.get(f"{base}.scales")
        params = quant_params(self.quantization or {}, base)
        if scales is None or not scales.shape:
            return int(params["bits"])
        return max(1, round(tensor.shape[-1] * 32 / (scales.shape[-1] * int(params["group_size"]))))

    def logical_shape(self, tensor: Tensor) -> tuple[int, ...]:
        """A packed (U32) weight's shape unpacked."""
        if tensor.dtype != "U32" or self.quantization is None or not tensor.shape:
            return tensor.shape
        return (*tensor.shape[:-1], tensor.shape[-1] * 32 // self._bits(tensor))


def quant_params(quantization: dict[str, Any], base: str) -> dict[str, Any]:
    """The bits, group size and mode of the layer `base` ("model.layers.0.mlp.gate"): its
    per-layer override when config.json has one, else the folder's."""
    override = quantization.get(base)
    if override is None:
        override = quantization.get(base.removeprefix("model."))
    layer = {**quantization, **override} if isinstance(override, dict) else quantization
    defaults = {"bits": 4, "group_size": 64, "mode": "affine"}
    return {key: layer.get(key, default) for key, default in defaults.items()}
