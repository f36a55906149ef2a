"""`athena train-head --ranks N`: start the ranks with mlx.launch and say how each one ended.

mlx.launch exits 0 even when a rank fails, so each rank started with ATHENA_RANK_STATUS=1
writes status lines on stderr (`athena-rank-status: {"rank": R, ...}`: "joining" before it
connects, then how it ended) and run_ranks() reads them, stops a run whose rank has not joined
by the deadline, and raises RanksFailed naming the rank that failed first. No mlx import here."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena.heads.grpo_config import TrainError
from athena.source import parse_json

STATUS_ENV = "ATHENA_RANK_STATUS"
STATUS_PREFIX = "athena-rank-status: "
# What mlx.launch prints (in yellow) for a rank that exited non-zero or that it stopped.
_LAUNCH_EXIT = re.compile(r"Node with rank (\d+) (?:exited with code (-?\d+)|was killed)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RANK_FIELD = re.compile(r'^\{"rank": (\d+),')


class RanksFailed(TrainError):
    """A distributed run in which at least one rank did not finish; the sentence names it."""


class RankLost(TrainError):
    """A collective failed because another rank is gone (its process or its connection)."""


def this_rank() -> int:
    """This process's rank as mlx.launch numbers it (0 without a launcher)."""
    with suppress(ValueError):
        return int(os.environ.get("MLX_RANK", "0"))
    return 0


def report_status(code: int | None, error: str | None = None, kind: str = "") -> None:
    """Tell `run_ranks` how this rank ended (code None: it is joining), in one write."""
    with suppress(OSError):  # stderr gone: the launcher reports "ended without reporting"
        os.write(2, status_line(code, error, kind).encode())


def status_line(code: int | None, error: str | None = None, kind: str = "") -> str:
    """The line report_status writes ("" unless run_ranks started this rank)."""
    if os.environ.get(STATUS_ENV) != "1":
        return ""
    status = {"rank": this_rank(), "code": code, "error": error, "kind": kind}
    return STATUS_PREFIX + json.dumps(status) + "\n"


@contextmanager
def rank_status(plain: tuple[type[BaseException], ...] = (TrainError,)) -> Iterator[None]:
    """Report how the block ended (0; 1 with the error, "Type: message" unless `plain`; 130 on
    Ctrl-C) and let any exception go on."""
    try:
        yield
    except KeyboardInterrupt:
        report_status(130, "interrupted (Ctrl-C)", "interrupted")
        raise
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else (0 if error.code is None else 1)
        report_status(code, None if code == 0 else f"exited with code {code}")
        raise
    except BaseException as error:
        message = str(error) if isinstance(error, plain) else f"{type(error).__name__}: {error}"
        report_status(1, message, "lost" if isinstance(error, RankLost) else "error")
        raise
    report_status(0)


@dataclass
class RankEnd:
    """How one rank ended, from its status lines and mlx.launch's exit line."""

    rank: int
    status: dict[str, Any] | None = None
    exit_code: int | None = None  # from mlx.launch; None if it printed none (a clean exit)
    order: int = 1 << 30  # when the launcher first heard of its end (0 = first)
    joined: bool = False  # it reached mx.distributed.init
    malformed: str | None = None  # a status line of its that was not one (shown escaped)
    stopped: bool = False  # still running when run_ranks' deadline stopped the run

    @property
    def code(self) -> int | None:
        status = None if self.status is None else int(self.status["code"])
        return status if self.exit_code is None else self.exit_code

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.status is not None and self.malformed is None

    @property
    def absent(self) -> bool:
        """Never reached the connection: stopped (by mlx.launch or the deadline) before it."""
        stopped = self.exit_code == -signal.SIGTERM or (self.exit_code is None and self.stopped)
        return not self.joined and self.status is None and self.malformed is None and stopped

    @property
    def kind(self) -> str:
        return "" if self.status is None else str(self.status.get("kind"))

    @property
    def secondary(self) -> bool:
        """Stopped because another rank failed: lost its peer, or terminated by mlx.launch."""
        stopped = self.status is None and (self.exit_code == -signal.SIGTERM or self.stopped)
        return self.malformed is None and not self.absent and (self.kind == "lost" or stopped)

    def describe(self) -> str:
        if self.malformed is not None:
            return f"it wrote a malformed status line: {self.malformed}"
        if self.status is not None and self.status.get("error"):
            error = str(self.status["error"])  # a rank's words: bounded, escaped if need be
            return error if error.isprintable() and len(error) <= 500 else repr(error[:500])
        if self.absent:
            return "it never started connecting to the other ranks (not started, or stuck before)"
        code = self.code
        if code is not None and code < 0:
            name = next((s.name for s in signal.Signals if s == -code), f"signal {-code}")
            return f"killed by {name} before it could say why"
        if code is not None:
            return f"exited with code {code} without a message (see its output above)"
        return "ended without reporting (see the output above)"


