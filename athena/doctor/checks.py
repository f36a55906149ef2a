"""`athena doctor` and scripts/verify_env.py: the sections composed into a report
(docs/doctor.md); the Host seam is the only thing tests replace."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from athena import __version__
from athena.doctor import compare, sections
from athena.doctor.audit import audit_checks
from athena.doctor.lock import find_project_root, normalize, read_checkout
from athena.doctor.numerics import smoke_checks
from athena.doctor.probe import DEFAULT_TIMEOUT, run_probe
from athena.doctor.report import Report
from athena.host import Host, Metal, probe_host

HOST_FIELDS = ("system", "machine", "os_version", "target", "rosetta", "total_memory")


def run_doctor(
    *,
    host: Host | None = None,
    python: str | None = None,
    root: Path | None = None,
    audit: bool = True,
    smoke: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    model: str | None = None,
    verify_files: list[str] | None = None,
    action_head: Path | None = None,
) -> Report:
    """Every check, on `python` (default: this one) and the checkout `root` (default: found).
    `host` replaces the real machine (the simulated-Mac tests); `verify_files`: these packages'
    files against RECORD ([]: every locked one); `action_head`: a head file to fingerprint."""
    root = root or find_project_root()
    env = run_probe(python, ("env",), timeout=timeout)
    python_info = sections.env_info(env, root)
    installed = list((env.step("env") or {}).get("distributions") or [])  # name, version, ...
    versions: dict[str, str | None] = dict.fromkeys(sections.PACKAGES)
    for dist in installed:
        name = normalize(dist["name"])
        if name in versions or name == "athena":
            versions[name] = dist["version"]
    project_env = bool(python_info["in_venv"] and versions.get("athena"))
    python_info["project_env"] = project_env

    real_host = host or probe_host()
    required, why = sections.mlx_policy(real_host, versions)
    probe = None
    if required:
        probe = run_probe(python, ("mlx",), timeout=timeout, expected_steps=sections.MLX_STEP_NAMES)
    steps = probe.steps if probe else {}  # Metal as mlx sees it, unless `host` is simulated
    device, info = steps.get("mlx.default_device") or {}, steps.get("mlx.device_info") or {}
    if host is None and device.get("ok") and device.get("metal_available") is not None:
        metal = Metal(bool(device["metal_available"]), dict(info.get("info") or {}))
        real_host = replace(real_host, metal=metal)
    host = real_host

    lock, pin, flake, problems = read_checkout(root)
    lock_problem = problems.get("uv.lock") or "no uv.lock found (not a checkout)"
    report = Report(
        athena_version=__version__,
        host={key: getattr(host, key) for key in HOST_FIELDS}
        | {"metal": None if host.metal is None else host.metal.available},
        python=python_info,
        project={"root": str(root) if root else None, "uv_lock": lock is not None},
    )
    sections.system_checks(report, host, python_info)
    sections.project_check(report, root, problems)
    sections.python_pin_check(report, python_info, pin)
    locked = lock.versions if lock else None
    sections.package_checks(report, host, versions, locked, lock_problem, project_env, required)
    if verify_files is not None:
        sections.files_check(report, python, timeout, lock, verify_files, installed)
    sections.mlx_checks(report, host, probe, required, why)
    sections.memory_checks(report, host)
    if model is not None:
        sections.model_checks(report, host, model)
    models, head = sections.models_checks(report, root, action_head)
    if audit:
        audit_checks(report, host, root, installed, python_info["executable"])
    if smoke:
        smoke_checks(report)
    report.fingerprint = compare.fingerprint(
        host=host, python=python_info, root=root, lock=lock, distributions=installed,
        probe=probe, pin=pin, flake=flake, models=models, action_head=head
    )  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> int:
    """scripts/verify_env.py and `athena doctor`."""
    parser = argparse.ArgumentParser(
        prog="verify_env.py",
        description="Check the athena environment: system, packages, mlx, memory, CUDA audit.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: Any) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON (CI)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="also load a tiny OLMoE checkpoint, generate 4 tokens, and compare its logits and "
        "greedy ids with the committed reference (mlx; transformers when torch is installed)",
    )
    parser.add_argument("--no-audit", action="store_true", help="skip the CUDA-package audit")
    parser.add_argument(
        "--model", metavar="MODEL", help="also check a model folder, as `athena inspect` does"
    )
    parser.add_argument(
        "--python", metavar="PATH", help="check this interpreter instead of the running one"
    )
    parser.add_argument(
        "--project", metavar="DIR", type=Path, help="the athena checkout (default: found from here)"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="REPORT",
        type=Path,
        help="compare another machine's `--json` report with this one (or two reports: A B); "
        "prints only what differs; exit 1 when something that breaks reproducibility does",
    )
    parser.add_argument(
        "--verify-files",
        nargs="*",
        metavar="NAME",
        help="also check every installed file of the locked packages (or of the NAMEd ones) "
        "against the sha256 its wheel's RECORD lists: changed, missing and added files",
    )
    parser.add_argument(
        "--action-head",
        metavar="FILE",
        type=Path,
        help="the action head file the runs attach (OLMoEConfig.action_head_path): its sha256 "
        "goes into the fingerprint",
    )
    parser.add_argument(
        "--timeout",
        default=DEFAULT_TIMEOUT,
        help="seconds allowed for each probe process (default %(default)s)",
    )


def usage_problem(args: Any) -> str | None:
    """One sentence about a bad --project or --python, or None."""
    if args.project is not None and not (args.project / "uv.lock").exists():
        return f"{args.project} has no uv.lock: pass the athena checkout with --project"
    if args.python is not None and not Path(args.python).is_file():
        return f"--python {args.python} is not a file: pass the path of a Python interpreter"
    if getattr(args, "compare", None) and len(args.compare) > 2:
        return "--compare takes one report (compared with this machine) or two: A.json B.json"
    try:
        timeout = float(args.timeout)
    except ValueError:
        timeout = math.nan
    if not (0 < timeout < math.inf):
        return f"--timeout {args.timeout} is not a number of seconds above 0: pass e.g. 600"
    return None


def run(args: Any) -> int:
    """Print the report; the exit code is 0 when every required check passes."""
    if problem := usage_problem(args):
        print(f"verify_env.py: {problem}", file=sys.stderr)
        return 2
    if getattr(args, "compare", None):
        return run_compare(args)
    report = run_doctor(
        python=args.python,
        root=args.project,
        audit=not args.no_audit,
        smoke=args.smoke,
        timeout=float(args.timeout),
        model=args.model,
        verify_files=getattr(args, "verify_files", None),
        action_head=getattr(args, "action_head", None),
    )
    print(report.to_json() if args.json else report.render())
    return report.exit_code


def run_compare(args: Any) -> int:
    """`--compare`: 0 when nothing that breaks reproducibility differs, 1 when something
    does, 2 when a file is not a report this athena can compare (one sentence)."""
    try:
        others = [compare.load_report(path) for path in args.compare]
        names = (str(args.compare[0]), str(args.compare[-1]))
        if len(others) == 1:
            head, timeout = getattr(args, "action_head", None), float(args.timeout)
            here = run_doctor(python=args.python, root=args.project, timeout=timeout, audit=False,
                              action_head=head)  # fmt: skip
            names = (f"this machine ({here.fingerprint.get('hostname') or 'here'})", names[0])
            others.insert(0, compare.check_report(json.loads(here.to_json()), names[0]))
    except compare.CompareError as error:
        print(f"athena doctor --compare: {error}", file=sys.stderr)
        return 2
    breaking, expected = compare.compare(*others)
    if args.json:
        print(json.dumps(compare.to_dict(names, breaking, expected), indent=2, default=str))
    else:
        print(compare.render(names, breaking, expected))
    return 1 if breaking else 0
