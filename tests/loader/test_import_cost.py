"""Importing athena's loader modules imports no backend (mlx, mlx_lm, transformers, torch)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

CODE = """
import json, sys
BACKENDS = ("mlx", "mlx_lm", "transformers", "torch")
def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in BACKENDS)
import athena, athena.models.olmoe, athena.cli, athena.checkpoints
import athena.backends, athena.source
import athena.backends.mlx_backend, athena.backends.transformers_backend
from athena.models.olmoe import OLMoEConfig, OLMoEModel
from athena.host import installed_backends
OLMoEModel(OLMoEConfig(model_name="/nowhere"))
athena.cli.build_parser().parse_args(["generate", "--model", "x", "hi"])
after_import = heavy()
import athena.models.olmoe as olmoe
head = olmoe.MemoryActionHead(8, num_actions=3, hidden_dim=4)  # built now, importing torch
import torch
shape = list(head(torch.zeros(2, 8)).shape)
print(json.dumps({"after_import": after_import, "mlx_available": "mlx" in installed_backends(),
                  "head": type(head).__name__, "shape": shape,
                  "torch_after_head": "torch" in sys.modules}))
"""


def test_importing_the_loader_imports_no_backend_until_used() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["after_import"] == []
    expected = all(importlib.util.find_spec(name) is not None for name in ("mlx", "mlx_lm"))
    assert report["mlx_available"] is expected
    # MemoryActionHead is a torch.nn.Module built on first access of the name.
    assert report["head"] == "MemoryActionHead"
    assert report["shape"] == [2, 3]
    assert report["torch_after_head"] is True


def test_importing_the_model_module_does_not_even_import_numpy() -> None:
    """`import athena.models.olmoe` is what every ATHENA script pays for: keep it at the cost
    of athena's own code (bench/ measures it against `import mlx_lm`)."""
    code = (
        "import sys, athena.models.olmoe, athena.cli; "
        "print(sorted(m for m in ('numpy', 'mlx', 'torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
