"""The configurations bench/models.py runs per checkpoint size, and the athena/raw pairs.

Each is one fresh interpreter per round (bench/worker.py); see bench/models.py for the table.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT = "The quick brown fox jumps over the lazy dog."


@dataclass(frozen=True)
class Config:
    name: str
    impl: str  # "athena" | "mlx_lm" | "transformers"
    backend: str  # "mlx" | "transformers"
    variant: str  # checkpoint: "fp32", "q8", "q4"
    quantize_bits: int | None = None  # athena quantizes at load

    def needs(self) -> list[str]:
        mods = ["mlx", "mlx_lm"] if self.backend == "mlx" else ["torch", "transformers"]
        return [*mods, "athena.models.olmoe"] if self.impl == "athena" else mods


CONFIGS = (
    Config("athena-mlx", "athena", "mlx", "fp32"),
    Config("mlx_lm", "mlx_lm", "mlx", "fp32"),
    Config("athena-hf", "athena", "transformers", "fp32"),
    Config("transformers", "transformers", "transformers", "fp32"),
    Config("mlx_lm-q8", "mlx_lm", "mlx", "q8"),
    Config("mlx_lm-q4", "mlx_lm", "mlx", "q4"),
    Config("athena-mlx-q4", "athena", "mlx", "fp32", quantize_bits=4),
)
QUICK_LEAVES_OUT = ("mlx_lm-q8", "athena-mlx-q4")
PAIRS = (("athena-mlx", "mlx_lm"), ("athena-hf", "transformers"))
BY_NAME = {c.name: c for c in CONFIGS}
