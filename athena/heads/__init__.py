"""The MemoryActionHead's learners: GRPO on MLX or torch, its trainer and `athena train-head`.

    from athena.heads import load_head, new_head, save_head

    head = new_head(hidden_size=2048, framework="mlx")      # or framework="torch"
    save_head(head, "head.safetensors")
    same = load_head("head.safetensors", framework="torch")  # the same logits, within 1e-5

The head itself (the networks, new_head, the weights file) lives on the model's floor, in
athena/models/head.py (head_mlx.py, head_torch.py: one network per framework); this package
re-exports those names. Here: GRPO (`athena.heads.grpo`, one learner per framework in
mlx_learner.py and torch_learner.py), the train-head command (`train.py`), data-parallel
runs (`distributed.py`, `launch.py`) and a toy task (`toy.py`). Importing this package
imports neither mlx, torch nor numpy.
"""

from __future__ import annotations

from athena.models.head import (
    FRAMEWORKS,
    HEAD_FORMAT,
    PARAMETER_NAMES,
    HeadError,
    HeadShape,
    check_framework,
    framework_of,
    head_class,
    head_from_weights,
    head_logits,
    head_weights,
    initial_weights,
    load_head,
    load_weights,
    new_head,
    save_head,
    save_weights,
    set_head_weights,
)

__all__ = [
    "FRAMEWORKS",
    "HEAD_FORMAT",
    "PARAMETER_NAMES",
    "HeadError",
    "HeadShape",
    "check_framework",
    "framework_of",
    "head_class",
    "head_from_weights",
    "head_logits",
    "head_weights",
    "initial_weights",
    "load_head",
    "load_weights",
    "new_head",
    "save_head",
    "save_weights",
    "set_head_weights",
]
