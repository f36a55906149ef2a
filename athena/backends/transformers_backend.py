"""The transformers + torch backend: load, generate, stream, encode, logits, merge_lora.

Safetensors only, `trust_remote_code=False` always. torch and transformers are imported
inside the functions. BitsAndBytes quantization is used only when bitsandbytes is importable
and CUDA is available (we never install it); otherwise quantize_bits is skipped with a log line.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from athena import source
from athena.backends import batching, completion
from athena.errors import BackendMissing, LoadError, SourceError, first_line

logger = logging.getLogger("athena.models.olmoe")


def import_transformers() -> tuple[Any, Any]:
    """Import (torch, transformers), turning ImportError into a LoadError that says what to do."""
    try:
        import torch
        import transformers
    except ModuleNotFoundError as error:
        if error.name in {"torch", "transformers"}:
            raise BackendMissing(
                f"{error.name} is not installed (install the torch group: uv sync --group torch)"
            ) from None
        raise LoadError(_broken_install(error)) from None
    except ImportError as error:
        raise LoadError(_broken_install(error)) from None
    return torch, transformers


def _broken_install(error: ImportError) -> str:
    return (
        f"transformers or torch is installed but failed to import ({first_line(error)}); "
        "reinstall them (uv sync --group torch)"
    )


def _quantization_config(transformers: Any, torch: Any, bits: int | None) -> Any:
    if bits is None:
        return None
    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        logger.info(
            "quantize_bits=%s skipped on transformers: BitsAndBytes needs bitsandbytes and "
            "CUDA (on a Mac, quantize with the mlx backend)",
            bits,
        )
        return None
    return transformers.BitsAndBytesConfig(load_in_4bit=bits == 4, load_in_8bit=bits == 8)


def load(
    name_or_path: str,
    *,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    local_files_only: bool = False,
) -> tuple[Any, Any]:
    """AutoTokenizer + AutoModelForCausalLM (eval mode). Raises LoadError (one sentence)."""
    torch, transformers = import_transformers()
    common = {"trust_remote_code": False, "local_files_only": local_files_only}
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **common)
        model, info = transformers.AutoModelForCausalLM.from_pretrained(
            name_or_path,
            dtype=getattr(torch, dtype) if dtype else "auto",
            use_safetensors=True,
            quantization_config=_quantization_config(transformers, torch, quantize_bits),
            output_loading_info=True,
            **common,
        )
    except Exception as error:  # transformers raises many kinds; each becomes one sentence
        if hub_error := source.hub_download_failed(name_or_path, error):
            raise hub_error from None
        reason = first_line(error)
        raise LoadError(f"transformers could not load {name_or_path} ({reason})") from None
    # transformers initialises missing weights at random and only warns: refuse instead.
    missing = sorted(info.get("missing_keys") or ()) + sorted(
        str(key[0]) for key in info.get("mismatched_keys") or ()
    )
    if missing:
        raise LoadError(
            f"transformers could not load {name_or_path} (the weights do not match config.json: "
            f"{len(missing)} missing or misshapen, e.g. {missing[0]}); re-create the checkpoint "
            "or fix config.json"
        )
    if unexpected := sorted(info.get("unexpected_keys") or ()):
        logger.warning(
            "%s has %d unused weights, e.g. %s", name_or_path, len(unexpected), unexpected[0]
        )
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"  # encode pools over the mask; right padding keeps positions
    return model, tokenizer


def merge_lora(model: Any, adapter_path: str | Path) -> int:
    """Merge a PEFT-format LoRA adapter (adapter_config.json + adapter_model.safetensors) into
    the model's Linear weights: W += scale * B @ A. Returns the number of layers changed."""
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
        config = json.loads(config_file.read_text())
        rank, alpha = int(config["r"]), float(config["lora_alpha"])
        weights = load_file(str(weights_file))
    except Exception as error:
        raise SourceError(f"LoRA adapter in {folder} is unreadable ({first_line(error)})") from None
    scale = alpha / (rank**0.5 if config.get("use_rslora") else rank)
    merged = 0
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
        with torch.no_grad():
            delta = (b.float() @ a.float()) * scale
            module.weight += delta.to(module.weight.dtype)
        merged += 1
    if merged == 0:
        raise SourceError(f"LoRA adapter in {folder} has no lora_A/lora_B weights")
    return merged


