"""The models section: each model models.lock pins, its commit and whether its files verified
(from the remembered hashes: no weight is read), and the action head's sha256 (--action-head)."""

from __future__ import annotations

from pathlib import Path

from athena.doctor.report import Check, Report, shown
from athena.source import file_digest

FIX = {"unverified": "run `athena models verify`", "missing": "run `athena models sync`"}


def models_checks(
    report: Report, root: Path | None, head: Path | None
) -> tuple[dict[str, dict[str, str]], dict[str, str] | None]:
    """Add the models section; return the fingerprint's `models` and `action_head`."""
    statuses: list[tuple[str, str, str]] = []
    if root is None or not (root / "models.lock").exists():
        report.add(Check("models.lock", "models.lock", "skip", "no models.lock: no model locked"))
    else:
        try:
            from athena import modellock
            from athena.errors import SourceError
        except ImportError:  # scripts/verify_env.py on Python < 3.11: no tomllib
            report.add(Check("models.lock", "models.lock", "info", "not read (needs Python 3.11+)"))
        else:
            try:
                statuses = list(modellock.locked_status(root))
            except SourceError as error:
                hint = "run `athena models lock --upgrade`"
                report.add(Check("models.lock", "models.lock", "fail", str(error), hint=hint))
    models: dict[str, dict[str, str]] = {}
    for name, commit, state in statuses:
        models[name] = {"commit": commit, "state": state}
        detail = f"{shown(commit[:12] if len(commit) == 40 else commit)} {state}"
        status = "pass" if state == "verified" else "warn"
        title = f"model {shown(name, 60)}"
        report.add(Check(f"models.{shown(name, 60)}", title, status, detail, hint=FIX.get(state)))
    if head is None:
        return models, None
    try:
        sha = file_digest(head)["sha256"]
    except OSError as error:
        detail = f"{shown(str(head))} cannot be read ({error.strerror or error})"
        hint = "pass the head file the runs attach (OLMoEConfig.action_head_path)"
        report.add(Check("models.action_head", "action head", "fail", detail, True, hint))
        return models, None
    report.add(Check("models.action_head", "action head", "pass", f"sha256 {sha[:12]}"))
    return models, {"sha256": sha}
