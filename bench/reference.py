"""The committed reference run: one per kind of machine, in bench/results/, quoted in README.

`bench/run.py` writes every run to bench/results/runs/ (ignored by git). `--save-reference`
also copies a full run to bench/results/reference-<machine kind>.{json,md,png} (replacing the
one committed for that kind of machine) and refreshes bench/README.md's quote of it, between
`<!-- generated:reference-<kind>.json -->` markers; tests/bench/test_reference.py checks that
the quote is what the JSON says.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.common import ROOT
from bench.machine import machine_kind

sys.path.insert(0, str(ROOT / "docs" / "scripts"))
from quotes import refresh_quote

RESULTS = ROOT / "bench" / "results"
RUNS = RESULTS / "runs"
README = ROOT / "bench" / "README.md"


def reference_name(run: dict[str, Any]) -> str:
    """`reference-linux-x86_64-2core`: the stem of the reference files for `run`'s machine."""
    return f"reference-{machine_kind(run['machine'])}"


def references(results: Path = RESULTS) -> list[Path]:
    """The committed reference JSONs, one per kind of machine."""
    return sorted(results.glob("reference-*.json"))


def save_reference(run_json: Path, results: Path = RESULTS, readme: Path = README) -> Path:
    """Copy the run at `run_json` (+ its .md and .png) to `results` as the reference for its
    kind of machine, and refresh `readme`'s quote of it. Returns the reference JSON's path."""
    run = json.loads(run_json.read_text())
    stem = reference_name(run)
    results.mkdir(parents=True, exist_ok=True)
    target = results / f"{stem}.json"
    for suffix in (".json", ".md", ".png"):
        source = run_json.with_suffix(suffix)
        if source.exists():
            shutil.copyfile(source, target.with_suffix(suffix))
    if not (readme.exists() and refresh_quote(readme, target.name, report.summary(run))):
        print(
            f"{readme} quotes no {target.name} yet: add a `<!-- generated:{target.name} -->` "
            f"section (closed by `<!-- /generated:{target.name} -->`) and save again",
            flush=True,
        )
    return target
