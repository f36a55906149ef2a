"""quantize_bits=4 at load never holds the float32 model (mlx path): the weights load lazily
and are evaluated one array at a time, already quantized. Peak memory is a size, not a speed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from athena.checkpoints import write_tiny_olmoe

# Peaks are process-wide: the 4-bit load runs first, in a fresh process; the float32 load
# follows unload(), its peak counted from what was still in use (MLX's peak is of the memory
# in use, not of its cache). One child, not one per load: importing mlx-lm is most of its time.
PEAKS = """
import sys
import mlx.core as mx
from athena.models.olmoe import OLMoEConfig, OLMoEModel

def load_peak(bits):
    config = OLMoEConfig(model_name=sys.argv[1], quantize_bits=bits, allow_fallback=False)
    model = OLMoEModel(config)
    assert model.load(), model.load_error
    peak = mx.get_peak_memory()
    model.unload()
    return peak

q4 = load_peak(4)
mx.clear_cache()
in_use = mx.get_active_memory()
mx.reset_peak_memory()
print(q4, load_peak(None) - in_use, in_use)
"""


def load_peaks(path: Path) -> tuple[int, int, int]:
    """(4-bit peak, float32 peak, bytes still in use between them) of load() in one child."""
    result = subprocess.run(
        [sys.executable, "-c", PEAKS, str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    q4, float32, in_use = (int(n) for n in result.stdout.split()[-3:])
    return q4, float32, in_use


@pytest.mark.slow
def test_4bit_load_peaks_well_below_the_float32_model(mlx_installed: None, tmp_path: Path) -> None:
    path = write_tiny_olmoe(tmp_path / "small", size="small")
    q4_peak, float32_peak, in_use = load_peaks(path)
    weights = (path / "model.safetensors").stat().st_size
    assert float32_peak >= 0.9 * weights  # the float32 model is really materialized
    assert q4_peak < 0.4 * float32_peak, (q4_peak, float32_peak)
    assert in_use < 0.1 * weights  # unload() gave the 4-bit model back
