"""The transformers + torch backend (athena.backends.base.Backend), a PEFT LoRA adapter merged
at load; safetensors only, never trust_remote_code, imports inside the functions. quantize_bits
is skipped with a log line: transformers quantizes (BitsAndBytes) on CUDA, and athena's torch
runs on the CPU or MPS."""

from __future__ import annotations

import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena.backends import batching
from athena.backends.base import LoadOptions, Sampling, import_framework, tokenizer_kwargs
from athena.errors import LoadError, SourceError, first_line
from athena.host import freed_memory_returned
from athena.source import ModelSource, read_json, read_safetensors_header, weight_files_of

if TYPE_CHECKING:  # numpy and torch are imported where used (athena.backends imports this)
    import numpy as np

logger = logging.getLogger(__name__)

# torch gains from batching even with padding (1.4-2x per-text on `small`; bench/README).
MAX_PADDING: float | None = batching.TRANSFORMERS_MAX_PADDING
# ... up to a point: past ~2k tokens a batch costs more per token than one text at a time.
MAX_BATCH_TOKENS: int | None = batching.TRANSFORMERS_MAX_BATCH_TOKENS
# OLMoE's hub layout: one weight per expert and projection (fused_state joins them).
EXPERT_KEY = re.compile(r"(.+\.mlp\.experts)\.(\d+)\.(gate|up|down)_proj\.weight")


def load(source: ModelSource, options: LoadOptions) -> tuple[Any, Any]:
    """AutoTokenizer + the model class of config.json from the local folder's weights (experts
    fused by `fused_state`), in eval mode, with a PEFT LoRA adapter merged if given. Raises
    LoadError (one sentence)."""
    torch, transformers = import_framework(
        ("torch", "transformers"),
        "install the torch group: uv sync --group torch",
        "transformers or torch is",
        "reinstall them (uv sync --group torch)",
    )
    name, folder = source.name, str(source.folder)
    if options.quantize_bits is not None:
        logger.info(
            "quantize_bits=%s skipped on transformers (quantize with mlx)", options.quantize_bits
        )
    common = {"trust_remote_code": False, "local_files_only": True}
    try:
        extra = tokenizer_kwargs(options.config)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **common, **extra)
        config = extra.get("config") or transformers.AutoConfig.from_pretrained(folder, **common)
        dtype = getattr(torch, options.dtype) if options.dtype else config.dtype
        with freed_memory_returned(), ExitStack() as files:  # the peak the preflight estimated
            state, dtype = fused_state(source, config, dtype, files)
            model, info = transformers.MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].from_pretrained(
                None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
            )
        with suppress(OSError):  # as from_pretrained(folder) would: the folder's, if it has one
            generation = transformers.GenerationConfig.from_pretrained(
                folder, local_files_only=True
            )
            model.generation_config = generation
    except LoadError:
        raise
    except Exception as error:  # transformers raises many kinds; each becomes one sentence
        raise LoadError(f"transformers could not load {name} ({first_line(error)})") from None
    # transformers initialises missing weights at random and only warns: refuse instead.
    missing = sorted(info.get("missing_keys") or ()) + sorted(
        str(key[0]) for key in info.get("mismatched_keys") or ()
    )
    if missing:
        raise mismatched(name, f"{len(missing)} missing or misshapen, e.g. {missing[0]}")
    if unexpected := sorted(info.get("unexpected_keys") or ()):
        logger.warning("%s has %d unused weights, e.g. %s", name, len(unexpected), unexpected[0])
    if options.device != "cpu":  # parameter by parameter: each CPU copy goes as it moves
        model.to(options.device)
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # encode pools over the mask; right padding keeps positions
    if options.adapter is not None:
        merged = merge_lora(model, options.adapter)
        logger.info("Merged LoRA adapter %s into %d layers", options.adapter, merged)
    return model, tokenizer


