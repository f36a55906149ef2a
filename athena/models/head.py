"""The MemoryActionHead, framework-neutral: make one, read and write its weights (a
safetensors file of six float32 tensors named as torch's nn.Sequential numbers them, the shape
in its metadata: docs/training-head.md). mlx, torch and numpy are imported inside."""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena.atomic import replacing
from athena.errors import first_line

if TYPE_CHECKING:
    import numpy as np

FRAMEWORKS = ("mlx", "torch")
HEAD_FORMAT = "athena.MemoryActionHead"
PARAMETER_NAMES = tuple(f"net.{i}.{kind}" for i in (0, 1, 3) for kind in ("weight", "bias"))


class HeadError(ValueError):
    """A head file or head argument that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class HeadShape:
    """The sizes of a MemoryActionHead: input (the encoder's hidden size), hidden, actions."""

    hidden_size: int
    num_actions: int = 4
    hidden_dim: int = 256

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_actions", "hidden_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HeadError(f"{name}={value!r} is not allowed; use an integer >= 1")

    @classmethod
    def of(cls, weights: dict[str, Any], where: str = "the weights") -> HeadShape:
        """The shape of `weights` (named as PARAMETER_NAMES); HeadError, naming `where`, if they
        are not a MemoryActionHead's."""
        if missing := [name for name in PARAMETER_NAMES if name not in weights]:
            raise HeadError(
                f"{where} is not a MemoryActionHead: it has no {', '.join(missing)} "
                f"(a head has {', '.join(PARAMETER_NAMES)})"
            )
        w1, w3 = weights["net.1.weight"], weights["net.3.weight"]
        if len(w1.shape) != 2 or len(w3.shape) != 2:
            raise HeadError(f"{where}: net.1.weight and net.3.weight must be matrices")
        shape = cls(int(w1.shape[1]), int(w3.shape[0]), int(w1.shape[0]))
        for name, dims in shape.parameter_shapes().items():
            if tuple(weights[name].shape) != dims:
                raise HeadError(
                    f"{where}: {name} has shape {tuple(weights[name].shape)}, expected {dims} "
                    f"for a head with hidden_size {shape.hidden_size}, hidden_dim "
                    f"{shape.hidden_dim} and {shape.num_actions} actions"
                )
        return shape

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        h, d, a = self.hidden_size, self.hidden_dim, self.num_actions
        shapes = ((h,), (h,), (d, h), (d,), (a, d), (a,))
        return dict(zip(PARAMETER_NAMES, shapes, strict=True))

    def num_parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.parameter_shapes().values())


def check_framework(framework: str) -> str:
    if framework not in FRAMEWORKS:
        raise HeadError(f"framework {framework!r} is not known; use 'mlx' or 'torch'")
    return framework


def head_class(framework: str = "mlx") -> type:
    """The MemoryActionHead class of `framework` (imports mlx or torch now)."""
    module = importlib.import_module(f"athena.models.head_{check_framework(framework)}")
    return module.MemoryActionHead


def framework_of(head: Any) -> str:
    """ "mlx" or "torch": which framework's MemoryActionHead `head` is."""
    if "mlx.nn" in sys.modules and isinstance(head, sys.modules["mlx.nn"].Module):
        return "mlx"
    if "torch" in sys.modules and isinstance(head, sys.modules["torch"].nn.Module):
        return "torch"
    raise HeadError(f"{type(head).__name__} is not an MLX or torch MemoryActionHead")


