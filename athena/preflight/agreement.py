"""Whether config.json agrees with itself and with the weights it sits next to."""

from __future__ import annotations

import re

from athena.preflight.info import EXPERT, FLOAT_NAMES, ModelInfo
from athena.preflight.quantized import quantized_problems

CONFIG_SIZES = ("num_hidden_layers", "hidden_size", "num_experts", "vocab_size",
                "intermediate_size", "num_attention_heads", "num_experts_per_tok")  # fmt: skip
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def config_disagreement(info: ModelInfo) -> str | None:
    """The first disagreement of config.json with itself or with the weights, as a sentence."""
    if quantized := quantized_problems(info):  # bits/group size vs the packed weights first
        return quantized[0]
    config, where = info.config, f"config.json in {info.path}"
    for key in CONFIG_SIZES:
        value = config.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return f"{where} has {key}={value!r}; it must be a positive integer (fix config.json)"
    if config["hidden_size"] % config["num_attention_heads"]:
        return (
            f"{where} has hidden_size {config['hidden_size']}, not a multiple of "
            f"num_attention_heads {config['num_attention_heads']} (fix config.json)"
        )
    if config["num_experts_per_tok"] > config["num_experts"]:
        return (
            f"{where} has num_experts_per_tok {config['num_experts_per_tok']}, more than its "
            f"num_experts {config['num_experts']}: each token cannot pick more experts than "
            "there are (fix config.json)"
        )
    if problem := _dtype_problem(info):
        return problem
    found = _weights_shape(info)
    for key, said in (
        ("num_hidden_layers", "{} layers"),
        ("hidden_size", "a hidden size of {}"),
        ("num_experts", "{} experts per layer"),
        ("vocab_size", "{} embedding rows (vocabulary)"),
    ):
        have = found.get(key)
        if have is not None and have != config[key]:
            return (
                f"{where} says {key} is {config[key]} but the weights have {said.format(have)}; "
                "the config does not belong to these weights (fix config.json or re-create the "
                "checkpoint)"
            )
    return None


def _dtype_problem(info: ModelInfo) -> str | None:
    """A weight stored as integers where the model computes in floating point (right only for
    an mlx-quantized folder's packed weights, those with `.scales`)."""
    names = {t.name for t in info.tensors}
    for tensor in info.tensors:
        packed = tensor.name.endswith(".weight") and f"{tensor.name[:-7]}.scales" in names
        if tensor.dtype not in FLOAT_NAMES and not packed:
            return (
                f"{tensor.name} in {info.path} is stored as {tensor.dtype}, but OLMoE's "
                "weights are floating point (F32, F16 or BF16); the file's header does not "
                "describe these weights: re-download or re-create the checkpoint"
            )
    return None


def _weights_shape(info: ModelInfo) -> dict[str, int]:
    """num_hidden_layers, hidden_size, num_experts and vocab_size as the weights say them."""
    found: dict[str, int] = {}
    layers = {int(m.group(1)) for t in info.tensors if (m := _LAYER.search(t.name))}
    if layers:
        found["num_hidden_layers"] = max(layers) + 1
    experts: set[int] = set()
    for tensor in info.tensors:
        shape = info.logical_shape(tensor)
        if tensor.name.endswith("embed_tokens.weight") and len(shape) == 2:
            found["vocab_size"], found["hidden_size"] = shape
        elif (m := EXPERT.match(tensor.name)) is not None:
            experts.add(int(m.group(2)))
        elif ".switch_mlp." in tensor.name and tensor.name.endswith(".weight") and shape:
            found.setdefault("num_experts", shape[0])
    if experts:
        found["num_experts"] = max(experts) + 1
    return found
