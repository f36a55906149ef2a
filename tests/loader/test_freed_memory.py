"""A transformers load keeps what it frees from staying in glibc's heaps (athena.host.
freed_memory_returned): without it, the same real-shape load ended holding 13.3 to 17.4 GiB."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Frees one 8 MiB buffer (glibc then raises its mmap threshold past 4 MiB), then makes and frees
# 200 buffers of 4 MiB, keeping every 50th so the heap cannot shrink from its top. Prints the
# anonymous memory left, in MiB.
CHURN = """
import contextlib, sys
import numpy as np
from athena.host import freed_memory_returned

def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) // 1024

before = anon()
with freed_memory_returned() if sys.argv[1] == "returned" else contextlib.nullcontext():
    big = np.ones(8 << 20, np.uint8)
    del big
    arrays = [np.ones(4 << 20, np.uint8) for _ in range(200)]
    kept = arrays[::50]
    del arrays
print(anon() - before)
"""


def retained_mib(mode: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heaps (Linux) only")
def test_freed_buffers_go_back_to_the_system() -> None:
    kept = 4 * 4  # the four buffers kept
    assert retained_mib("plain") > 400  # glibc's own behaviour: the freed 784 MiB stay
    assert retained_mib("returned") < kept + 64


# After the load: 16 MiB of activations made and freed at each step, as generate does per token.
# Prints the page faults of the last 20 steps (each fault is a page given back and taken again).
STEPS = """
import resource
import numpy as np
from athena.host import freed_memory_returned

with freed_memory_returned():
    pass
def step():
    np.ones(16 << 20, np.uint8).sum()
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's heaps (Linux) only")
def test_after_the_load_freed_working_memory_is_kept_for_the_next_step() -> None:
    """glibc's trim threshold is back where its own adjustment leaves it: with it left at its
    128 KiB default, each step gave its 16 MiB back and faulted it in again (about 1,000
    faults a step here: the kernel maps several pages a fault)."""
    result = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) < 20 * 100
