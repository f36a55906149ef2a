"""The backend contract (`Backend`: what differs between frameworks) and batched encoding,
written once on top of it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from athena.backends import batching
from athena.errors import BackendMissing, LoadError, first_line
from athena.source import ModelSource

if TYPE_CHECKING:  # numpy is imported by the backends, not by `import athena.backends.base`
    import numpy as np

BackendName = Literal["mlx", "transformers"]


@dataclass(frozen=True)
class LoadOptions:
    """How to build the model: the dtype (None: the checkpoint's), quantization (mlx), a LoRA
    adapter folder (mlx-lm format on mlx, PEFT on transformers), torch's device ("cpu", "mps"),
    and config.json as the preflight read it (`tokenizer_kwargs`)."""

    dtype: str | None = None
    quantize_bits: int | None = None
    group_size: int = 64
    router_bits: int = 8  # OLMoE's router (mlp.gate) when quantizing: see backends/quantize.py
    adapter: Path | None = None
    device: str = "cpu"
    config: Mapping[str, Any] | None = None


def tokenizer_kwargs(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """`config=` for AutoTokenizer from config.json as the preflight read it (else it builds
    the model's config again to find the tokenizer's class: 1.1 ms of its 1.8 on `tiny`); {}
    if transformers cannot build it, and AutoTokenizer reads the file and says what is wrong."""
    from transformers import AutoConfig

    with suppress(Exception):
        return {"config": AutoConfig.for_model(**config)} if config else {}
    return {}


@dataclass(frozen=True)
class Sampling:
    """How to pick the next token: greedy (argmax) at temperature 0."""

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


class Backend(Protocol):
    """What a backend module provides (mypy checks both against it); `model` and `tokenizer`
    are the backend's own objects. MAX_PADDING and MAX_BATCH_TOKENS shape an encode batch
    (athena.backends.batching: what a padded token costs differs by framework)."""

    @property
    def MAX_PADDING(self) -> float | None: ...
    @property
    def MAX_BATCH_TOKENS(self) -> int | None: ...

    # (model, tokenizer) from `source.folder`; LoadError (one sentence) on any failure.
    def load(self, source: ModelSource, options: LoadOptions) -> tuple[Any, Any]: ...
    # The generated ids, end-of-sequence excluded, as the framework produces them; `stream`:
    # each as soon as it exists (else as the framework's own generate call, in this thread).
    def generate_ids(
        self,
        model: Any,
        tokenizer: Any,
        prompt_ids: list[int],
        sampling: Sampling,
        *,
        stream: bool = False,
    ) -> Iterator[int]: ...
    # (rows, hidden) float32: the final hidden state (after the final norm) of a right-padded
    # (rows, length) batch, mean-pooled where `mask` is 1.
    def pooled(self, model: Any, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray: ...
    # (len(token_ids), vocab) float32 next-token logits of one sequence.
    def logits(self, model: Any, token_ids: list[int]) -> np.ndarray: ...
    def max_positions(self, model: Any) -> int | None: ...
    # Where the model computes: torch's "cpu" or "mps", mlx's "cpu" or "gpu".
    def device(self, model: Any) -> str: ...
    def hidden_size(self, model: Any) -> int: ...
    def forward_context(self, model: Any) -> AbstractContextManager[Any]: ...
    # Give back the memory the framework keeps for freed arrays on `device` (OLMoEModel.unload).
    def release(self, device: str) -> None: ...


def import_framework(names: tuple[str, ...], install: str, what: str, reinstall: str) -> list[Any]:
    """Import `names`; BackendMissing when a package is not installed (`install`: how to
    install it), LoadError when `what` is installed but fails to import (`reinstall`)."""
    try:
        return [importlib.import_module(name) for name in names]
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in {name.split(".")[0] for name in names}:
            raise BackendMissing(f"{error.name} is not installed ({install})") from None
        broken: ImportError = error
    except ImportError as error:
        broken = error
    raise LoadError(
        f"{what} installed but failed to import ({first_line(broken)}); {reinstall}"
    ) from None


def encode(
    backend: Backend,
    model: Any,
    tokenizer: Any,
    ids: list[np.ndarray],
    *,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(ids), hidden) float32 in input order: the texts' (already tokenized and checked)
    ids in length-sorted, right-padded batches (athena.backends.batching)."""
    with backend.forward_context(model):
        return batching.run_batches(
            ids,
            batch_size,
            backend.hidden_size(model),
            lambda tokens, mask: backend.pooled(model, tokens, mask),
            pad=batching.pad_id(tokenizer),
            on_batch=on_batch,
            max_padding=backend.MAX_PADDING,
            max_tokens=backend.MAX_BATCH_TOKENS,
        )