def mlx_launch_path() -> str:
    """The mlx.launch beside this Python (the same environment), else on PATH."""
    beside = Path(sys.executable).parent / "mlx.launch"
    found = str(beside) if beside.is_file() else shutil.which("mlx.launch")
    if found is None:
        raise TrainError(
            "--ranks needs mlx.launch, which comes with mlx; install it (uv sync --group "
            "mlx-cpu on Linux; on a Mac mlx comes with uv sync)"
        )
    return found


def free_ports(count: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """A port P such that P .. P + count - 1 are free on `host` now (the ring listens there)."""
    for _ in range(tries):
        with socket.socket() as probe:
            probe.bind((host, 0))
            start = int(probe.getsockname()[1])
        if start + count > 65535:
            continue
        with suppress(OSError):  # one of them is taken: another start
            for port in range(start, start + count):
                with socket.socket() as s:
                    s.bind((host, port))
            return start
    raise TrainError(f"found no {count} free consecutive ports on {host} for the ring")


HOSTFILE_LIMIT = 2**20


def hostfile_ranks(hostfile: str | os.PathLike[str]) -> int:
    """How many ranks an mlx.launch hostfile starts (one per host)."""
    path = Path(hostfile)
    try:
        with path.open("rb") as f:  # a hostfile is a few lines: at most 1 MiB is read
            raw = f.read(HOSTFILE_LIMIT + 1)
        data, problem = parse_json(raw)
        if len(raw) > HOSTFILE_LIMIT:
            problem = f"is larger than {HOSTFILE_LIMIT // 2**20} MiB"
        if problem:
            raise ValueError(f"it {problem}")
        hosts = data["hosts"] if isinstance(data, dict) else data
        if not isinstance(hosts, list) or not hosts:
            raise ValueError("it lists no hosts")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainError(
            f"--hostfile {path} is not an mlx.launch hostfile ({error}); write one with "
            "mlx.distributed_config --hosts mac-a.local,mac-b.local --output-hostfile hosts.json"
        ) from None
    return len(hosts)


def launch_command(
    ranks: int, rank_command: Sequence[str], *, port: int | None, hostfile: str | None = None
) -> list[str]:
    """mlx.launch (on loopback, or on the hostfile's hosts) running `python RANK_COMMAND`
    with this Python on every rank."""
    where = ["--hostfile", hostfile] if hostfile is not None else ["-n", str(ranks)]
    where += ["--backend", "ring"] + (["--starting-port", str(port)] if port is not None else [])
    where += ["--env", f"{STATUS_ENV}=1", "--python", sys.executable]
    return [mlx_launch_path(), *where, "--", *rank_command]  # after --: all the rank's


def run_ranks(
    ranks: int, rank_command: Sequence[str], hostfile: str | None = None, timeout: float = 120.0
) -> None:
    """Run `python RANK_COMMAND` on `ranks` processes here (a loopback ring on free ports) or
    one per host of `hostfile`; RanksFailed unless every rank finished. A rank that has not
    joined (nor ended) within `timeout` seconds stops the run; then the watchdogs bound it."""
    port = free_ports(ranks) if hostfile is None else None  # a hostfile's hosts: its ports
    command = launch_command(ranks, rank_command, port=port, hostfile=hostfile)
    ends = {rank: RankEnd(rank) for rank in range(ranks)}
    everyone_heard = threading.Event()
    # stdin: a pipe that stays open (mlx.launch polls its stdin; /dev/null would make it spin);
    # its own session, so that the deadline stops it and the ranks it started together.
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as launcher:
        assert launcher.stderr is not None

        def expire() -> None:
            if not everyone_heard.wait(timeout):
                for end in ends.values():
                    end.stopped = end.order == 1 << 30
                with suppress(ProcessLookupError):
                    os.killpg(launcher.pid, signal.SIGKILL)

        threading.Thread(target=expire, name="athena-join-deadline", daemon=True).start()
        try:
            for line in launcher.stderr:
                _read_line(line, ends)
                if all(end.joined or end.order < 1 << 30 for end in ends.values()):
                    everyone_heard.set()
        except KeyboardInterrupt:  # its own session got no Ctrl-C: pass it on
            with suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGINT)
            launcher.wait()
            raise
        finally:
            everyone_heard.set()
        launch_code = launcher.wait()
    failure = summarize(list(ends.values()), ranks)
    if failure is None and launch_code != 0:
        failure = f"mlx.launch exited with code {launch_code} (see its output above)"
    if failure is not None:
        raise RanksFailed(failure)


