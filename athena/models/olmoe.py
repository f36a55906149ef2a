"""OLMoE for ATHENA: mlx-lm first (Apple Silicon), transformers + torch as the fallback.

    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(OLMoEConfig(model_name="path/to/olmoe"))
    if model.load():                       # False (and a logged reason) if it could not load
        print(model._backend)              # "mlx" or "transformers"
        print(model.generate("Hello", max_tokens=20, temperature=0.0))
        vector = model.encode("Hello")     # numpy (hidden,), mean-pooled final hidden state

Importing this module imports neither mlx, mlx_lm, transformers nor torch; `MLX_AVAILABLE`
is found with importlib.util.find_spec and the backends are imported by `load()`.
`MemoryActionHead` (a torch.nn.Module) is built on first access of the name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from athena import source
from athena.errors import BackendMissing, LoadError, OversizeError, SourceError
from athena.models.action_head import memory_action_head_class
from athena.models.config import (  # re-exported: `from athena.models.olmoe import OLMoEConfig`
    DEFAULT_MODEL,  # noqa: F401 (re-exported)
    DTYPES,  # noqa: F401 (re-exported)
    GROUP_SIZES,  # noqa: F401 (re-exported)
    QUANTIZE_BITS,  # noqa: F401 (re-exported)
    OLMoEConfig,
    _check,
    _is_int,
    _is_number,
)

if TYPE_CHECKING:  # numpy is imported where it is used: `import athena.models.olmoe` stays cheap
    import numpy as np

logger = logging.getLogger(__name__)

# Patchable by tests; found without importing mlx or mlx_lm.
MLX_AVAILABLE: bool = (
    importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None
)

NO_BACKEND = "No inference backend available (mlx-lm and transformers both missing)"


class OLMoEModel:
    """OLMoE behind one interface, on mlx-lm or transformers.

    After `load()`: `_backend` is "mlx" or "transformers", `_is_loaded` is True, `model` and
    `tokenizer` are the backend's objects, and `action_head` is a MemoryActionHead on the
    transformers path (None on mlx). If loading fails, `load()` returns False, logs why and
    keeps the sentence in `load_error`.
    """

    def __init__(self, config: OLMoEConfig | None = None) -> None:
        self.config = config if config is not None else OLMoEConfig()
        self.model: Any = None
        self.tokenizer: Any = None
        self.action_head: Any = None
        self._backend: str | None = None
        self._is_loaded = False
        self.load_error: str | None = None
        self.last_action_logits: np.ndarray | None = None
        self._preflight: Any = None  # athena.preflight.Preflight of the loaded folder, if read

    # -- loading -------------------------------------------------------------------------

    def load(self, lora_path: str | None = None) -> bool:
        """Load with mlx-lm if available and wanted, else (or if that fails) transformers."""
        config = self.config
        lora = os.fspath(lora_path) if lora_path is not None else config.lora_path
        self._reset()
        mlx_missing = not MLX_AVAILABLE
        mlx_reason: str | None = None
        if MLX_AVAILABLE and config.use_mlx:
            path = config.mlx_model_path or config.model_name
            logger.info("Loading OLMoE via mlx-lm: %s", path)
            try:
                self._load_mlx(path, lora)
                return True
            except BackendMissing as error:
                mlx_missing, mlx_reason = True, str(error)
            except LoadError as error:
                if isinstance(error, SourceError) and path == config.model_name and lora is None:
                    return self._fail(str(error))  # transformers would read the same folder
                if isinstance(error, OversizeError) and not error.fallback_fits:
                    return self._fail(str(error))  # transformers would not fit either
                mlx_reason = str(error)
            if not config.allow_fallback:
                return self._fail(str(mlx_reason))
            logger.warning("mlx-lm failed, falling back to transformers: %s", mlx_reason)
        elif config.use_mlx:
            logger.info("mlx-lm is not installed; using transformers")

        logger.info("Loading OLMoE via transformers: %s", config.model_name)
        try:
            self._load_transformers(config.model_name, lora)
            return True
        except BackendMissing as error:
            if mlx_missing:
                return self._fail(NO_BACKEND)
            if mlx_reason is not None:
                return self._fail(f"mlx-lm failed ({mlx_reason}) and {error}")
            return self._fail(f"{error}; or set use_mlx=True to use mlx-lm")
        except LoadError as error:
            return self._fail(str(error))

    def _reset(self) -> None:
        self.model = self.tokenizer = self.action_head = None
        self._backend, self._is_loaded, self.load_error = None, False, None
        self.last_action_logits = self._preflight = None

    def _fail(self, reason: str) -> bool:
        self._reset()
        self.load_error = reason
        logger.error("%s", reason)
        return False

    def _check_load(self, name: str, backend: str) -> None:
        """The preflight (the athena/preflight/ package): a bad, inconsistent or oversized
        folder is one sentence before the backend is imported or a weight is read."""
        from athena import preflight

        config = self.config
        self._preflight = preflight.check_load(
            name,
            backend=backend,
            dtype=config.dtype,
            quantize_bits=config.quantize_bits,
            group_size=config.quantize_group_size,
            allow_oversize=config.allow_oversize,
            mlx_available=MLX_AVAILABLE,  # its options are worth naming on either path
        )

    def _load_mlx(self, path: str, lora: str | None) -> None:
        self._check_load(path, "mlx")
        from athena.backends import mlx_backend

        self.model, self.tokenizer = mlx_backend.load(
            path,
            dtype=self.config.dtype,
            quantize_bits=self.config.quantize_bits,
            group_size=self.config.quantize_group_size,
            adapter_path=lora,
        )
        self._backend, self._is_loaded, self.action_head = "mlx", True, None

    def _load_transformers(self, name: str, lora: str | None) -> None:
        self._check_load(name, "transformers")
        from athena.backends import transformers_backend

        resolved = source.resolve_source(name)
        model, tokenizer = transformers_backend.load(
            name,
            dtype=self.config.dtype,
            quantize_bits=self.config.quantize_bits,
            local_files_only=resolved.kind == "hub" and source.hub_offline(),
        )
        self.model, self.tokenizer = model, tokenizer
        if lora is not None:
            self._load_lora(lora)
        self.action_head = self._make_action_head(int(model.config.hidden_size))
        self._backend, self._is_loaded = "transformers", True

    def _load_lora(self, lora_path: str) -> None:
        """Merge a PEFT-format LoRA adapter into the transformers model's weights."""
        from athena.backends import transformers_backend

        merged = transformers_backend.merge_lora(self.model, lora_path)
        logger.info("Merged LoRA adapter %s into %d layers", lora_path, merged)

    def _make_action_head(self, hidden_size: int) -> Any:
        import torch

        head_class = memory_action_head_class()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            head = head_class(
                hidden_size,
                num_actions=self.config.num_memory_actions,
                hidden_dim=self.config.action_head_hidden,
            )
        return head.eval()

    # -- inference -----------------------------------------------------------------------

    def _backend_module(self) -> Any:
        if not self._is_loaded:
            raise RuntimeError("OLMoEModel is not loaded; call load() and check that it is True")
        if self._backend == "mlx":
            from athena.backends import mlx_backend

            return mlx_backend
        from athena.backends import transformers_backend

        return transformers_backend

    def _sampling(
        self, max_tokens: int | None, temperature: float | None, seed: int | None
    ) -> dict[str, Any]:
        """The config's sampling values, overridden per call (checked like the config's)."""
        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        temperature = self.config.temperature if temperature is None else temperature
        seed = self.config.seed if seed is None else seed
        _check("max_tokens", max_tokens, _is_int(max_tokens) and max_tokens >= 1, "an integer >= 1")
        _check(
            "temperature",
            temperature,
            _is_number(temperature) and 0 <= temperature < float("inf"),
            "a number >= 0 (0 is greedy)",
        )
        _check("seed", seed, _is_int(seed), "an integer")
        return {
            "max_tokens": max_tokens,
            "temperature": float(temperature),
            "top_p": float(self.config.top_p),
            "seed": seed,
        }

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The completion of `prompt` (without the prompt). Greedy at temperature 0."""
        backend = self._backend_module()
        _check_text("prompt", prompt)
        sampling = self._sampling(max_tokens, temperature, seed)
        self._check_prompt(prompt, sampling["max_tokens"])
        text: str = backend.generate(self.model, self.tokenizer, prompt, **sampling)
        return text

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the completion in pieces as it is generated; "".join() equals generate()."""
        backend = self._backend_module()
        _check_text("prompt", prompt)
        sampling = self._sampling(max_tokens, temperature, seed)
        self._check_prompt(prompt, sampling["max_tokens"])
        pieces = backend.stream(self.model, self.tokenizer, prompt, **sampling)
        for text, _ in pieces:
            if text:
                yield text

    def _check_prompt(self, prompt: str, max_tokens: int) -> None:
        """ValueError (one sentence), never a native crash, for a prompt beyond the model's
        positions or whose working memory would not fit beside the model."""
        if self._preflight is not None:
            self._preflight.check_input(
                len(self.tokenize(prompt)), new_tokens=max_tokens, chunked=self._backend == "mlx"
            )

    def encode(
        self,
        text: str | Iterable[str],
        *,
        batch_size: int = 32,
        truncate: bool = False,
        show_progress: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Mean-pooled final hidden state: shape (hidden,) for a str, (n, hidden) for a list.

        The texts are tokenized once, sorted by length and run `batch_size` at a time
        (right-padded, pooled over the real tokens only); the vectors come back in input order
        and equal one-at-a-time results. Memory is bounded by the batch, not by len(texts).
        A text longer than the model's `max_position_embeddings` raises ValueError unless
        `truncate=True`, which keeps its first tokens. A progress bar goes to stderr when there
        is more than one batch and stderr is a terminal (`show_progress=False`: never);
        `on_batch(n)` is called with the number of texts done after each batch.

        On the transformers path the pooled vectors also go through the MemoryActionHead
        (batch by batch); its logits are kept in `last_action_logits` ((n, num_memory_actions)
        or (num_memory_actions,)).
        """
        from athena.backends import batching

        backend = self._backend_module()
        single = isinstance(text, str)
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("encode() got an empty list; pass a text or a list of texts")
        for index, item in enumerate(texts):
            _check_text("text" if single else f"texts[{index}]", item)
        batch_size = batching.check_batch_size(batch_size)
        batches = -(-len(texts) // batch_size)
        with progress(len(texts), show_progress and batches > 1, on_batch) as report:
            vectors: np.ndarray = backend.encode(
                self.model,
                self.tokenizer,
                texts,
                batch_size=batch_size,
                truncate=truncate,
                single=single,
                on_batch=report,
            )
        if self._backend == "transformers":
            actions = self._action_logits(vectors, batch_size)
            self.last_action_logits = actions[0] if single else actions
        return vectors[0] if single else vectors

    def _action_logits(self, vectors: np.ndarray, batch_size: int) -> np.ndarray:
        """The MemoryActionHead's logits of pooled vectors, `batch_size` rows at a time."""
        import numpy as np
        import torch

        out = np.empty((len(vectors), self.config.num_memory_actions), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(vectors), batch_size):
                rows = torch.from_numpy(vectors[start : start + batch_size])
                out[start : start + batch_size] = self.action_head(rows).numpy()
        return out

    def logits(self, token_ids: list[int]) -> np.ndarray:
        """(len(token_ids), vocab) float32 next-token logits of one sequence (for checks)."""
        import numpy as np

        return np.asarray(self._backend_module().logits(self.model, list(token_ids)))

    def tokenize(self, text: str) -> list[int]:
        """The token ids the backend feeds the model for `text`."""
        self._backend_module()
        return [int(t) for t in self.tokenizer.encode(text)]


@contextlib.contextmanager
def progress(
    total: int | None, show: bool, on_batch: Callable[[int], None] | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A callback to tell after each batch how many texts it finished: the caller's `on_batch`
    and, if `show` and stderr is a terminal, a tqdm bar of `total` texts on stderr (tqdm is
    imported only then; `total` None: a count without an end)."""
    if not (show and sys.stderr.isatty()):
        yield on_batch
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="text", desc="encode", file=sys.stderr) as bar:

        def report(done: int) -> None:
            bar.update(done)
            if on_batch is not None:
                on_batch(done)

        yield report


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty; pass at least one character")


def __getattr__(name: str) -> Any:
    if name == "MemoryActionHead":
        return memory_action_head_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