def fused_state(source: ModelSource, config: Any, dtype: Any, files: ExitStack) -> tuple[dict, Any]:
    """The state dict for `from_pretrained(None, state_dict=...)` and its dtype: each weight a
    lazy slice of its mapped file, as transformers reads a folder, but OLMoE's per-expert
    weights copied once each into the fused tensors transformers keeps (`gate_up_proj`: gate
    rows, then up; `down_proj`). Its own load stacks, concatenates and deep-copies a converter
    per key for that, and holds both stacks at once (bench/README: a load of `medium` in 0.6x
    its time). LoadError on an expert weight that is misshapen, missing or given twice."""
    import torch
    from safetensors import safe_open

    experts, hidden, inner = config.num_experts, config.hidden_size, config.intermediate_size
    state: dict[str, Any] = {}
    filled: dict[str, int] = {}
    for file in weight_files_of(source.folder):
        weights = files.enter_context(safe_open(str(file), framework="pt", device="cpu"))
        for key in weights.keys():  # noqa: SIM118 (a safetensors handle is not a dict)
            tensor = weights.get_slice(key)
            if not (match := EXPERT_KEY.fullmatch(key)):
                state[key] = tensor
                continue
            prefix, index, projection = match[1], int(match[2]), match[3]
            down = projection == "down"
            want = [hidden, inner] if down else [inner, hidden]
            if index >= experts or list(tensor.get_shape()) != want:
                detail = f"{key} is {list(tensor.get_shape())}, not one of {experts} x {want}"
                raise mismatched(source.name, detail)
            fused, weight = f"{prefix}.{'down_proj' if down else 'gate_up_proj'}", tensor[...]
            if fused not in state:
                dtype = dtype or weight.dtype
                shape = [experts, *want] if down else [experts, 2 * inner, hidden]
                state[fused] = torch.empty(shape, dtype=dtype)
            rows = {"gate": slice(0, inner), "up": slice(inner, None)}.get(projection, slice(None))
            state[fused][index, rows] = weight
            filled[fused] = filled.get(fused, 0) + 1
    for fused, count in filled.items():
        if count != (need := experts * (1 if fused.endswith("down_proj") else 2)):
            raise mismatched(source.name, f"{fused} is made of {count} weights, not {need}")
    return state, dtype or "auto"


def mismatched(name: str, detail: str) -> LoadError:
    return LoadError(
        f"transformers could not load {name} (the weights do not match config.json: {detail}); "
        "re-create the checkpoint or fix config.json"
    )


def merge_lora(model: Any, adapter_path: str | Path) -> int:
    """Merge a PEFT LoRA adapter into the model's Linear weights (W += scale * B @ A), every A
    and B checked against its layer and rank first (SourceError); returns the layers changed."""
    import torch
    from safetensors.torch import load_file

    folder = Path(adapter_path).expanduser()
    config_file, weights_file = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not folder.is_dir():
        raise SourceError(f"LoRA adapter folder not found: {folder}")
    if not config_file.is_file() or not weights_file.is_file():
        raise SourceError(
            f"{folder} is not a PEFT LoRA adapter (it needs adapter_config.json and "
            "adapter_model.safetensors)"
        )
    try:
        config = read_json(config_file)
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
        read_safetensors_header(weights_file)  # a damaged file is one sentence, not a crash
        weights = load_file(str(weights_file))
    except SourceError:
        raise
    except Exception as error:
        raise SourceError(f"LoRA adapter in {folder} is unreadable ({first_line(error)})") from None
    if rank < 1:
        raise SourceError(f"LoRA adapter in {folder} has r={rank}; adapter_config.json is damaged")
    scale = alpha / (rank**0.5 if config.get("use_rslora") else rank)
    pairs = []
    for key, a in weights.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module_name = key.removesuffix(".lora_A.weight").removeprefix("base_model.model.")
        b = weights.get(key.replace(".lora_A.", ".lora_B."))
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            module = None
        if b is None or not isinstance(module, torch.nn.Linear):
            raise SourceError(
                f"LoRA adapter in {folder} targets {module_name!r}, which is not a Linear layer "
                "of this model (or lacks its lora_B)"
            )
        want_a, want_b = (rank, module.in_features), (module.out_features, rank)
        if tuple(a.shape) != want_a or tuple(b.shape) != want_b:
            raise SourceError(
                f"LoRA adapter in {folder} does not fit {module_name}: lora_A is "
                f"{list(a.shape)} and lora_B {list(b.shape)}, but with r={rank} this layer "
                f"needs {list(want_a)} and {list(want_b)}; use the adapter trained for this "
                "model, with its adapter_config.json"
            )
        pairs.append((module, a, b))
    if not pairs:
        raise SourceError(f"LoRA adapter in {folder} has no lora_A/lora_B weights")
    with torch.no_grad():
        for module, a, b in pairs:
            delta = (b.float() @ a.float()) * scale
            module.weight += delta.to(module.weight.dtype)
    return len(pairs)