def _read_line(line: str, ends: dict[int, RankEnd]) -> None:
    """Pass one line of mlx.launch's stderr on, keeping the status lines and exit codes."""
    at = line.find(STATUS_PREFIX)
    if at >= 0:
        if line[:at].strip():
            sys.stderr.write(line[:at] + "\n")
        text = line[at + len(STATUS_PREFIX) :].strip()
        try:
            status = json.loads(text)
        except ValueError:  # not JSON: its rank, if it names one, is still to blame
            status, named = {}, _RANK_FIELD.search(text)
            status["rank"] = int(named.group(1)) if named else None
        rank = status.get("rank") if isinstance(status, dict) else None
        end = ends.get(rank) if type(rank) is int else None
        if end is not None:  # a rank's line; anything else with the prefix is only output
            code, kind = status.get("code", ""), status.get("kind")
            if code is None and kind == "joining":
                end.joined = True
                return
            if type(code) is int and isinstance(status.get("error"), str | None):
                end.status = status
            elif end.malformed is None:
                end.malformed = repr(text[:200]) + ("..." if len(text) > 200 else "")
            _heard(end, ends)
            return
    sys.stderr.write(line)
    sys.stderr.flush()
    found = _LAUNCH_EXIT.search(_ANSI.sub("", line))
    if found and int(found.group(1)) in ends:
        end, code = ends[int(found.group(1))], found.group(2)
        end.exit_code = int(code) if code is not None else -signal.SIGTERM
        _heard(end, ends)


def _heard(end: RankEnd, ends: dict[int, RankEnd]) -> None:
    end.order = min(end.order, sum(other.order < 1 << 30 for other in ends.values()))


def summarize(ends: list[RankEnd], ranks: int) -> str | None:
    """None if every rank finished; else one sentence: the rank that failed first (not one
    only stopped for another's failure) and its error, then the others."""
    failed = [end for end in ends if not end.ok]
    if not failed:
        return None
    waited = any(end.absent for end in failed)  # the others' timeouts were waits for it
    primary = (e for e in failed if not e.secondary and not (waited and e.kind == "timeout"))
    causes = sorted(primary, key=lambda e: e.order) or failed
    first = causes[0]
    same = [end.rank for end in causes[1:] if end.describe() == first.describe()]
    sentence = f"rank {first.rank} of {ranks} failed: {first.describe().rstrip('.')}"
    if same:
        sentence += f" (rank{'s' if len(same) > 1 else ''} {', '.join(map(str, same))} too)"
    if others := [end for end in ends if end is not first and end.rank not in same]:
        sentence += "; " + ", ".join(_other(end) for end in others)
    return sentence + ". Fix that and run again, or continue from the last checkpoint with --resume"


def _other(end: RankEnd) -> str:
    code = end.code
    if end.ok:
        return f"rank {end.rank} finished"
    if end.kind == "lost":
        how = "stopped when it lost the connection to the others"
    elif end.status is None and code == -signal.SIGTERM:
        how = "was stopped by mlx.launch"
    elif end.status is None and end.stopped:
        how = "was stopped at the deadline"
    else:
        how = f"failed: {end.describe().rstrip('.')}"
    return f"rank {end.rank} {how} (exit code {code if code is not None else 'unknown'})"
