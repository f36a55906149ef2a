"""quantize_bits=4 at load never holds the float32 model (mlx path): the weights load lazily
and are evaluated one array at a time, already quantized. Peak memory is a size, not a speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from athena.checkpoints import write_tiny_olmoe

PEAK = """
import sys
import mlx.core as mx
from athena.models.olmoe import OLMoEConfig, OLMoEModel
bits = None if sys.argv[2] == "none" else int(sys.argv[2])
model = OLMoEModel(OLMoEConfig(model_name=sys.argv[1], quantize_bits=bits, allow_fallback=False))
assert model.load(), model.load_error
print(mx.get_peak_memory())
"""


def load_peak(path: Path, bits: str) -> int:
    """mx.get_peak_memory() after load() in a fresh process (peaks are process-wide)."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), bits], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.slow
def test_4bit_load_peaks_well_below_the_float32_model(mlx_installed: None, tmp_path: Path) -> None:
    path = write_tiny_olmoe(tmp_path / "small", size="small")
    float32_peak = load_peak(path, "none")
    q4_peak = load_peak(path, "4")
    weights = (path / "model.safetensors").stat().st_size
    assert float32_peak >= 0.9 * weights  # the float32 model is really materialized
    assert q4_peak < 0.4 * float32_peak, (q4_peak, float32_peak)
