"""OLMoE for ATHENA: mlx-lm first, transformers + torch as the fallback (README.md). Importing
it imports no backend; `MemoryActionHead` (torch) is built on first access of the name."""

from __future__ import annotations

import gc
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena import modellock, preflight, source
from athena.backends import backend_module, base, batching, completion
from athena.backends.base import LoadOptions, Sampling
from athena.errors import BackendMissing, LoadError, OversizeError, SourceError, first_line
from athena.host import installed_backends, mps_dtype_problem, torch_device
from athena.models.config import SEED_RANGE, OLMoEConfig, is_int, is_number, is_seed
from athena.models.head import (
    HeadError,
    HeadShape,
    head_class,
    head_from_weights,
    head_logits,
    load_weights,
    new_head,
)

if TYPE_CHECKING:  # numpy and the backends are imported where used: the import stays cheap
    import numpy as np

    from athena.backends.base import Backend, BackendName

logger = logging.getLogger(__name__)

NO_BACKEND = "No inference backend available (mlx-lm and transformers both missing)"


class OLMoEModel:
    """OLMoE behind one interface, on mlx-lm or transformers. After `load()`: `backend`
    ("mlx" or "transformers"), `device` (torch's "cpu" or "mps", mlx's "cpu" or "gpu"),
    `model` and `tokenizer` (the backend's), `action_head` (the one
    at `config.action_head_path`, its sha256 in `action_head_sha256`; else a seeded one on
    transformers, none on mlx); a failed load keeps its sentence in `load_error`."""

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
        self.action_head_sha256: str | None = None
        self.backend: str | None = None
        self.device: str | None = None  # where the model computes: "cpu" or "mps" (torch)
        self.is_loaded = False
        self.load_error: str | None = None
        self.last_action_logits: np.ndarray | None = None
        self.preflight: preflight.Preflight | None = None  # what the preflight found for this load

    # The seed's private names, kept as the same values.
    @property
    def _backend(self) -> str | None:
        return self.backend

    @property
    def _is_loaded(self) -> bool:
        return self.is_loaded

    def load(self, lora_path: str | os.PathLike[str] | None = None) -> bool:
        """Load with mlx-lm if available and wanted, else (or if that fails) transformers.
        Never raises for bad input: False, the sentence why logged and kept in `load_error`."""
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
        mlx_missing = "mlx" not in installed_backends()
        mlx_reason: str | None = None
        if config.use_mlx and not mlx_missing:
            name = config.mlx_model_path or config.model_name
            logger.info("Loading OLMoE via mlx-lm: %s", name)
            try:
                self._load_with("mlx", name, adapter, mlx_installed=True)
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
            self._load_with("transformers", config.model_name, adapter, not mlx_missing)
        except BackendMissing as error:
            if mlx_missing:
                raise LoadError(NO_BACKEND) from None
            if mlx_reason is not None:
                raise LoadError(f"mlx-lm failed ({mlx_reason}) and {error}") from None
            raise LoadError(f"{error}; or set use_mlx=True to use mlx-lm") from None

    def _load_with(
        self, backend: BackendName, name: str, adapter: Path | None, mlx_installed: bool
    ) -> None:
        """Locate the name once, preflight that folder, then let the backend build it."""
        config = self.config
        revision = config.revision if name == config.model_name else None
        located = modellock.locate(name, revision=revision)  # what models.lock pins, verified
        device = torch_device(config.device) if backend == "transformers" else "cpu"
        self.preflight = preflight.check_load(
            located,
            backend=backend,
            dtype=config.dtype,
            quantize_bits=config.quantize_bits,
            group_size=config.quantize_group_size,
            router_bits=config.router_bits,
            allow_oversize=config.allow_oversize,
            mlx_available=mlx_installed,  # its options are worth naming on either path
            device=device,
        )
        dtype = self.preflight.estimate.dtype
        if device == "mps" and (problem := mps_dtype_problem(dtype)) is not None:
            raise LoadError(problem)
        head, sha256 = self._make_action_head(backend, name, device)
        options = LoadOptions(
            dtype=config.dtype,
            quantize_bits=config.quantize_bits,
            group_size=config.quantize_group_size,
            router_bits=config.router_bits,
            adapter=adapter,
            device=device,
            config=self.preflight.info.config,
        )
        module = backend_module(backend)
        self.model, self.tokenizer = module.load(located, options)
        self.action_head, self.action_head_sha256 = head, sha256
        self.backend, self.device, self.is_loaded = backend, module.device(self.model), True

    def unload(self) -> None:
        """Drop the model, tokenizer and head and give their memory back; `load()` may follow."""
        backend, device = self.backend, self.device
        self._reset()
        gc.collect()
        if backend is not None:
            backend_module(backend).release(device or "cpu")  # type: ignore[arg-type]

    def _reset(self) -> None:
        self.model = self.tokenizer = self.action_head = self.action_head_sha256 = None
        self.backend, self.device, self.is_loaded, self.load_error = None, None, False, None
        self.last_action_logits = self.preflight = None

    def _fail(self, reason: str) -> bool:
        self._reset()
        self.load_error = reason
        logger.error("%s", reason)
        return False

    def _make_action_head(
        self, backend: BackendName, name: str, device: str
    ) -> tuple[Any, str | None]:
        """The head and its file's sha256: the one at action_head_path, checked against the
        model, else on transformers a new seeded one; on the model's `device`."""
        config, path = self.config, self.config.action_head_path
        assert self.preflight is not None
        hidden_size = int(self.preflight.info.config["hidden_size"])
        framework = "mlx" if backend == "mlx" else "torch"
        if path is None:
            if backend == "mlx":
                return None, None
            shape = HeadShape(hidden_size, config.num_memory_actions, config.action_head_hidden)
            head = new_head(**vars(shape), seed=config.seed, framework="torch")
            return head.to(device).eval(), None
        try:
            weights = load_weights(path)
        except HeadError as error:
            raise SourceError(str(error)) from None
        shape = HeadShape.of(weights)
        if (shape.hidden_size, shape.num_actions) != (hidden_size, config.num_memory_actions):
            raise SourceError(
                f"the action head {path} takes a hidden size of {shape.hidden_size} and gives "
                f"{shape.num_actions} actions, but {name} has a hidden size of {hidden_size} "
                f"and num_memory_actions is {config.num_memory_actions}; pass a head trained "
                "on this model (athena train-head --model ...) with that many actions"
            )
        head = head_from_weights(weights, framework)
        head = head.eval() if framework == "mlx" else head.to(device).eval()
        return head, source.file_digest(Path(path))["sha256"]

    def _loaded(self) -> tuple[Backend, preflight.Preflight]:
        if not self.is_loaded or self.backend is None or self.preflight is None:
            raise RuntimeError("OLMoEModel is not loaded; call load() and check that it is True")
        return backend_module(self.backend), self.preflight  # type: ignore[arg-type]

    def _tokens(
        self,
        call: str,
        prompt: object,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
        stream: bool = False,
    ) -> Iterator[int]:
        """The generated ids of one generate/stream call, its arguments checked first."""
        backend, checked = self._loaded()
        max_tokens = self.config.max_tokens if max_tokens is None else max_tokens
        temperature = self.config.temperature if temperature is None else temperature
        seed = self.config.seed if seed is None else seed
        for name, value, ok, allowed in (
            ("max_tokens", max_tokens, is_int(max_tokens) and max_tokens >= 1, "an integer >= 1"),
            ("temperature", temperature, is_number(temperature) and 0 <= temperature < math.inf,
             "a number >= 0 (0 is greedy)"),
            ("seed", seed, is_seed(seed), SEED_RANGE),
        ):  # fmt: skip
            if not ok:
                raise ValueError(f"{call}({name}={value!r}) is not allowed; use {allowed}")
        ids = self.tokenize(_check_text("prompt", prompt))
        checked.check_input(len(ids), new_tokens=max_tokens, chunked=self.backend == "mlx")
        sampling = Sampling(max_tokens, float(temperature), float(self.config.top_p), seed)
        return backend.generate_ids(self.model, self.tokenizer, ids, sampling, stream=stream)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> str:
        """The completion of `prompt` (without the prompt): exactly the tokenizer's decode of
        the generated ids (athena.backends.completion). Greedy at temperature 0."""
        tokens = self._tokens("generate", prompt, max_tokens, temperature, seed)
        return completion.decode(self.tokenizer, list(tokens))

    def generate_ids(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> list[int]:
        """The generated token ids of the completion (end-of-sequence excluded)."""
        return list(self._tokens("generate_ids", prompt, max_tokens, temperature, seed))

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> Iterator[str]:
        """Yield the completion in pieces (checked before the first); "".join() is generate()."""
        tokens = self._tokens("stream", prompt, max_tokens, temperature, seed, stream=True)
        return (text for text, _ in completion.stream_pieces(self.tokenizer, tokens) if text)

    def encode(
        self,
        text: str | Iterable[str],
        *,
        batch_size: int = 32,
        truncate: bool = False,
        show_progress: bool = True,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Mean-pooled final hidden state: (hidden,) for a str, (n, hidden) for a list, in
        input order, as one at a time, in length-sorted batches of at most `batch_size`. A text
        beyond max_position_embeddings is a ValueError unless `truncate` (first tokens kept).
        A progress bar on a terminal unless `show_progress=False`; `on_batch(n)` after each
        batch. An attached action head's logits are kept in `last_action_logits`."""
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
        with batching.progress(len(texts), show_progress, on_batch) as report:
            vectors = base.encode(
                backend, self.model, self.tokenizer, ids, batch_size=batch_size, on_batch=report
            )
        if self.action_head is not None:  # its logits, `batch_size` rows at a time
            import numpy as np

            rows = range(0, len(vectors), batch_size)
            actions = np.concatenate(
                [head_logits(self.action_head, vectors[i : i + batch_size]) for i in rows]
            )
            self.last_action_logits = actions[0] if single else actions
        return vectors[0] if single else vectors

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
        return [int(t) for t in self.tokenizer.encode(_check_text("text", text))]


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty; pass at least one character")
    return value


def _texts(text: object) -> list[str]:
    """encode()'s input (a str or an ordered collection of str) as a list of non-empty str."""
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
    """The LoRA adapter folder to use (None: none), checked to be an existing folder."""
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
