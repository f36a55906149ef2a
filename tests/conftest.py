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
from collections.abc import Callable, Iterator
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files that hold a `slow` test first (in their order), then the others: with the test
    workers taking a file each in this order (noxfile.py's PARALLEL), the long ones start
    first and the short ones fill in, so that the workers finish together."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: each file keeps its order


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


# Runs CODE (argv[1]) in a forked child that SIGKILLs itself at its Nth call of a file-system
# function (the stdlib's, patched in that child only, after it ran SETUP, argv[2]), for N = 1,
# 2, ...: after each kill it prints N and waits for a line on stdin (the test's check is done);
# "done" when a child completes. The modules of argv[3:] are imported once, here, so a child
# starts in a fork.
KILLING_DRIVER = """
import builtins, importlib, io, os, signal, sys, traceback

for module in sys.argv[3:]:
    importlib.import_module(module)
for step in range(1, 100_000):
    pid = os.fork()
    if pid == 0:
        exec(sys.argv[2], {"__name__": "setup"})
        calls = 0

        def counting(function):
            def call(*args, **kwargs):
                global calls
                calls += 1
                if calls == step:
                    os.kill(os.getpid(), signal.SIGKILL)
                return function(*args, **kwargs)
            return call

        for name in ("open", "write", "close", "fsync", "fchmod", "chmod", "mkdir", "rename",
                     "replace", "unlink", "rmdir", "link", "ftruncate"):
            setattr(os, name, counting(getattr(os, name)))
        builtins.open = io.open = counting(io.open)
        try:
            exec(sys.argv[1], {"__name__": "child"})
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
        print(step, flush=True)
        sys.stdin.readline()
        continue
    print("done" if status == 0 else f"failed at step {step}", flush=True)
    break
"""


@pytest.fixture(scope="session")
def kill_at_each_step() -> Callable[..., int]:
    """kill_at_each_step(code, check, *modules, setup=""): runs `code` (Python) in a child
    killed (SIGKILL) at its 1st file-system call, then at its 2nd, ... calling `check(n)`
    after each kill, until a child completes (then `check(0)`); returns how many steps the
    write took. Each child runs `setup` first (unpatched); `modules` are imported once before
    the children fork (athena.atomic always)."""
    import subprocess

    def run(code: str, check: Callable[[int], None], *modules: str, setup: str = "") -> int:
        argv = [sys.executable, "-c", KILLING_DRIVER, code, setup, "athena.atomic", *modules]
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as driver:
            assert driver.stdin is not None and driver.stdout is not None
            steps = 0
            for line in driver.stdout:
                if not line.strip().isdigit():
                    assert line == "done\n", line
                    check(0)
                    return steps
                steps = int(line)
                check(steps)
                driver.stdin.write("next\n")
                driver.stdin.flush()
        raise AssertionError("the driver ended before a write completed")

    return run
