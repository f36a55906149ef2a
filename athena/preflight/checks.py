"""The checks `OLMoEModel.load()` makes before a backend builds the model, and the check of
an input's length against the model's positions and this machine's memory."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from athena import preflight as _package  # machine_budget is read where tests replace it
from athena.errors import LoadError, OversizeError, SourceError
from athena.preflight.files import inspect_model
from athena.preflight.info import ModelInfo
from athena.preflight.memory import (
    TIGHT_SHARE,
    Estimate,
    MemoryBudget,
    estimate_peak,
    gib,
    load_options,
)
from athena.source import ModelSource

logger = logging.getLogger(__name__)

MLX_PREFILL_CHUNK = 2048  # mlx-lm's generate prefills the prompt in chunks of this many tokens


@dataclass(frozen=True)
class Preflight:
    """What `check_load` found for one load: the folder, this load's estimate, the budget."""

    info: ModelInfo
    estimate: Estimate
    budget: MemoryBudget

    def check_input(
        self, tokens: int, *, what: str = "the prompt", new_tokens: int = 0, chunked: bool = False
    ) -> None:
        """`check_sequence` for this model next to its loaded weights; `chunked`: mlx-lm's
        generate prefills MLX_PREFILL_CHUNK tokens at a time (encode does not)."""
        oversize = self.budget.status(self.estimate.peak) == "does not fit"
        check_sequence(
            self.info.config,
            tokens,
            what=what,
            new_tokens=new_tokens,
            loaded_bytes=self.estimate.model + self.estimate.runtime,
            # Loaded with allow_oversize: no memory is left to judge by; positions only.
            budget=MemoryBudget(None) if oversize else self.budget,
            query_chunk=MLX_PREFILL_CHUNK if chunked else None,
        )


def check_load(
    name: str | ModelSource,
    *,
    backend: str,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    group_size: int = 64,
    allow_oversize: bool = False,
    mlx_available: bool = True,
    budget: MemoryBudget | None = None,
) -> Preflight:
    """Before `backend` builds `name` (a located source; a folder or a cached hub id by name):
    check the folder (source.check_model_folder), its agreement with itself and its
    tokenizer, and that the estimated peak fits this machine.

    Raises SourceError for a folder no backend can load, OversizeError for one that does
    not fit (unless `allow_oversize`); logs a warning for a tight fit."""
    info = inspect_model(name)
    if info.problems:
        raise SourceError(info.problems[0])
    if backend == "transformers" and info.quantization is not None:
        raise LoadError(
            f"{name} holds mlx-quantized weights (config.json 'quantization'), which only "
            "the mlx backend loads; use the mlx backend or the unquantized checkpoint"
        )
    bits = quantize_bits if backend == "mlx" else None  # transformers skips it (no CUDA)
    estimate = estimate_peak(
        info, backend=backend, dtype=dtype, quantize_bits=bits, group_size=group_size
    )
    budget = budget or _package.machine_budget()
    status = budget.status(estimate.peak)
    if status == "does not fit" and not allow_oversize:
        fallback = estimate_peak(info, backend="transformers", dtype=dtype)
        raise OversizeError(
            _oversize_sentence(info, estimate, budget, mlx_available, group_size),
            fallback_fits=backend == "mlx" and budget.status(fallback.peak) != "does not fit",
        )
    if status == "does not fit":
        logger.warning(
            "%s needs about %s to load, more than this machine's %s; loading anyway "
            "(allow_oversize=True)", name, gib(estimate.peak), gib(budget.physical),
        )  # fmt: skip
    elif status == "tight":
        logger.warning(
            "%s needs about %s to load with %s (%s), above %s (%s): it loads, but other "
            "programs may be pushed to swap",
            name, gib(estimate.peak), backend, estimate.label(), gib(budget.tight_above),
            budget.recommended_source or f"{TIGHT_SHARE:.0%} of RAM",
        )  # fmt: skip
    return Preflight(info, estimate, budget)


def _oversize_sentence(
    info: ModelInfo,
    estimate: Estimate,
    budget: MemoryBudget,
    mlx: bool,
    group_size: int = 64,
    on_cpu: bool | None = None,
) -> str:
    fitting = []
    for option in load_options(info, mlx=mlx, group_size=group_size, on_cpu=on_cpu):
        if budget.status(option.peak) == "does not fit" or option.peak >= estimate.peak:
            continue
        where = "" if option.backend == estimate.backend else f" with {option.backend}"
        fitting.append(f"{option.label()}{where} ({gib(option.peak)})")
    advice = (
        "options that fit: " + ", ".join(fitting)
        if fitting
        else "no dtype or quantization of it fits here"
    )
    return (
        f"{info.name} needs about {gib(estimate.peak)} to load with {estimate.backend} "
        f"({estimate.label()}), more than this machine's {gib(budget.physical)} of memory; "
        f"{advice}; or pass allow_oversize=True (--allow-oversize) to load it anyway"
    )


def sequence_memory(config: dict[str, Any], tokens: int, *, query_chunk: int | None = None) -> int:
    """Working memory of one forward pass over `tokens` tokens (bytes, float32): attention
    scores of one layer (all heads, `query_chunk` queries at a time if chunked), the key/value
    cache of every layer, and the per-token activations of one layer (top-k experts)."""
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config.get("hidden_size") or 1)
    head_dim = int(config.get("head_dim") or hidden // heads)
    layers = int(config.get("num_hidden_layers") or 1)
    top_k = int(config.get("num_experts_per_tok") or 1)
    inter = int(config.get("intermediate_size") or hidden)
    queries = min(tokens, query_chunk) if query_chunk else tokens
    scores = heads * queries * tokens * 4
    cache = 2 * layers * tokens * kv_heads * head_dim * 4
    activations = queries * (4 * hidden + 3 * top_k * inter) * 4
    return scores + cache + activations


def check_sequence(
    config: dict[str, Any],
    tokens: int,
    *,
    what: str = "the prompt",
    new_tokens: int = 0,
    loaded_bytes: int = 0,
    budget: MemoryBudget | None = None,
    query_chunk: int | None = None,
) -> None:
    """Raise ValueError (one sentence) when `tokens` tokens are beyond the model's
    max_position_embeddings, or when running the model over them (and `new_tokens` more,
    generated) would not fit in this machine's memory next to the loaded model
    (`loaded_bytes`)."""
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and tokens > limit:
        raise ValueError(
            f"{what} is {tokens} tokens, beyond the model's max_position_embeddings "
            f"({limit}); shorten it to at most {limit} tokens"
        )
    budget = budget or _package.machine_budget()
    if budget.physical is None:
        return
    free = budget.physical - loaded_bytes
    need = sequence_memory(config, tokens + new_tokens, query_chunk=query_chunk)
    if need <= free:
        return
    low, high = 1, tokens  # the longest input that fits
    while low < high:
        middle = (low + high + 1) // 2
        if sequence_memory(config, middle + new_tokens, query_chunk=query_chunk) <= free:
            low = middle
        else:
            high = middle - 1
    raise ValueError(
        f"{what} is {tokens} tokens; running the model over it needs about {gib(need)} of "
        f"working memory, more than the {gib(max(free, 0))} this machine has beside the model; "
        f"shorten it to at most {low} tokens"
    )
