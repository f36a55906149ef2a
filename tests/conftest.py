"""Fixtures shared by every test folder, and the platform a test needs.

Every test states the platform it needs when it needs one: `@pytest.mark.linux("why")` (mlx's
CPU build, /proc, the doctor's Linux verdicts) or `@pytest.mark.mac("why")` (a real Mac's
Metal or sysctl). Elsewhere it is skipped with that reason, so on a Mac the suite passes or
skips, never fails for being on a Mac. Tests without a mark run everywhere.

No Mac here? `ATHENA_TESTS_SIMULATED_MAC=1 pytest ...` runs the suite as if on one, through the
one seam (athena's `probe_host()` answers a hosted macOS 15 arm64 VM without working Metal, as
GitHub's runners are), and `linux`-marked tests skip, as do `real_host` ones (they compare this
process with a child, which the simulation does not reach). What that cannot show: code that
reads `sys.platform` itself, child processes (they probe the real machine), the Mac's own
wheels (mlx-metal) and Metal.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from athena.checkpoints import write_tiny_olmoe

SIMULATED_MAC = os.environ.get("ATHENA_TESTS_SIMULATED_MAC", "") == "1"
PLATFORM_MARKS = {
    "linux": "needs Linux (REASON): mlx's CPU build, /proc, the doctor's Linux verdicts",
    "mac": "needs a real Mac (REASON): Metal, sysctl, the Mac's wheels",
    "real_host": "compares this process with a child that probes the real machine (REASON): "
    "skipped under ATHENA_TESTS_SIMULATED_MAC",
}


def on_linux() -> bool:
    return sys.platform.startswith("linux") and not SIMULATED_MAC


def on_real_mac() -> bool:
    return sys.platform == "darwin"


def pytest_configure(config: pytest.Config) -> None:
    # The preflight caches the machine's measured bandwidth: in a folder of this run, not the
    # user's ~/.cache/athena (set before xdist starts its workers, so they share it).
    if "ATHENA_CACHE_DIR" not in os.environ:
        os.environ["ATHENA_CACHE_DIR"] = tempfile.mkdtemp(prefix="athena-tests-cache-")
    for name, text in PLATFORM_MARKS.items():
        config.addinivalue_line("markers", f"{name}(reason): {text}")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers():
        if mark.name not in PLATFORM_MARKS:
            continue
        if not mark.args or not str(mark.args[0]).strip():
            raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.{mark.name} needs a reason")
        if mark.name == "real_host":
            if SIMULATED_MAC:
                pytest.skip(f"the simulated Mac cannot reach child processes: {mark.args[0]}")
            continue
        here = on_linux() if mark.name == "linux" else on_real_mac()
        if not here:
            where = "Linux" if mark.name == "linux" else "a real Mac"
            pytest.skip(f"needs {where}: {mark.args[0]}")


@pytest.fixture(autouse=True, scope="session")
def _simulated_mac() -> Iterator[None]:
    """Under ATHENA_TESTS_SIMULATED_MAC=1, every `probe_host` athena has answers a Mac."""
    if not SIMULATED_MAC:
        yield
        return
    from athena import host as module  # the one seam

    real = module.probe_host

    def simulated(metal: object = None) -> object:
        machine = real(metal)  # type: ignore[arg-type]
        return module.Host(
            system="Darwin",
            machine="arm64",
            os_version="15.7.2",
            total_memory=machine.total_memory,
            rosetta=False,
            sysctl={"iogpu.wired_limit_mb": "0", "sysctl.proc_translated": "0"},
            metal=module.Metal(False, {}),  # a hosted runner VM: no working Metal
            chip="Apple M1 (Virtual)",
        )

    patch = pytest.MonkeyPatch()
    for loaded in list(sys.modules.values()):
        name = getattr(loaded, "__name__", "")
        if name.startswith("athena") and getattr(loaded, "probe_host", None) is real:
            patch.setattr(loaded, "probe_host", simulated)
    try:
        yield
    finally:
        patch.undo()


@pytest.fixture(scope="session")
def tiny_olmoe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A "tiny" float32 OLMoE checkpoint (seed 0), written once per test session.

    Shared: tests must not modify it; copy it (shutil.copytree) to damage or change it.
    """
    return write_tiny_olmoe(tmp_path_factory.mktemp("models") / "olmoe-tiny")
