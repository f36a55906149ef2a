"""What the measurement scripts of docs/ share: the machine description and the outputs.

Each script writes, into its output folder (docs/generated/ by default):
- NAME.md: the Markdown table a guide quotes;
- NAME.json: the numbers, the settings, and the machine they were measured on;
- NAME.png where there is a plot.
Writing into docs/generated/ also refreshes the quoted copy in the guide, between
`<!-- generated:NAME.md -->` and `<!-- /generated:NAME.md -->` (docs/test_generated.py checks
that the two agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quotes import refresh_quote  # docs/scripts/quotes.py (this folder is on sys.path)

from athena.host import cpu_name

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
GENERATED = DOCS / "generated"
PACKAGES = ("mlx", "mlx-cpu", "mlx-metal", "mlx-lm", "numpy", "transformers", "torch")


def script_parser(doc: str) -> argparse.ArgumentParser:
    """The options every measurement script takes: --quick (tiny preset, short runs) and --out.
    A script adds its own (e.g. --size) before parsing."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny preset, short runs")
    parser.add_argument("--out", type=Path, default=GENERATED, help="output folder")
    return parser


def machine() -> dict[str, Any]:
    """The machine and software a measurement ran on (what the guides cite)."""
    from importlib import metadata

    import mlx.core as mx
    import psutil

    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "os": platform.platform(),
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "mlx_device": str(mx.default_device()),
        "mlx_device_info": {k: str(v) for k, v in mx.device_info().items()},
        "load_average_at_start": list(load) if load else None,
        "packages": versions,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def machine_line(info: dict[str, Any]) -> str:
    """One sentence naming the machine, for under a table."""
    packages = info["packages"]
    return (
        f"Measured {info['measured_at']} on {info['cpu']} ({info['logical_cores']} logical "
        f"cores, {info['ram_gib']} GiB RAM), {info['os']}, MLX device {info['mlx_device']}; "
        f"Python {info['python']}, mlx {packages['mlx']}, mlx-lm {packages['mlx-lm']}."
    )


def load_model(path: Path) -> tuple[Any, Any]:
    """`mlx_lm.load` of a local folder: (model, tokenizer wrapper)."""
    from mlx_lm import load

    model, tokenizer = load(str(path))[:2]
    return model, tokenizer


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `fn()` in seconds (the machine may be shared: the median is robust)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_outputs(
    name: str,
    markdown: str,
    data: dict[str, Any],
    out_dir: Path,
    *,
    command: str,
) -> Path:
    """NAME.md and NAME.json into `out_dir`; in docs/generated/ also refresh the guides' copies."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = markdown.rstrip("\n") + f"\n\nRegenerate: `{command}`.\n"
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    if out_dir.resolve() == GENERATED.resolve():
        for page in DOCS.glob("*.md"):
            refresh_quote(page, f"{name}.md", text)
    return out_dir / f"{name}.md"
