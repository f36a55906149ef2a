"""`athena doctor --verify-files` on the whole environment (#21), in the doctor's child process:
its wall time (the median warm, the max as cold as this machine's cache allows) and the files.
"""

from __future__ import annotations

import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from athena.doctor.probe import run_probe
from bench.common import Results


def installed_bytes(names: tuple[str, ...] = ()) -> int:
    """The bytes RECORD lists with a size, over every distribution (or those `names`)."""
    total = 0
    dists = [metadata.distribution(n) for n in names] if names else metadata.distributions()
    for dist in dists:
        for line in (dist.read_text("RECORD") or "").splitlines():
            size = line.rsplit(",", 1)[-1]
            total += int(size) if size.isdigit() else 0
    return total


# --quick (the suite's smoke run) checks these only: the path is the same, the bytes are few.
QUICK_PACKAGES = ("athena", "numpy")


def measure(results: Results, *, quick: bool) -> None:
    seconds, files, packages, differences = [], 0, 0, 0
    names = QUICK_PACKAGES if quick else ()
    label = f"--verify-files, {' + '.join(names)} (quick)" if quick else "--verify-files, whole env"
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        probe = run_probe(sys.executable, ("files", *names), timeout=3600)
        seconds.append(time.perf_counter() - started)
        steps = [v for k, v in probe.steps.items() if k.startswith("files ")]
        if probe.returncode != 0 or not steps:
            results.skip("files.verify_all", label, probe.stderr[-200:])
            return
        files, packages = sum(s["files"] for s in steps), len(steps)
        differences = sum(bool(s["changed"] or s["missing"] or s["added"]) for s in steps)
    context = {
        "what": f"every file of {' and '.join(names) if names else 'every installed distribution'}"
        " against its RECORD sha256 "
        "(athena/doctor/probe.py files), this interpreter's environment",
        "packages": packages,
        "files": files,
        "bytes": installed_bytes(names),
        "packages_that_differ": differences,
    }
    results.add("files.verify_all", label, seconds, "s", None, context)
    results.add("files.count", "files verified", [files], "files")
