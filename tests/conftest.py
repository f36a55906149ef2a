"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from athena.checkpoints import write_tiny_olmoe


@pytest.fixture(scope="session")
def tiny_olmoe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "tiny" float32 OLMoE checkpoint (seed 0), written once per test session.

    Shared: tests must not modify it; copy it (shutil.copytree) to damage or change it.
    """
    return write_tiny_olmoe(tmp_path_factory.mktemp("models") / "olmoe-tiny")
