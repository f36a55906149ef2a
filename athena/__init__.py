"""athena: OLMoE on Apple Silicon, mlx first, transformers as the fallback.

Importing this package is cheap: no mlx, mlx_lm, transformers or torch import happens until
a backend is used."""

__version__ = "0.1.0"
