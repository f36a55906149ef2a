"""OLMoEConfig.device (--device): where the transformers backend computes. Linux has only the
CPU; a Mac is simulated through the Host seam (tests named `simulated`), and the real MPS test
runs where torch has an MPS device (an Apple Silicon Mac, not GitHub's GPU-less VMs)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from athena import preflight
from athena.errors import LoadError
from athena.host import Host, mps_dtype_problem, torch_device
from athena.models.olmoe import OLMoEConfig, OLMoEModel

MAC = {"system": "Darwin", "machine": "arm64", "os_version": "15.1"}


def test_auto_is_the_cpu_on_linux(torch_model: OLMoEModel) -> None:
    assert torch_model.config.device == "auto"
    assert torch_model.device == "cpu"
    assert {p.device.type for p in torch_model.model.parameters()} == {"cpu"}


def test_mps_on_linux_is_one_sentence(tiny_olmoe: Path, torch_installed: None) -> None:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False, device="mps"))
    assert not model.load()
    assert model.load_error == (
        f"device='mps' needs an Apple Silicon Mac, and this is linux-{platform.machine().lower()}"
        "; use device='cpu' or 'auto'"
    )


def test_device_is_checked_on_construction() -> None:
    with pytest.raises(ValueError, match=r"^OLMoEConfig.device='cuda' is not allowed; use 'auto'"):
        OLMoEConfig(device="cuda")


@pytest.mark.parametrize(
    ("mps", "wanted", "expected"),
    [(True, "auto", "mps"), (False, "auto", "cpu"), (True, "cpu", "cpu"), (True, "mps", "mps")],
)
def test_simulated_mac_device_choice(mps: bool, wanted: str, expected: str) -> None:
    assert torch_device(wanted, Host(**MAC, mps=mps)) == expected


def test_simulated_mac_without_mps_refuses_mps_in_one_sentence() -> None:
    with pytest.raises(LoadError) as raised:
        torch_device("mps", Host(**MAC, mps=False))
    assert str(raised.value) == (
        "device='mps' but torch reports no MPS device here (a macOS virtual machine, such as "
        "GitHub's hosted runners, has no GPU); use device='cpu' or 'auto'"
    )


def test_simulated_mac_bfloat16_on_mps_needs_macos_14() -> None:
    old = Host(**{**MAC, "os_version": "13.6.1"})
    assert mps_dtype_problem("bfloat16", old) == (
        "bfloat16 on the Mac's GPU (MPS) needs macOS 14 or newer, and this Mac runs 13.6.1; "
        "use dtype='float16' or 'float32', or device='cpu'"
    )
    assert mps_dtype_problem("float32", old) is None
    assert mps_dtype_problem("bfloat16", Host(**{**MAC, "os_version": "14.0"})) is None


def test_simulated_mac_without_mps_loads_on_the_cpu(
    tiny_olmoe: Path, torch_installed: None, simulated_host: Callable[..., None]
) -> None:
    simulated_host(**MAC, mps=False)
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load(), model.load_error
    assert model.device == "cpu"
    assert model.generate("Hello", max_tokens=2)


def test_simulated_macos_13_refuses_bfloat16_on_mps_before_loading(
    tiny_olmoe: Path, torch_installed: None, simulated_host: Callable[..., None]
) -> None:
    simulated_host(**{**MAC, "os_version": "13.6.1"}, mps=True)
    config = OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False, dtype="bfloat16")
    model = OLMoEModel(config)
    assert not model.load()
    assert model.load_error is not None
    assert model.load_error.startswith("bfloat16 on the Mac's GPU (MPS) needs macOS 14")
    assert model.model is None


def test_mps_estimate_counts_every_weight_once(tiny_olmoe: Path) -> None:
    info = preflight.inspect_model(str(tiny_olmoe))
    cpu = preflight.estimate_peak(info, backend="transformers", device="cpu")
    mps = preflight.estimate_peak(info, backend="transformers", device="mps")
    weights = sum(t.elements for t in info.tensors) * 4  # float32
    assert mps.model == weights  # every weight once, in unified memory: not a second copy
    assert cpu.model < weights  # on the CPU the unconverted weights stay mapped file pages
    assert mps.file_pages == cpu.file_pages


def mps_or_skip() -> None:
    torch = pytest.importorskip("torch", reason="needs torch: install the torch group")
    if not torch.backends.mps.is_available():
        pytest.skip(
            "torch reports no MPS device: GitHub's hosted arm64 runners are virtual machines "
            "without a GPU"
            if sys.platform == "darwin"
            else "MPS exists only on Apple Silicon Macs"
        )


def test_mps_runs_generate_encode_and_the_head_and_releases_its_cache(tiny_olmoe: Path) -> None:
    mps_or_skip()
    import torch

    models = {}
    for device in ("cpu", "mps"):
        config = OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False, device=device)
        models[device] = OLMoEModel(config)
        assert models[device].load(), models[device].load_error
    cpu, gpu = models["cpu"], models["mps"]
    assert gpu.device == "mps"
    assert {p.device.type for p in gpu.action_head.parameters()} == {"mps"}
    ids = cpu.tokenize("The quick brown fox")
    np.testing.assert_allclose(gpu.logits(ids), cpu.logits(ids), atol=1e-4)
    texts = ["The quick brown fox", "jumps"]
    np.testing.assert_allclose(gpu.encode(texts), cpu.encode(texts), atol=1e-4)
    assert gpu.last_action_logits is not None and cpu.last_action_logits is not None
    np.testing.assert_allclose(gpu.last_action_logits, cpu.last_action_logits, atol=1e-4)
    assert len(gpu.generate_ids("Hello", max_tokens=4)) <= 4
    held = torch.mps.driver_allocated_memory()
    gpu.unload()
    assert torch.mps.driver_allocated_memory() < held