def _generation_kwargs(
    tokenizer: Any, max_tokens: int, temperature: float, top_p: float
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": tokenizer.pad_token_id}
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def _eos_ids(model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    return set(eos) if isinstance(eos, list) else ({eos} if eos is not None else set())


def generate_ids(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """The generated token ids (end-of-sequence excluded), via transformers' generate."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt")
    if temperature > 0:
        torch.manual_seed(seed)
    with torch.inference_mode():  # as raw transformers would: no autograd bookkeeping
        output = model.generate(
            **inputs, **_generation_kwargs(tokenizer, max_tokens, temperature, top_p)
        )
    ids = output[0, inputs["input_ids"].shape[1] :].tolist()
    eos = _eos_ids(model)
    for index, token in enumerate(ids):
        if token in eos:
            return ids[:index]
    return ids


def generate(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
) -> str:
    ids = generate_ids(
        model,
        tokenizer,
        prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
    )
    return completion.decode(tokenizer, ids)


def stream(
    model: Any,
    tokenizer: Any,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    seed: int = 0,
) -> Iterator[tuple[str, int | None]]:
    """Yield (text piece, token id) as transformers' generate produces tokens (it runs in a
    thread and feeds a queue), then (rest, None) if text was held back; the pieces join to
    exactly the decode of the ids (athena.backends.completion)."""
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

    inputs = tokenizer(prompt, return_tensors="pt")
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if temperature > 0:
                torch.manual_seed(seed)
            with torch.inference_mode():
                model.generate(
                    **inputs,
                    **_generation_kwargs(tokenizer, max_tokens, temperature, top_p),
                    streamer=TokenQueue(),
                    stopping_criteria=StoppingCriteriaList([StopWhenClosed()]),
                )
        except BaseException as error:
            failure.append(error)
            tokens.put(done)

    thread = threading.Thread(target=run, name="athena-transformers-stream", daemon=True)
    thread.start()
    eos = _eos_ids(model)

    def generated() -> Iterator[int]:
        while (token := tokens.get()) is not done and token not in eos:
            yield token
        if failure:
            raise failure[0]

    try:
        yield from completion.stream_pieces(tokenizer, generated())
    finally:
        stop.set()
        thread.join()


def max_positions(model: Any) -> int | None:
    """The model's `max_position_embeddings` (None if its config does not say)."""
    value = getattr(model.config, "max_position_embeddings", None)
    return value if isinstance(value, int) and value > 0 else None


def encode(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    *,
    batch_size: int = 32,
    truncate: bool = False,
    single: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """(len(texts), hidden) float32 in input order: the final hidden state (after the final
    norm), mean-pooled over each text's real tokens (athena.backends.batching: length-sorted,
    right-padded batches of `batch_size`, under torch.inference_mode)."""
    import torch

    ids = batching.token_ids(
        tokenizer, texts, limit=max_positions(model), truncate=truncate, single=single
    )

    def run_batch(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
        weights = torch.from_numpy(mask)
        with torch.inference_mode():
            hidden = model.model(
                input_ids=torch.from_numpy(tokens).long(), attention_mask=weights.long()
            ).last_hidden_state.float()
            weights = weights.unsqueeze(-1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
        return np.asarray(pooled.numpy())

    return batching.run_batches(
        ids,
        batch_size,
        int(model.config.hidden_size),
        run_batch,
        pad=batching.pad_id(tokenizer),
        on_batch=on_batch,
    )


def logits(model: Any, token_ids: list[int]) -> np.ndarray:
    """(len(token_ids), vocab) float32 logits of one sequence."""
    import torch

    with torch.no_grad():
        output = model(torch.tensor([token_ids])).logits[0]
    return np.asarray(output.float().numpy())
