"""The checks `OLMoEModel.load()` makes before a backend builds the model, and the check of
an input's length against the model's positions and this machine's memory."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from athena.errors import LoadError, OversizeError, SourceError, TextTooLong
from athena.preflight.files import inspect_model
from athena.preflight.info import DTYPE_ITEMSIZE, ModelInfo
from athena.preflight.memory import (
    MLX_PREFILL_CHUNK,
    TIGHT_SHARE,
    Estimate,
    MemoryBudget,
    estimate_peak,
    gib,
    load_options,
    machine_budget,
    sequence_memory,
)
from athena.preflight.quantized import quantized_problems
from athena.source import ModelSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preflight:
    """What `check_load` found for one load: the folder, this load's estimate, the budget."""

    info: ModelInfo
    estimate: Estimate
    budget: MemoryBudget

    def check_input(
        self,
        tokens: int,
        *,
        what: str = "the prompt",
        new_tokens: int = 0,
        chunked: bool = False,
        rows: int = 1,
    ) -> None:
        """`check_sequence` beside the loaded weights; `chunked`: mlx-lm's generate prefills
        in chunks; `rows`: an encode batch whose longest text is `tokens`."""
        oversize = self.budget.status(self.estimate.resident) == "does not fit"
        check_sequence(
            self.info.config,
            tokens,
            what=what,
            new_tokens=new_tokens,
            loaded_bytes=self.estimate.model + self.estimate.runtime,
            # Loaded with allow_oversize: no memory is left to judge by; positions only.
            budget=MemoryBudget(None) if oversize else self.budget,
            query_chunk=MLX_PREFILL_CHUNK if chunked else None,
            rows=rows,
            itemsize=DTYPE_ITEMSIZE.get(self.estimate.dtype, 4),
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
    router_bits: int | None = None,
    device: str = "cpu",
) -> Preflight:
    """Check the folder `backend` is to build (on torch's `device`) and that it fits:
    SourceError (no backend can load it), OversizeError (unless `allow_oversize`), a warning
    logged for a tight fit."""
    info = inspect_model(name)
    if info.problems:
        raise SourceError(info.problems[0])
    if backend == "transformers" and info.quantization is not None:
        raise LoadError(
            f"{name} holds mlx-quantized weights (config.json 'quantization'), which only "
            "the mlx backend loads; use the mlx backend or the unquantized checkpoint"
        )
    if quantized := quantized_problems(info):
        raise SourceError(quantized[0])
    budget = budget or machine_budget()
    if backend == "transformers" and (mapping := unmappable(info, budget)):
        raise OversizeError(mapping, fallback_fits=False)
    bits = quantize_bits if backend == "mlx" else None  # transformers skips it (no CUDA)
    estimate = estimate_peak(info, backend=backend, dtype=dtype, quantize_bits=bits,
                             group_size=group_size, router_bits=router_bits,
                             device=device)  # fmt: skip
    status = budget.status(estimate.resident)
    if status == "does not fit" and not allow_oversize:
        fallback = estimate_peak(info, backend="transformers", dtype=dtype)
        raise OversizeError(
            oversize_sentence(info, estimate, budget, mlx_available, group_size),
            fallback_fits=backend == "mlx"
            and budget.status(fallback.resident) != "does not fit"
            and not unmappable(info, budget),
        )
    if status == "does not fit":
        logger.warning(
            "%s needs about %s to load, more than this machine's %s; loading anyway "
            "(allow_oversize=True)", name, gib(estimate.resident), gib(budget.physical),
        )  # fmt: skip
    elif status == "tight":
        logger.warning(
            "%s needs about %s to load with %s (%s), above %s (%s): it loads, but other "
            "programs may be pushed to swap",
            name, gib(estimate.resident), backend, estimate.label(), gib(budget.tight_above),
            budget.recommended_source or f"{TIGHT_SHARE:.0%} of RAM",
        )  # fmt: skip
    return Preflight(info, estimate, budget)


