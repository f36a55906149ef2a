"""OLMoE for ATHENA: mlx-lm first (Apple Silicon), transformers + torch as the fallback.

    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(OLMoEConfig(model_name="path/to/olmoe"))
    if model.load():                       # False (and a logged reason) if it could not load
        print(model.backend)               # "mlx" or "transformers"
        print(model.generate("Hello", max_tokens=20, temperature=0.0))
        vector = model.encode("Hello")     # numpy (hidden,), mean-pooled final hidden state

Importing this module imports neither mlx, mlx_lm, transformers nor torch; `MLX_AVAILABLE`
is found with importlib.util.find_spec and the backends are imported by `load()`.
`MemoryActionHead` (a torch.nn.Module) is built on first access of the name.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena import modellock, source
from athena.errors import BackendMissing, LoadError, OversizeError, SourceError, first_line
from athena.models.config import (  # re-exported: `from athena.models.olmoe import OLMoEConfig`
    DEFAULT_MODEL,  # noqa: F401 (re-exported)
    DTYPES,  # noqa: F401 (re-exported)
    GROUP_SIZES,  # noqa: F401 (re-exported)
    QUANTIZE_BITS,  # noqa: F401 (re-exported)
    SEED_RANGE,
    OLMoEConfig,
    check_value,
    is_int,
    is_number,
    is_seed,
)
from athena.models.head import head_class, new_head

if TYPE_CHECKING:  # numpy and the backends are imported where used: the import stays cheap
    import numpy as np

    from athena.backends.base import Backend, BackendName, Sampling
    from athena.preflight import Preflight

logger = logging.getLogger(__name__)

# Patchable by tests; found without importing mlx or mlx_lm.
MLX_AVAILABLE: bool = (
    importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None
)

NO_BACKEND = "No inference backend available (mlx-lm and transformers both missing)"


class OLMoEModel:
    """OLMoE behind one interface, on mlx-lm or transformers.

    After `load()`: `backend` is "mlx" or "transformers", `is_loaded` is True, `model` and
    `tokenizer` are the backend's objects, and `action_head` is a MemoryActionHead on the
    transformers path (None on mlx). If loading fails, `load()` returns False, logs why and
    keeps the sentence in `load_error`. (`_backend` and `_is_loaded` are the seed's names of
    `backend` and `is_loaded`.)
    """

    def __init__(self, config: OLMoEConfig | None = None) -> None:
        if config is not None and not isinstance(config, OLMoEConfig):
            raise TypeError(
                f"OLMoEModel takes an OLMoEConfig, got {type(config).__name__}; e.g. "
                "OLMoEModel(OLMoEConfig(model_name='path/to/olmoe'))"
            )
        self.config = config if config is not None else OLMoEConfig()
        self.model: Any = None
        self.tokenizer: Any = None
        self.action_head: Any = None
        self.backend: str | None = None
        self.is_loaded = False
        self.load_error: str | None = None
        self.last_action_logits: np.ndarray | None = None
        self.preflight: Preflight | None = None  # what the preflight found for this load

    # The seed's private names, kept as the same values.
    @property
    def _backend(self) -> str | None:
        return self.backend

    @property
    def _is_loaded(self) -> bool:
        return self.is_loaded

    # -- loading -------------------------------------------------------------------------

    def load(self, lora_path: str | os.PathLike[str] | None = None) -> bool:
        """Load with mlx-lm if available and wanted, else (or if that fails) transformers.

        Never raises for a bad model, folder, adapter or argument: False, with the one
        sentence that says why logged and kept in `load_error`."""
        self._reset()
        try:
            self._load(lora_path)
        except LoadError as error:
            return self._fail(str(error))
        except Exception as error:  # a case no check foresaw: still one sentence
            logger.debug("load() failed unexpectedly", exc_info=True)
            return self._fail(
                f"could not load {self.config.model_name} ({first_line(error)}); if the "
                "folder is sound, this is a bug in athena: please report it"
            )
        return True

    def _load(self, lora_path: object) -> None:
        config = self.config
        given = lora_path if lora_path is not None else config.lora_path
        adapter = _adapter_folder(given)
        mlx_missing = not MLX_AVAILABLE
        mlx_reason: str | None = None
        if MLX_AVAILABLE and config.use_mlx:
            name = config.mlx_model_path or config.model_name
            logger.info("Loading OLMoE via mlx-lm: %s", name)
            try:
                self._load_with("mlx", name, adapter)
                return
            except BackendMissing as error:
                mlx_missing, mlx_reason = True, str(error)
            except LoadError as error:
                if isinstance(error, SourceError) and name == config.model_name and not adapter:
                    raise  # transformers would read the same folder
                if isinstance(error, OversizeError) and not error.fallback_fits:
                    raise  # transformers would not fit either
                mlx_reason = str(error)
                self._reset()
            if not config.allow_fallback:
                raise LoadError(str(mlx_reason))
            logger.warning("mlx-lm failed, falling back to transformers: %s", mlx_reason)
        elif config.use_mlx:
            logger.info("mlx-lm is not installed; using transformers")

        logger.info("Loading OLMoE via transformers: %s", config.model_name)
        try:
            self._load_with("transformers", config.model_name, adapter)
        except BackendMissing as error:
            if mlx_missing:
                raise LoadError(NO_BACKEND) from None
            if mlx_reason is not None:
                raise LoadError(f"mlx-lm failed ({mlx_reason}) and {error}") from None
            raise LoadError(f"{error}; or set use_mlx=True to use mlx-lm") from None

    def _load_with(self, backend: BackendName, name: str, adapter: Path | None) -> None:
        """The one load pipeline: the name is located once (a hub id fetched into the cache),
        the preflight checks that folder, then the backend builds it."""
        from athena import preflight
        from athena.backends import backend_module
        from athena.backends.base import LoadOptions

        config = self.config
        revision = config.revision if name == config.model_name else None
        located = modellock.locate(name, revision=revision)  # what models.lock pins, verified
        self.preflight = preflight.check_load(
            located,
            backend=backend,
            dtype=config.dtype,
            quantize_bits=config.quantize_bits,
            group_size=config.quantize_group_size,
            router_bits=config.router_bits,
            allow_oversize=config.allow_oversize,
            mlx_available=MLX_AVAILABLE,  # its options are worth naming on either path
        )
        options = LoadOptions(
            dtype=config.dtype,
            quantize_bits=config.quantize_bits,
            group_size=config.quantize_group_size,
            router_bits=config.router_bits,
            adapter=adapter,
        )
        self.model, self.tokenizer = backend_module(backend).load(located, options)
        if backend == "transformers":
            self.action_head = self._make_action_head(int(self.model.config.hidden_size))
        self.backend, self.is_loaded = backend, True

    def unload(self) -> None:
        """Drop the model, its tokenizer and head, and give their memory back to the system
        (the framework's cache of freed buffers included); `load()` may be called again."""
        backend = self.backend
        self._reset()
        gc.collect()
        if backend is not None:
            from athena.backends import backend_module

            backend_module(backend).release()  # type: ignore[arg-type]

    def _reset(self) -> None:
        self.model = self.tokenizer = self.action_head = None
        self.backend, self.is_loaded, self.load_error = None, False, None
        self.last_action_logits = self.preflight = None

    def _fail(self, reason: str) -> bool:
        self._reset()
        self.load_error = reason
        logger.error("%s", reason)
        return False

    def _make_action_head(self, hidden_size: int) -> Any:
        """heads.new_head(seed): the weights an MLX head from the same seed has."""
        head = new_head(
            hidden_size,
            seed=self.config.seed,
            framework="torch",
            num_actions=self.config.num_memory_actions,
            hidden_dim=self.config.action_head_hidden,
        )
        return head.eval()

    # -- inference -----------------------------------------------------------------------

    def _loaded(self) -> tuple[Backend, Preflight]:
        if not self.is_loaded or self.backend is None or self.preflight is None:
            raise RuntimeError("OLMoEModel is not loaded; call load() and check that it is True")
        from athena.backends import backend_module

        return backend_module(self.backend), self.preflight  # type: ignore[arg-type]

    def _sampling(
        self, max_tokens: int | None, temperature: float | None, seed: int | None
    ) -> Sampling:
        """The config's sampling values, overridden per call (checked like the config's)."""
        from athena.backends.base import Sampling

        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        temperature = self.config.temperature if temperature is None else temperature
        seed = self.config.seed if seed is None else seed
        check_value(
            "max_tokens", max_tokens, is_int(max_tokens) and max_tokens >= 1, "an integer >= 1"
        )
        check_value(
            "temperature",
            temperature,
            is_number(temperature) and 0 <= temperature < float("inf"),
            "a number >= 0 (0 is greedy)",
        )
        check_value("seed", seed, is_seed(seed), SEED_RANGE)
        return Sampling(max_tokens, float(temperature), float(self.config.top_p), seed)

    def _prompt(self, prompt: object, sampling: Sampling) -> list[int]:
        """The prompt's ids, checked once for every path (generate, stream, the CLI): a str,
        not empty, within the model's positions, and its working memory (with the tokens to
        generate) fits beside the model. ValueError/TypeError: one sentence."""
        _backend, checked = self._loaded()
        _check_text("prompt", prompt)
        assert isinstance(prompt, str)
        ids = self.tokenize(prompt)
        checked.check_input(len(ids), new_tokens=sampling.max_tokens, chunked=self.backend == "mlx")
        return ids

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The completion of `prompt` (without the prompt). Greedy at temperature 0."""
        from athena.backends import base

        backend, _ = self._loaded()
        sampling = self._sampling(max_tokens, temperature, seed)
        ids = self._prompt(prompt, sampling)
        return base.generate(backend, self.model, self.tokenizer, ids, sampling)

    def generate_ids(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """The generated token ids of the completion (end-of-sequence excluded)."""
        backend, _ = self._loaded()
        sampling = self._sampling(max_tokens, temperature, seed)
        ids = self._prompt(prompt, sampling)
        return list(backend.generate_ids(self.model, self.tokenizer, ids, sampling))

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the completion in pieces as it is generated; "".join() equals generate().

        The arguments are checked here, before the first piece is asked for."""
        from athena.backends import base

        backend, _ = self._loaded()
        sampling = self._sampling(max_tokens, temperature, seed)
        ids = self._prompt(prompt, sampling)
        return base.stream(backend, self.model, self.tokenizer, ids, sampling)

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
        from athena.backends import base, batching

        backend, checked = self._loaded()
        single = isinstance(text, str)
        texts = _texts(text)
        batch_size = batching.check_batch_size(batch_size)
        for name, value in (("truncate", truncate), ("show_progress", show_progress)):
            if not isinstance(value, bool):
                raise TypeError(f"encode({name}={value!r}) is not allowed; use True or False")
        ids = batching.token_ids(
            self.tokenizer,
            texts,
            limit=backend.max_positions(self.model),
            truncate=truncate,
            single=single,
        )
        longest = max(len(row) for row in ids)
        checked.check_input(longest, what="the longest text", rows=min(batch_size, len(texts)))
        with progress(len(texts), show_progress, on_batch) as report:
            vectors = base.encode(
                backend, self.model, self.tokenizer, ids, batch_size=batch_size, on_batch=report
            )
        if self.backend == "transformers":
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

    def logits(self, token_ids: Iterable[int]) -> np.ndarray:
        """(len(token_ids), vocab) float32 next-token logits of one sequence (for checks)."""
        import numpy as np

        backend, checked = self._loaded()
        ids = _token_ids(token_ids, int(checked.info.config["vocab_size"]))
        checked.check_input(len(ids), what="token_ids")
        return np.asarray(backend.logits(self.model, ids))

    def tokenize(self, text: str) -> list[int]:
        """The token ids the backend feeds the model for `text`."""
        self._loaded()
        _check_text("text", text)
        return [int(t) for t in self.tokenizer.encode(text)]


@contextlib.contextmanager
def progress(
    total: int | None, show: bool, on_batch: Callable[[int], None] | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A callback to tell after each batch how many texts it finished: the caller's `on_batch`
    and, if `show` and stderr is a terminal, a tqdm bar of `total` texts on stderr (`total`
    None: a count without an end). The bar starts after the first batch, and only if that
    batch left texts to do: the batches are planned by length and tokens, so their number is
    known only as they come (tqdm is imported only then)."""
    if not (show and sys.stderr.isatty()):
        yield on_batch
        return
    bar: Any = None
    finished = 0

    def report(done: int) -> None:
        nonlocal bar, finished
        finished += done
        if bar is not None:
            bar.update(done)
        elif total is None or finished < total:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=finished, unit="text", desc="encode", file=sys.stderr)
        if on_batch is not None:
            on_batch(done)

    try:
        yield report
    finally:
        if bar is not None:
            bar.close()


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty; pass at least one character")


def _texts(text: object) -> list[str]:
    """encode()'s input as a list of non-empty str: a str, or an ordered collection of str
    (a list, a tuple, a generator). A dict, a set, bytes or None is a TypeError that says so."""
    if isinstance(text, str):
        texts: list[object] = [text]
    elif isinstance(text, bytes | bytearray | memoryview):
        raise TypeError(
            f"encode() takes text, got {type(text).__name__}; decode it first "
            "(e.g. data.decode('utf-8'))"
        )
    elif isinstance(text, Mapping | Set) or not isinstance(text, Iterable):
        raise TypeError(
            f"encode() takes a str or a list of str, got {type(text).__name__}"
            + ("; pass list(d.values()) for a dict's texts" if isinstance(text, Mapping) else "")
        )
    else:
        texts = list(text)
    if not texts:
        raise ValueError("encode() got an empty list; pass a text or a list of texts")
    single = isinstance(text, str)
    for index, item in enumerate(texts):
        _check_text("text" if single else f"texts[{index}]", item)
    return texts  # type: ignore[return-value]


def _token_ids(token_ids: object, vocab: int) -> list[int]:
    """logits()'s input as a list of ids in [0, vocab); TypeError/ValueError: one sentence."""
    if isinstance(token_ids, str | bytes) or not isinstance(token_ids, Iterable):
        raise TypeError(f"token_ids must be a list of int, got {type(token_ids).__name__}")
    ids = list(token_ids)
    if not ids:
        raise ValueError("token_ids is empty; pass at least one token id")
    for index, token in enumerate(ids):
        if not is_int(token) and type(token).__name__ not in ("int32", "int64"):
            raise TypeError(f"token_ids[{index}] must be an int, got {type(token).__name__}")
        if not 0 <= int(token) < vocab:
            raise ValueError(
                f"token_ids[{index}]={int(token)} is outside this model's vocabulary "
                f"(0 to {vocab - 1}); use ids from model.tokenize()"
            )
    return [int(token) for token in ids]


def _adapter_folder(value: object) -> Path | None:
    """The LoRA adapter folder to use (None: none), checked: a path to an existing folder.
    (A value from OLMoEConfig has had its type checked; load()'s argument has not.)"""
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not (isinstance(value, str) and value.strip()):
        raise LoadError(
            f"load(lora_path={value!r}) is not allowed; use None or a LoRA adapter folder path"
        )
    folder = Path(value).expanduser()
    try:
        found = folder.is_dir()
    except OSError as error:
        raise source.unreadable(folder, error) from None
    if not found:
        if folder.exists():
            raise SourceError(f"LoRA adapter {folder} is a file; pass the folder that holds it")
        raise SourceError(f"LoRA adapter folder not found: {folder}")
    return folder


def __getattr__(name: str) -> Any:
    if name == "MemoryActionHead":
        return head_class("torch")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
