"""The platform marks of tests/conftest.py, and the simulated Mac the suite can run under."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SIMULATED_MAC

ROOT = Path(__file__).resolve().parents[1]


def probe_host() -> object:
    for name in ("athena.host", "athena.doctor.host"):  # floor 0, or where it was
        try:
            return importlib.import_module(name).probe_host()
        except ImportError:
            continue
    raise AssertionError("no athena module defines probe_host")


def test_probe_host_answers_the_simulated_mac_or_the_real_machine() -> None:
    host = probe_host()
    if SIMULATED_MAC:
        assert (host.system, host.machine, host.metal.available) == ("Darwin", "arm64", False)  # type: ignore[attr-defined]
    else:
        assert host.system == platform.system()  # type: ignore[attr-defined]


@pytest.mark.linux("checks that the mark lets a test run on Linux")
def test_a_linux_mark_runs_on_linux() -> None:
    assert sys.platform.startswith("linux") and not SIMULATED_MAC


@pytest.mark.mac("checks that the mark lets a test run on a real Mac only")
def test_a_mac_mark_runs_on_a_real_mac_only() -> None:
    assert sys.platform == "darwin"


@pytest.mark.skipif(SIMULATED_MAC, reason="starts the simulation itself")
def test_the_simulated_mac_skips_linux_tests_with_their_reason() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env={**os.environ, "ATHENA_TESTS_SIMULATED_MAC": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "needs Linux: checks that the mark lets a test run on Linux" in out
    assert "needs a real Mac: checks that the mark lets a test run on a real Mac only" in out
    assert "1 passed, 3 skipped" in out, out
