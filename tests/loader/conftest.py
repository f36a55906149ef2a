"""Loaded models shared by the loader tests (loading is the slow part, so once per session).

The mlx tests need the mlx-cpu group on Linux (mlx and mlx-lm are main dependencies on a
Mac); the transformers tests need the torch group. Both are installed by `nox -s loader`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.abc
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from athena.models.olmoe import OLMoEConfig, OLMoEModel


@pytest.fixture(scope="session")
def mlx_installed() -> None:
    """Skip unless mlx and mlx-lm import (the mlx-cpu group on Linux; main deps on a Mac)."""
    pytest.importorskip("mlx.core", reason="needs mlx: install the mlx-cpu group on Linux")
    pytest.importorskip("mlx_lm", reason="needs mlx-lm: install the mlx-cpu group on Linux")


@pytest.fixture(scope="session")
def torch_installed() -> None:
    """Skip unless torch imports (the torch group)."""
    pytest.importorskip("torch", reason="needs torch: install the torch group")
    pytest.importorskip("transformers", reason="needs transformers")


@pytest.fixture(scope="session")
def mlx_model(tiny_olmoe: Path, mlx_installed: None) -> OLMoEModel:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe)))
    assert model.load(), model.load_error
    return model


@pytest.fixture(scope="session")
def torch_model(tiny_olmoe: Path, torch_installed: None) -> OLMoEModel:
    model = OLMoEModel(OLMoEConfig(model_name=str(tiny_olmoe), use_mlx=False))
    assert model.load(), model.load_error
    return model


@pytest.fixture
def copy_of_tiny(tiny_olmoe: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint, for tests that damage it."""
    return Path(shutil.copytree(tiny_olmoe, tmp_path / "olmoe-copy"))


@pytest.fixture
def loader_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="athena")
    return caplog


class _RaisingFinder(importlib.abc.MetaPathFinder):
    """Makes `import <name>` (and its submodules) raise `error`, like a broken install."""

    def __init__(self, name: str, error: ImportError) -> None:
        self.name, self.error = name, error

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == self.name or fullname.startswith(self.name + "."):
            raise self.error
        return None


@pytest.fixture
def break_import(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, ImportError], None]:
    """`break_import(name, error)`: `import name` raises `error` in this test, like a broken
    install (its modules leave sys.modules; monkeypatch restores them after)."""

    def apply(name: str, error: ImportError) -> None:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            monkeypatch.delitem(sys.modules, module)
        monkeypatch.setattr(sys, "meta_path", [_RaisingFinder(name, error), *sys.meta_path])

    return apply


@pytest.fixture
def hide_module(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """`hide_module(name)`: `import name` raises ModuleNotFoundError, as if not installed."""

    def apply(name: str) -> None:
        monkeypatch.setitem(sys.modules, name, None)

    return apply


@pytest.fixture
def no_mlx(hide_module: Callable[[str], None]) -> None:
    """mlx-lm is not installed, as far as this test's imports can tell (simulated)."""
    hide_module("mlx_lm")


@pytest.fixture
def simulated_host(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """`simulated_host(**fields)`: athena's Host seam (`probe_host`) reports these Host fields
    (simulated: a Mac's system, os_version, mps...); the rest is this machine's."""

    def apply(**fields: Any) -> None:
        for name, module in list(sys.modules.items()):
            probe = getattr(module, "probe_host", None)
            if name.startswith("athena") and callable(probe):
                simulated = functools.partial(_replaced, probe, fields)
                monkeypatch.setattr(module, "probe_host", simulated)

    return apply


def _replaced(probe: Callable[..., Any], fields: dict[str, Any], metal: Any = None) -> Any:
    return dataclasses.replace(probe(metal), **fields)


@pytest.fixture
def machine_memory(simulated_host: Callable[..., None]) -> Callable[[int], None]:
    """`machine_memory(n)`: the Host seam says this machine has n bytes of RAM (simulated)."""
    return lambda total: simulated_host(total_memory=total)