def generate_ids(
    model: Any, tokenizer: Any, prompt_ids: list[int], sampling: Sampling, *, stream: bool = False
) -> Iterator[int]:
    """The generated token ids (end-of-sequence excluded) of transformers' generate: called in
    this thread as a user would call it, or with `stream`, in a thread that feeds a queue
    token by token (generate cannot yield); closing the iterator stops that thread."""
    import torch

    kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_tokens, "do_sample": False,
                              "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    if sampling.temperature > 0:
        kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=model.device)
    kwargs.update(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
    eos = model.generation_config.eos_token_id
    eos = set(eos) if isinstance(eos, list) else ({eos} if eos is not None else set())

    def run(**extra: Any) -> list[int]:
        if sampling.temperature > 0:
            torch.manual_seed(sampling.seed)
        with torch.inference_mode():  # as raw transformers would: no autograd bookkeeping
            out = model.generate(**kwargs, **extra)
        return [int(token) for token in out[0, len(prompt_ids) :].tolist()]

    if not stream:
        return itertools.takewhile(lambda token: token not in eos, run())
    return _streamed(run, eos)


def _streamed(run: Callable[..., list[int]], eos: set[int]) -> Iterator[int]:
    """`run(streamer=..., stopping_criteria=...)` in a thread, its tokens as they come."""
    import queue

    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    done = object()
    tokens: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    class TokenQueue(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate() first pushes the prompt
                self.prompt_seen = True
                return
            for token in value.reshape(-1).tolist():
                tokens.put(int(token))

        def end(self) -> None:
            tokens.put(done)

    class StopWhenClosed(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool)

    failure: list[BaseException] = []

    def thread_main() -> None:
        try:
            run(streamer=TokenQueue(), stopping_criteria=StoppingCriteriaList([StopWhenClosed()]))
        except BaseException as error:
            failure.append(error)
            tokens.put(done)

    thread = threading.Thread(target=thread_main, name="athena-transformers-generate", daemon=True)
    thread.start()
    try:
        while (token := tokens.get()) is not done and token not in eos:
            yield token
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()


def max_positions(model: Any) -> int | None:
    """The model's `max_position_embeddings` (None if its config does not say)."""
    value = getattr(model.config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def device(model: Any) -> str:
    return str(model.device.type)  # "cpu" or "mps"


def hidden_size(model: Any) -> int:
    return int(model.config.hidden_size)


def forward_context(model: Any) -> AbstractContextManager[Any]:
    import torch

    return torch.inference_mode()


def release(device: str) -> None:
    """torch frees CPU tensors at once; its MPS allocator keeps a cache like mlx's."""
    if device == "mps":
        import torch

        torch.mps.empty_cache()


def pooled(model: Any, tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import numpy as np
    import torch

    weights = torch.from_numpy(mask).to(model.device)
    hidden = model.model(
        input_ids=torch.from_numpy(tokens).long().to(model.device), attention_mask=weights.long()
    ).last_hidden_state.float()
    weights = weights.unsqueeze(-1)
    return np.asarray(((hidden * weights).sum(dim=1) / weights.sum(dim=1)).cpu().numpy())


def logits(model: Any, token_ids: list[int]) -> np.ndarray:
    """(len(token_ids), vocab) float32 logits of one sequence."""
    import numpy as np
    import torch

    with torch.inference_mode():
        output = model(torch.tensor([token_ids], device=model.device)).logits[0]
    return np.asarray(output.float().cpu().numpy())