def unmappable(info: ModelInfo, budget: MemoryBudget) -> str | None:
    """The sentence for a weights file larger than the largest private mapping Linux grants:
    torch maps each file whole, so transformers would fail with `unable to mmap`."""
    if budget.map_limit is None:
        return None
    largest = max(info.file_sizes, key=info.file_sizes.__getitem__, default=None)
    if largest is None or (size := info.file_sizes[largest]) <= budget.map_limit:
        return None
    return (
        f"{info.name}'s {largest} is {gib(size)}, one file larger than the "
        f"{gib(budget.map_limit)} Linux lets a process map ({budget.map_limit_source}), so "
        "transformers (which memory-maps each weights file whole) cannot load it here, with "
        "or without allow_oversize; load it with mlx, or use a copy sharded into files under "
        f"{gib(budget.map_limit)} (as the hub ships it)"
    )


def oversize_sentence(
    info: ModelInfo,
    estimate: Estimate,
    budget: MemoryBudget,
    mlx: bool,
    group_size: int = 64,
    on_cpu: bool | None = None,
) -> str:
    fitting = []
    for option in load_options(info, mlx=mlx, group_size=group_size, on_cpu=on_cpu):
        if budget.status(option.resident) == "does not fit" or option.resident >= estimate.resident:
            continue
        if option.backend == "transformers" and unmappable(info, budget):
            continue
        where = "" if option.backend == estimate.backend else f" with {option.backend}"
        fitting.append(f"{option.label()}{where} ({gib(option.resident)})")
    advice = "no dtype or quantization of it fits here"
    advice = "options that fit: " + ", ".join(fitting) if fitting else advice
    return (
        f"{info.name} needs about {gib(estimate.resident)} to load with {estimate.backend} "
        f"({estimate.label()}), more than this machine's {gib(budget.physical)} of memory; "
        f"{advice}; or pass allow_oversize=True (--allow-oversize) to load it anyway"
    )


def check_positions(
    tokens: int, limit: int | None, *, index: int | None = None, what: str | None = None
) -> None:
    """TextTooLong when `tokens` are more than `limit` positions (None: no limit known);
    `what` names a prompt, else it is encode's text `index` (None: the only one)."""
    if limit is not None and tokens > limit:
        raise TextTooLong(index, tokens, limit, what=what)


def check_sequence(
    config: dict[str, Any],
    tokens: int,
    *,
    what: str = "the prompt",
    new_tokens: int = 0,
    loaded_bytes: int = 0,
    budget: MemoryBudget | None = None,
    query_chunk: int | None = None,
    rows: int = 1,
    itemsize: int = 4,
) -> None:
    """ValueError (one sentence, naming what fits) when `tokens` + `new_tokens` are beyond the
    positions or, over `rows` sequences, do not fit beside the loaded model (`loaded_bytes`)."""
    limit = config.get("max_position_embeddings")
    check_positions(tokens, limit if isinstance(limit, int) else None, what=what)
    if isinstance(limit, int) and tokens + new_tokens > limit:
        raise ValueError(
            f"{what} ({tokens} tokens) plus max_tokens={new_tokens} is {tokens + new_tokens} "
            f"tokens, beyond the model's context length (max_position_embeddings {limit}); "
            f"ask for at most max_tokens={limit - tokens}"
        )
    budget = budget or machine_budget()
    if budget.physical is None:
        return
    free = budget.physical - loaded_bytes

    def need(length: int, batch: int = rows) -> int:
        return sequence_memory(
            config, length + new_tokens, query_chunk=query_chunk, rows=batch, itemsize=itemsize
        )

    if need(tokens) <= free:
        return
    head = (
        f"{what} is {tokens} tokens"
        + (f" (in a batch of {rows})" if rows > 1 else "")
        + (f" plus {new_tokens} to generate" if new_tokens else "")
        + f"; running the model over it needs about {gib(need(tokens))} of working memory, "
        f"more than the {gib(max(free, 0))} this machine has beside the model; "
    )
    if rows > 1 and need(tokens, 1) <= free:
        batch = largest(lambda b: need(tokens, b) <= free, rows)
        raise ValueError(head + f"use a batch size of at most {batch}")
    if need(1, 1) > free:
        advice = "lower max_tokens" if new_tokens else "free memory or use a smaller model"
        raise ValueError(head + advice)
    length = largest(lambda n: need(n, 1) <= free, tokens)
    raise ValueError(
        head + f"shorten it to at most {length} tokens" + (", one at a time" if rows > 1 else "")
    )


def largest(fits: Callable[[int], bool], high: int, low: int = 1) -> int:
    """The largest n in [low, high] with fits(n) (fits(low) holds, fits is monotone)."""
    while low < high:  # by hand: bisect's key= needs 3.10, and the doctor runs on 3.9
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
