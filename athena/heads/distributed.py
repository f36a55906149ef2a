"""Data-parallel GRPO across processes (Macs) with mx.distributed, each collective on a timer.

Every rank holds the whole head and averages the gradients with mlx.nn.average_gradients. A
ring all_sum can hang and mx.distributed.init() waits forever for a peer that never comes, so
joining and each collective run under a watchdog that ends the process (exit code 75) after
`timeout` seconds; a rank that is gone makes the ring raise at once: RankLost, exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import mlx.core as mx
import mlx.nn as nn

from athena.heads.launch import RankLost, report_status, status_line, this_rank

TIMEOUT_EXIT_CODE = 75  # EX_TEMPFAIL: worth a retry
# The watcher of mx.distributed.init(): kills the process PID (argv[1]) and writes argv[3] on
# stderr unless its input ends (the init returned) within argv[2] seconds.
_WATCH = """import os, select, sys
if not select.select([0], [], [], float(sys.argv[2]))[0]:
    os.write(2, sys.argv[3].encode())
    os.kill(int(sys.argv[1]), 9)
"""


class Collectives:
    """The process group of a run (size 1 without a launcher) and its timed collectives."""

    def __init__(self, timeout: float = 120.0, group: Any = None) -> None:
        self.timeout, self.rank, self.size = timeout, this_rank(), 0
        if group is None:
            report_status(None, kind="joining")
            # init() holds the GIL while it waits: no thread runs, a process must watch it.
            words = self.last_words("connecting to the other ranks (mx.distributed.init)")
            with subprocess.Popen(
                [sys.executable, "-I", "-c", _WATCH, str(os.getpid()), str(timeout), words],
                stdin=subprocess.PIPE,
            ) as watcher:
                try:
                    group = mx.distributed.init()
                finally:
                    assert watcher.stdin is not None
                    watcher.stdin.close()  # the watcher reads the end of its input and exits
        self.group = group
        self.rank, self.size = int(group.rank()), int(group.size())

    @property
    def name(self) -> str:
        return f"rank {self.rank} of {self.size}" if self.size else f"rank {self.rank}"

    def last_words(self, what: str) -> str:
        """What a rank writes on stderr when `what` ran out of time (with its status line)."""
        reason = (
            f"{what} did not finish within {self.timeout:g} s (a rank is down or the ring hung)"
        )
        return (
            f"athena train-head: {self.name}: {reason}; stopping. Resume from the last "
            "checkpoint with --resume.\n" + status_line(TIMEOUT_EXIT_CODE, reason, "timeout")
        )

    @contextmanager
    def watchdog(self, what: str) -> Iterator[None]:
        """End the process (exit code 75) if the block takes longer than `timeout` seconds: a
        collective blocked in native code cannot be interrupted; mlx.launch stops the rest."""
        done = threading.Event()

        def expire() -> None:
            if not done.wait(self.timeout):
                with suppress(OSError):
                    os.write(2, self.last_words(what).encode())
                os._exit(TIMEOUT_EXIT_CODE)

        threading.Thread(target=expire, name="athena-collective-watchdog", daemon=True).start()
        try:
            yield
        except RuntimeError as error:
            if "[ring]" not in str(error) and "peer" not in str(error):
                raise
            raise RankLost(
                f"{self.name}: {what} failed: another rank is gone "
                f"({error}); see that rank's message"
            ) from None
        finally:
            done.set()

    def average_gradients(self, grads: Any, what: str = "the gradients") -> Any:
        """The mean of `grads` over the ranks (evaluated), under the watchdog."""
        with self.watchdog(f"averaging {what} (all_sum)"):
            averaged = nn.average_gradients(grads, group=self.group)
            mx.eval(averaged)
        return averaged

    def barrier(self) -> None:
        """Wait for every rank (an all_sum of one number), under the watchdog."""
        if self.size > 1:
            with self.watchdog("waiting for the other ranks"):
                mx.eval(mx.distributed.all_sum(mx.array(1.0), group=self.group))
