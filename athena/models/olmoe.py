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

import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from athena.backends import BackendMissing, LoadError, SourceError, source
from athena.preflight import OversizeError

if TYPE_CHECKING:  # numpy is imported where it is used: `import athena.models.olmoe` stays cheap
    import numpy as np

logger = logging.getLogger(__name__)

# Patchable by tests; found without importing mlx or mlx_lm.
MLX_AVAILABLE: bool = (
    importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None
)

DEFAULT_MODEL = "allenai/OLMoE-1B-7B-0924"
DTYPES = ("float32", "float16", "bfloat16")
QUANTIZE_BITS = (4, 8)
GROUP_SIZES = (32, 64, 128)
NO_BACKEND = "No inference backend available (mlx-lm and transformers both missing)"


@dataclass
class OLMoEConfig:
    """What to load and how to run it. Wrong values raise ValueError on construction."""

    model_name: str = DEFAULT_MODEL  # hub id ("org/name") or local folder
    use_mlx: bool = True  # use mlx-lm when it is installed
    allow_fallback: bool = True  # if the mlx-lm load fails, try transformers
    mlx_model_path: str | None = None  # an mlx-specific folder (e.g. converted); else model_name
    lora_path: str | None = None  # LoRA adapter folder (mlx-lm format on mlx, PEFT on torch)
    dtype: str | None = None  # None: the checkpoint's (float32 on mlx's CPU for MoE)
    quantize_bits: int | None = None  # None, 4 or 8: quantize after loading (mlx path)
    quantize_group_size: int = 64
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
        _check(
            "model_name",
            self.model_name,
            isinstance(self.model_name, str) and bool(self.model_name.strip()),
            "a hub id or a local folder",
        )
        for name in ("use_mlx", "allow_fallback", "allow_oversize"):
            value = getattr(self, name)
            _check(name, value, isinstance(value, bool), "True or False")
        for name in ("mlx_model_path", "lora_path"):
            value = getattr(self, name)
            ok = value is None or (isinstance(value, str) and bool(value.strip()))
            _check(name, value, ok, "None or a folder path")
        _check("dtype", self.dtype, self.dtype is None or self.dtype in DTYPES, _one_of(DTYPES))
        _check(
            "quantize_bits",
            self.quantize_bits,
            self.quantize_bits is None
            or (_is_int(self.quantize_bits) and self.quantize_bits in QUANTIZE_BITS),
            "None, 4 or 8",
        )
        _check(
            "quantize_group_size",
            self.quantize_group_size,
            _is_int(self.quantize_group_size) and self.quantize_group_size in GROUP_SIZES,
            "32, 64 or 128",
        )
        _check(
            "max_tokens",
            self.max_tokens,
            _is_int(self.max_tokens) and self.max_tokens >= 1,
            "an integer >= 1",
        )
        _check(
            "temperature",
            self.temperature,
            _is_number(self.temperature) and 0 <= self.temperature < float("inf"),
            "a number >= 0 (0 is greedy)",
        )
        _check(
            "top_p",
            self.top_p,
            _is_number(self.top_p) and 0 < self.top_p <= 1,
            "a number in (0, 1]",
        )
        _check("seed", self.seed, _is_int(self.seed), "an integer")
        _check(
            "num_memory_actions",
            self.num_memory_actions,
            _is_int(self.num_memory_actions) and self.num_memory_actions >= 1,
            "an integer >= 1",
        )
        _check(
            "action_head_hidden",
            self.action_head_hidden,
            _is_int(self.action_head_hidden) and self.action_head_hidden >= 1,
            "an integer >= 1",
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(values: tuple[str, ...]) -> str:
    return "None or one of " + ", ".join(repr(v) for v in values)


def _check(field: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"OLMoEConfig.{field}={value!r} is not allowed; use {allowed}")


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
        """The preflight (athena/preflight.py): a bad, inconsistent or oversized folder is one
        sentence before the backend is imported or a weight is read."""
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

    def encode(self, text: str | list[str]) -> np.ndarray:
        """Mean-pooled final hidden state: shape (hidden,) for a str, (n, hidden) for a list.

        On the transformers path the pooled vectors also go through the MemoryActionHead;
        its logits are kept in `last_action_logits` ((n, num_memory_actions) or (actions,)).
        """
        import numpy as np

        backend = self._backend_module()
        texts = [text] if isinstance(text, str) else list(text)
        if not texts:
            raise ValueError("encode() got an empty list; pass a text or a list of texts")
        for item in texts:
            _check_text("text", item)
        if self._backend == "mlx":
            vectors = np.asarray(backend.encode(self.model, self.tokenizer, texts))
        else:
            import torch

            pooled = backend.encode(self.model, self.tokenizer, texts)
            with torch.no_grad():
                actions = self.action_head(pooled)
            vectors = pooled.numpy()
            self.last_action_logits = (
                actions.numpy()[0] if isinstance(text, str) else actions.numpy()
            )
        vectors = vectors.astype(np.float32, copy=False)
        return vectors[0] if isinstance(text, str) else vectors

    def logits(self, token_ids: list[int]) -> np.ndarray:
        """(len(token_ids), vocab) float32 next-token logits of one sequence (for checks)."""
        import numpy as np

        return np.asarray(self._backend_module().logits(self.model, list(token_ids)))

    def tokenize(self, text: str) -> list[int]:
        """The token ids the backend feeds the model for `text`."""
        self._backend_module()
        return [int(t) for t in self.tokenizer.encode(text)]


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} is empty; pass at least one character")


@functools.cache
def memory_action_head_class() -> type:
    """Build MemoryActionHead on first use, so importing this module does not import torch."""
    import torch
    from torch import nn

    class MemoryActionHead(nn.Module):
        """ATHENA's memory-action head: a pooled hidden state (batch, hidden) -> logits
        (batch, num_actions), through LayerNorm -> Linear -> GELU -> Linear."""

        def __init__(self, hidden_size: int, num_actions: int = 4, hidden_dim: int = 256) -> None:
            super().__init__()
            self.hidden_size, self.num_actions = hidden_size, num_actions
            self.net = nn.Sequential(
                nn.LayerNorm(hidden_size),
                nn.Linear(hidden_size, hidden_dim),
                nn.GELU(),
                nn.Linear(hidden_dim, num_actions),
            )

        def forward(self, pooled: torch.Tensor) -> torch.Tensor:
            return self.net(pooled.float())

    MemoryActionHead.__module__ = __name__
    return MemoryActionHead


def __getattr__(name: str) -> Any:
    if name == "MemoryActionHead":
        return memory_action_head_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
