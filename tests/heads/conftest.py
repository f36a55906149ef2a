"""Fixtures of the head tests: both frameworks, and toy-task features from the tiny checkpoint.

The features come from the real encoder (mlx-lm when installed, else transformers) on the
tiny OLMoE that tests/conftest.py writes; the tests never depend on their exact values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from athena.heads import toy
from athena.models.olmoe import OLMoEConfig, OLMoEModel


@pytest.fixture(scope="session")
def mlx_installed() -> None:
    pytest.importorskip("mlx.core", reason="needs mlx: install the mlx-cpu group on Linux")


@pytest.fixture(scope="session")
def torch_installed() -> None:
    pytest.importorskip("torch", reason="needs torch: install the torch group")


@pytest.fixture(params=["mlx", "torch"])
def framework(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs once per framework (skipped where one is missing)."""
    name: str = request.param
    request.getfixturevalue(f"{name}_installed")
    return name


@pytest.fixture(scope="session")
def encoder(tiny_olmoe: Path) -> OLMoEModel:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load(), model.load_error
    return model


@pytest.fixture(scope="session")
def toy_data(encoder: OLMoEModel) -> dict[str, object]:
    """128 training and 200 held-out toy states with their encoded features."""
    train, held = toy.states(128, seed=1), toy.states(200, seed=2)
    return {
        "train": train,
        "held": held,
        "train_features": encoder.encode(train),
        "held_features": encoder.encode(held),
    }


@pytest.fixture
def random_features() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((12, 16)).astype(np.float32)