def initial_weights(shape: HeadShape, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float32 weights, the same for both frameworks: LayerNorm 1 and 0, Linear layers
    uniform in +-1/sqrt(fan_in) (the default init of torch's and MLX's nn.Linear)."""
    import numpy as np

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise HeadError(f"seed={seed!r} is not allowed for a head; use an integer >= 0")
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, dims in shape.parameter_shapes().items():
        if name.startswith("net.0."):  # the LayerNorm
            weights[name] = np.full(dims, 1.0 if name == "net.0.weight" else 0.0, np.float32)
        else:
            fan_in = shape.hidden_size if name.startswith("net.1") else shape.hidden_dim
            bound = 1.0 / np.sqrt(fan_in)
            weights[name] = rng.uniform(-bound, bound, dims).astype(np.float32)
    return weights


def new_head(
    hidden_size: int,
    *,
    num_actions: int = 4,
    hidden_dim: int = 256,
    seed: int = 0,
    framework: str = "mlx",
) -> Any:
    """A MemoryActionHead with weights drawn from `seed` (initial_weights): the same numbers
    on either framework, whichever framework's RNG state is."""
    shape = HeadShape(hidden_size, num_actions, hidden_dim)
    return head_from_weights(initial_weights(shape, seed), framework)


def head_from_weights(weights: dict[str, np.ndarray], framework: str = "mlx") -> Any:
    """A MemoryActionHead of `framework` holding `weights` (numpy arrays by parameter name)."""
    head = head_class(framework)(**asdict(HeadShape.of(weights)))
    set_head_weights(head, weights)
    return head


def head_weights(head: Any) -> dict[str, np.ndarray]:
    """A float32 numpy copy of the head's parameters, by name."""
    import numpy as np

    if framework_of(head) == "mlx":
        from mlx.utils import tree_flatten

        params = dict(tree_flatten(head.parameters()))
    else:
        params = {name: value.cpu().numpy() for name, value in head.state_dict().items()}
    return {name: np.array(params[name], dtype=np.float32) for name in PARAMETER_NAMES}


def set_head_weights(head: Any, weights: dict[str, np.ndarray]) -> None:
    """Copy `weights` into `head` (shapes must match the head's)."""
    shape, expected = HeadShape.of(weights), HeadShape.of(head_weights(head))
    if shape != expected:
        raise HeadError(f"the weights are for a {shape}, the head is a {expected}")
    if framework_of(head) == "mlx":
        import mlx.core as mx

        head.load_weights([(name, mx.array(weights[name])) for name in PARAMETER_NAMES])
        mx.eval(head.parameters())
    else:
        import torch

        state = {name: torch.from_numpy(weights[name].copy()) for name in PARAMETER_NAMES}
        head.load_state_dict(state)


def head_logits(head: Any, features: np.ndarray) -> np.ndarray:
    """The head's float32 logits (n, num_actions) for features (n, hidden_size), as numpy."""
    import numpy as np

    x = np.ascontiguousarray(features, dtype=np.float32)
    if framework_of(head) == "mlx":
        import mlx.core as mx

        return np.array(head(mx.array(x)), dtype=np.float32)
    import torch

    device = next(head.parameters()).device  # the model's: cpu or mps
    with torch.no_grad():
        return np.asarray(head(torch.from_numpy(x).to(device)).cpu().numpy())


def save_head(head: Any, path: str | os.PathLike[str]) -> Path:
    """Write the head's weights to `path` (safetensors), atomically; return the path."""
    return save_weights(head_weights(head), path)


def save_weights(weights: dict[str, np.ndarray], path: str | os.PathLike[str]) -> Path:
    """Write head weights (numpy, by parameter name) to a safetensors file, atomically."""
    target = Path(path)
    metadata = {"format": HEAD_FORMAT, "shape": json.dumps(asdict(HeadShape.of(weights)))}
    save_tensors({name: weights[name] for name in PARAMETER_NAMES}, target, metadata)
    return target


def save_tensors(
    tensors: dict[str, np.ndarray], target: Path, metadata: dict[str, str] | None = None
) -> None:
    """A safetensors file written as athena.atomic writes (whole or not at all); a full disk or
    a read-only folder is an OSError of one sentence (safetensors raises its own error type)."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    with replacing(target) as temporary:
        try:
            save_file(tensors, str(temporary), metadata)
        except SafetensorError as error:
            raise OSError(str(error).splitlines()[0]) from error


def load_weights(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The head weights stored at `path` (numpy, by name); HeadError if it is not a head."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    source = Path(path)
    if not source.is_file():
        raise HeadError(f"head file {source} not found; pass a .safetensors written by save_head")
    try:
        weights = load_file(str(source))
    except (SafetensorError, OSError, ValueError) as error:
        raise HeadError(
            f"head file {source} is not a readable safetensors file ({first_line(error)})"
        ) from None
    HeadShape.of(weights, str(source))
    return {name: weights[name] for name in PARAMETER_NAMES}


def load_head(path: str | os.PathLike[str], framework: str = "mlx") -> Any:
    """The MemoryActionHead of `framework` stored at `path` (by either framework)."""
    check_framework(framework)
    return head_from_weights(load_weights(path), framework)
