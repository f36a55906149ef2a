"""The mlx-lm backend (athena.backends.base.Backend); mlx and mlx_lm are imported inside the
functions. On mlx's CPU backend MoE experts run through `gather_mm` (float32 only), so `load`
upcasts half-precision MoE checkpoints there."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from athena.backends.base import LoadOptions, Sampling, import_framework, tokenizer_kwargs
from athena.errors import LoadError, SourceError, first_line
from athena.host import MLX_DEVICE_ENV, mlx_device_wanted
from athena.source import ModelSource

if TYPE_CHECKING:  # numpy is imported where used: athena.models.olmoe imports this module
    import numpy as np

logger = logging.getLogger(__name__)

# mlx's CPU build runs a padded token at the full cost of a real one (bench/README, "Encode:
# the batch shape"): batching.MAX_PADDING, equal-length batches only, read when encode runs.
MAX_PADDING: float | None = None
# A batch of equal-length rows costs the same per token at 4 to 64 rows: no token limit.
MAX_BATCH_TOKENS: int | None = None
EVAL_BYTES = 16 * 1024**2  # load evaluates the weights in batches of about this size


def import_mlx_lm() -> Any:
    """Import mlx_lm, turning ImportError into a LoadError that says what to do."""
    return import_framework(
        ("mlx.core", "mlx_lm"),
        "on a Mac: uv sync; on Linux: uv sync --group mlx-cpu",
        "mlx-lm is",
        "reinstall it (on a Mac: uv sync --reinstall-package mlx; on Linux the CPU build: uv "
        "sync --group mlx-cpu)",
    )[1]


def select_device() -> None:
    """Honour ATHENA_MLX_DEVICE=cpu or gpu (CPU on GitHub's macOS VMs: their Metal is unusable)."""
    import mlx.core as mx

    wanted = mlx_device_wanted()
    if not wanted:
        return
    if wanted not in ("cpu", "gpu"):
        raise LoadError(f"{MLX_DEVICE_ENV}={wanted!r} is not a device; use cpu or gpu, or unset it")
    if wanted == "gpu" and not mx.metal.is_available():
        raise LoadError(
            f"{MLX_DEVICE_ENV}=gpu but Metal is not available here; use cpu or unset it"
        )
    mx.set_default_device(mx.cpu if wanted == "cpu" else mx.gpu)


def is_quantized(model: Any) -> bool:
    import mlx.nn as nn
    from mlx_lm.models.switch_layers import QuantizedSwitchLinear

    kinds = (nn.QuantizedLinear, nn.QuantizedEmbedding, QuantizedSwitchLinear)
    return any(isinstance(module, kinds) for module in model.modules())


def arrays(model: Any) -> list[tuple[str, Any]]:
    """The model's parameters as (dotted name, array) pairs."""
    from mlx.utils import tree_flatten

    return tree_flatten(model.parameters())  # type: ignore[return-value]


def floating(parameters: list[tuple[str, Any]]) -> tuple[set[str], bool]:
    """The dtypes of the floating-point arrays among `parameters` (`arrays`), e.g.
    {"bfloat16"}, and whether any is an unquantized stack of experts: SwitchLinear's 3-D
    `weight` [experts, out, in], which gather_mm runs (quantized, it is uint32)."""
    import mlx.core as mx

    dtypes, experts = set(), False
    for key, value in parameters:
        if mx.issubdtype(value.dtype, mx.floating):
            dtypes.add(str(value.dtype).removeprefix("mlx.core."))
            experts = experts or (value.ndim == 3 and key.endswith(".weight"))
    return dtypes, experts


def load(source: ModelSource, options: LoadOptions) -> tuple[Any, Any]:
    """`mlx_lm.load(folder)`, then dtype and quantization; LoadError (one sentence) on failure."""
    mlx_lm = import_mlx_lm()
    import mlx.core as mx
    import mlx.nn as nn

    select_device()
    name, folder = source.name, source.folder
    adapter = options.adapter
    if adapter is not None and not (adapter / "adapters.safetensors").is_file():
        raise SourceError(
            f"{adapter} is not an mlx-lm LoRA adapter (it needs adapters.safetensors and "
            "adapter_config.json, as mlx_lm.lora writes them)"
        )
    # lazy=True: the weights are evaluated once, at the end, already upcast or quantized, so a
    # 4-bit load never holds the float32 model and a bf16 upcast never holds both copies.
    try:
        path, extra = None if adapter is None else str(adapter), tokenizer_kwargs(options.config)
        model, tokenizer = mlx_lm.load(
            str(folder), tokenizer_config=extra, adapter_path=path, lazy=True
        )
    except Exception as error:  # mlx-lm raises many kinds; each becomes one sentence
        lines = [line.strip() for line in str(error).splitlines()]
        if adapter is not None and lines and lines[0].startswith("Adapter at "):
            raise SourceError(  # mlx-lm lists each tensor whose name or shape does not fit
                f"the LoRA adapter in {adapter} does not fit this model ({'; '.join(lines[1:])}); "
                "use the adapter trained for this model, with its adapter_config.json"
            ) from None
        raise LoadError(f"mlx-lm could not load {name} ({first_line(error)})") from None

    # One pass over the arrays (a module walk each would cost a first load more than it does).
    parameters = arrays(model)
    dtypes, experts = floating(parameters)
    cpu_moe = experts and mx.default_device().type == mx.cpu
    dtype = options.dtype
    if dtype is not None:
        if cpu_moe and dtype != "float32":
            raise LoadError(
                f"dtype={dtype!r} cannot run OLMoE's experts on mlx's CPU backend (gather_mm "
                "takes float32 only); use dtype='float32' or None, or quantize_bits=4 or 8"
            )
        model.set_dtype(getattr(mx, dtype))
        parameters = []
    elif cpu_moe and (found := dtypes - {"float32"}):
        logger.info(
            "Upcasting %s weights to float32: mlx's CPU backend runs MoE experts "
            "(gather_mm) in float32 only",
            ", ".join(sorted(found)),
        )
        model.set_dtype(mx.float32)
        parameters = []

    bits, group_size = options.quantize_bits, options.group_size
    batch_bytes = EVAL_BYTES
    if bits is not None:
        if is_quantized(model):
            logger.info("%s is already quantized; quantize_bits=%s ignored", name, bits)
        else:
            from athena.backends.quantize import olmoe_predicate

            predicate = olmoe_predicate(bits, group_size, options.router_bits)  # router apart
            nn.quantize(model, group_size=group_size, bits=bits, class_predicate=predicate)
            batch_bytes = 0  # a packed result's source is up to 8x its size: one at a time
            parameters = []
            logger.info("Quantized %s to %s bits (group size %s)", name, bits, group_size)
    try:
        # A few MiB of arrays at a time (one at a time when quantizing): each source weight is
        # freed as soon as its (quantized, upcast) result exists, so the peak stays near the
        # final model's size; small arrays share a call (~50 us each: 1.4 ms for tiny's 27).
        parameters = parameters or arrays(model)  # [] once they changed
        batch: list[Any] = []
        size = 0
        for _, array in parameters:
            batch.append(array)
            size += array.nbytes
            if size >= batch_bytes:
                mx.eval(batch)
                batch, size = [], 0
        mx.eval(batch)
    except Exception as error:  # e.g. weights that cannot be read once evaluated
        raise LoadError(f"mlx-lm could not load {name} ({first_line(error)})") from None
    return model, tokenizer


def generate_ids(
    model: Any, tokenizer: Any, prompt_ids: list[int], sampling: Sampling, *, stream: bool = False
) -> Iterator[int]:
    """The ids mlx-lm's stream_generate makes (end-of-sequence excluded), in this thread
    whether or not `stream`; greedy at 0."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    if sampling.temperature > 0:
        mx.random.seed(sampling.seed)
    top_p = sampling.top_p if sampling.top_p < 1.0 else 0.0
    sampler = make_sampler(temp=sampling.temperature, top_p=top_p)
    # Each response carries one token; the last one (finish_reason "length") carries the last
    # generated token, or (finish_reason "stop") the end-of-sequence token, which is dropped.
    for response in stream_generate(
        model, tokenizer, prompt_ids, max_tokens=sampling.max_tokens, sampler=sampler
    ):
        if response.finish_reason == "stop":
            return
        yield int(response.token)


def max_positions(model: Any) -> int | None:
    """The model's `max_position_embeddings` (None if its config does not say)."""
    value = getattr(getattr(model, "args", None), "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def device(model: Any) -> str:
    import mlx.core as mx

    return str(mx.default_device().type.name)  # "cpu" or "gpu" (Metal)


def hidden_size(model: Any) -> int:
    return int(model.args.hidden_size)


def forward_context(model: Any) -> AbstractContextManager[Any]:
    """Like mlx-lm's generation, forward passes run inside `wired_limit(model)`: on macOS 15+
    the weights are wired to the recommended working set; without Metal that is a no-op."""
    from mlx_lm.generate import wired_limit

    return wired_limit(model)


def release(device: str) -> None:
    """mlx keeps freed buffers in its cache for reuse; without this the process holds them."""
    import mlx.core as mx

    mx.clear_cache()


def pooled(model: Any, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """mlx-lm's `model.model` takes no padding mask and needs none: batches are right-padded
    (exact for a causal model) and the pooling masks the padding out."""
    import mlx.core as mx
    import numpy as np

    hidden = model.model(mx.array(tokens)).astype(mx.float32)  # (b, length, hidden)
    weights = mx.array(mask)[..., None]
    out = np.array((hidden * weights).sum(axis=1) / weights.sum(axis=1))
    # Each batch's shape differs, so its freed buffers rarely fit the next: cleared, not piled.
    mx.clear_cache()
    return out


def logits(model: Any, token_ids: list[int]) -> np.ndarray:
    """(len(token_ids), vocab) float32 logits of one sequence (wired like `pooled`)."""
    import mlx.core as mx
    import numpy as np

    with forward_context(model):
        return np.array(model(mx.array([token_ids]))[0].astype(mx.float32))
