"""Run probe_child.py in a child of the checked Python: a broken mlx that kills its
interpreter becomes a failed step, not a crashed doctor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("probe_child.py")
STEP_PREFIX = "ATHENA-PROBE "
DEFAULT_TIMEOUT = 600.0


@dataclass
class ProbeResult:
    """What the child reported: `steps` maps a step name to its fields (`ok`, `error`, ...)."""

    python: str
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    returncode: int | None = None
    stderr: str = ""

    def step(self, name: str) -> dict[str, Any] | None:
        return self.steps.get(name)


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "timed out"
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def run_probe(
    python: str | None = None,
    modes: tuple[str, ...] = ("env",),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    expected_steps: tuple[str, ...] = (),
) -> ProbeResult:
    """Run the probe's `modes` with `python` (default: this interpreter).

    A step that started but never reported (the child crashed or timed out in it) gets
    `ok: False` and an error naming how the child ended, with the tail of its stderr; the
    `expected_steps` that never started are marked as not run.
    """
    python = python or sys.executable
    result = ProbeResult(python=python)
    # Run by path, so the folder the user stands in is not on sys.path (a json.py or a stray
    # *.dist-info there would run or fake a package); PYTHONSAFEPATH (3.11+, ignored before)
    # leaves out the child's own folder too.
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        completed = subprocess.run(
            [python, str(CHILD), *modes], capture_output=True, text=True, timeout=timeout, env=env
        )
        stdout, result.stderr = completed.stdout, completed.stderr
        result.returncode = completed.returncode
    except subprocess.TimeoutExpired as error:  # returncode stays None
        stdout, result.stderr = _text(error.stdout), _text(error.stderr)
    except OSError as error:
        stdout, result.stderr, result.returncode = "", f"could not run {python}: {error}", 127
    started: list[str] = []
    for line in stdout.splitlines():
        if not line.startswith(STEP_PREFIX):
            continue
        try:
            fields = json.loads(line[len(STEP_PREFIX) :])
        except json.JSONDecodeError:
            continue
        step = str(fields.pop("step", ""))
        if step.endswith(":start"):
            started.append(step.removesuffix(":start"))
        else:
            result.steps[step] = fields
    if result.returncode != 0:
        how = f"the probe process ({python}) {_describe_exit(result.returncode)}"
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        for step in started:
            if step not in result.steps:
                result.steps[step] = {"ok": False, "error": f"{how} in this step: {tail}".strip()}
        for step in expected_steps:
            if step not in result.steps:
                result.steps[step] = {"ok": False, "error": f"not run: {how} earlier"}
    return result


def _text(value: str | bytes | None) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""
