"""athena's benchmarks: `nox -s bench` (or `python bench/run.py`), `--quick` for a smoke run.

Writes <out>/<UTC time>-<host>.{json,md,png}; targets are reported, never asserted (exit code 0
whenever the run completed). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    bandwidth,
    encode,
    envsetup,
    fit,
    imports_cost,
    model_lock,
    models,
    preflight,
    report,
    verify_files,
)
from bench import train as train_bench
from bench.common import ROOT, Results
from bench.machine import describe, load_average, machine_kind

RESULTS = ROOT / "bench" / "results"  # the committed references, one per kind of machine
RUNS = RESULTS / "runs"  # every run (ignored by git)
SCHEMA_VERSION = 1
GROUPS: tuple[str, ...] = ("import", "bandwidth", "models", "env", "train", "preflight")
GROUPS += ("encode", "files", "fit", "router")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="smoke mode: tiny checkpoint, 1-2 repeats, no pip/nox")
    add("--out", type=Path, default=RUNS, help="where results go (bench/results/runs/)")
    add("--sizes", help="checkpoint sizes, comma-separated (default: tiny,medium; --quick: tiny)")
    add("--rounds", type=int, help="rounds per checkpoint size (default 3; --quick: 1)")
    add("--only", help=f"run only these groups, comma-separated, of {','.join(GROUPS)}")
    add(
        "--fit-shape", choices=("real", "like"), help="fit's checkpoint (default real; quick: like)"
    )
    options = ",".join(o[0] for o in fit.OPTIONS)
    add("--fit-options", help=f"fit's options, comma-separated, of {options} (default: all)")
    add("--note", action="append", default=[], help="a note stored in the JSON (repeatable)")
    add("--save-reference", action="store_true", help="also make this full run the reference")
    return parser.parse_args(argv)


def save_reference(run_json: Path, results: Path = RESULTS) -> Path:
    """Copy the run at `run_json` (+ its .md and .png) to `results` as the reference for its
    kind of machine (bench/README.md links its .md). Returns the reference JSON's path."""
    stem = f"reference-{machine_kind(json.loads(run_json.read_text())['machine'])}"
    results.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".md", ".png"):
        if run_json.with_suffix(suffix).exists():
            shutil.copyfile(run_json.with_suffix(suffix), (results / stem).with_suffix(suffix))
    return results / f"{stem}.json"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    only = set(args.only.split(",")) if args.only else set(GROUPS)
    unknown = only - set(GROUPS)
    if unknown:
        print(f"bench/run.py: unknown group(s) {sorted(unknown)}; use {GROUPS}", file=sys.stderr)
        return 2
    if args.save_reference and (args.quick or args.only):
        message = "--save-reference needs a full run of every group; drop --quick/--only"
        print(f"bench/run.py: {message}", file=sys.stderr)
        return 2
    quick = args.quick
    sizes = args.sizes.split(",") if args.sizes else (["tiny"] if quick else ["tiny", "medium"])
    rounds = {s: args.rounds or (1 if quick else 3) for s in sizes}
    max_tokens = {s: 16 if quick else (32 if s == "tiny" else 16) for s in sizes}
    # Generate calls per process (the fastest counts): small checkpoints take milliseconds.
    generate_repeats = {s: 2 if s == "medium" else (3 if quick else 5) for s in sizes}
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "tmp").mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=out / "tmp", prefix="athena-bench-"))

    started = datetime.now(UTC)
    t0 = time.perf_counter()
    results = Results(notes=list(args.note))
    if quick:
        note = "--quick: smoke mode (tiny checkpoint, 1-2 repeats, pip and nox skipped); "
        results.notes.append(note + "not figures to quote")
    machine = describe()
    print(f"athena bench ({'quick' if quick else 'full'}) on {machine['cpu_model']}", flush=True)
    run: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "mode": "quick" if quick else "full",
        "started_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": [Path(sys.executable).name, *sys.argv],
        "machine": machine,
        "settings": dict(sizes=sizes, rounds=rounds, max_tokens=max_tokens),
    }
    run["settings"].update(generate_repeats=generate_repeats, prompt=models.PROMPT)
    run["settings"]["groups"] = sorted(only)
    try:
        if "import" in only:
            imports_cost.measure(results, repeats=1 if quick else 7, warmup=not quick)
        if "bandwidth" in only:
            run["mlx_device"] = bandwidth.measure(results, quick=quick)
        if "models" in only:
            run["checkpoints"] = models.measure(
                results, work, sizes=sizes, rounds=rounds, max_tokens=max_tokens,
                generate_repeats=generate_repeats, quick=quick,
            )  # fmt: skip
        if "env" in only:
            envsetup.measure(results, work, quick=quick)
        if "train" in only:
            train_bench.measure(results, quick=quick)
        if "preflight" in only:  # issue 16: estimated vs measured peak memory of a load
            preflight_sizes = args.sizes.split(",") if args.sizes else list(preflight.SIZES)
            preflight_sizes = ["tiny"] if quick and not args.sizes else preflight_sizes
            run["preflight"] = preflight.measure(results, work, sizes=preflight_sizes, quick=quick)
        if "fit" in only:  # issue 20: the preflight at real scale
            shape = args.fit_shape or ("like" if quick else "real")
            options = ["transformers-bfloat16"] if quick else None  # mlx: tests/bench/test_fit
            options = args.fit_options.split(",") if args.fit_options else options
            run["fit"] = fit.measure(results, work, shape=shape, only=options)
        if "router" in only:  # issue 20: the router-safe 4-bit
            router_sizes = args.sizes.split(",") if args.sizes else ["small", "medium"]
            run["router"] = fit.measure_router(
                results, work, sizes=["tiny"] if quick and not args.sizes else router_sizes
            )
        if "encode" in only:
            encode_sizes = args.sizes.split(",") if args.sizes else None
            encode.measure(results, work, quick=quick, sizes=encode_sizes)
        if "files" in only:  # issue 21: `athena doctor --verify-files` on the whole env
            verify_files.measure(results, quick=quick)
            model_lock.measure(results, work, quick=quick)  # issue 29: hashing the model
    finally:
        shutil.rmtree(work, ignore_errors=True)

    run.update(
        duration_s=time.perf_counter() - t0,
        finished_utc=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        load_average_at_end=load_average(),
        notes=results.notes,
        figures=results.figures,
        skipped=results.skipped,
    )
    targeted = [f for f in results.figures if f["target"]]
    run["targets_summary"] = {
        "met": sum(f["passed"] is True for f in targeted),
        "not_met": sum(f["passed"] is False for f in targeted),
        "not_met_ids": [f["id"] for f in targeted if f["passed"] is False],
    }
    stem = f"{started.strftime('%Y%m%dT%H%M%SZ')}-{socket.gethostname()}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(run, indent=1) + "\n")
    (out / f"{stem}.md").write_text(report.markdown(run))
    try:
        report.plot(run, out / f"{stem}.png")
    except ImportError as error:
        print(f"no plot: matplotlib is not importable ({error})", file=sys.stderr)
    print(f"wrote {json_path} (+ .md, .png) in {run['duration_s']:.0f} s", flush=True)
    if args.save_reference:
        print(f"reference: {save_reference(json_path)} (+ .md, .png)", flush=True)
    s = run["targets_summary"]
    print(f"targets: {s['met']} met, {s['not_met']} not met {s['not_met_ids']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
