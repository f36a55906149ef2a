"""The model section (`--model MODEL`: the preflight's view of one folder as checks) and the
models section: each model models.lock pins, its commit and whether its files verified (from
the remembered hashes: no weight is read), and the action head's sha256 (--action-head)."""

from __future__ import annotations

from pathlib import Path

from athena.doctor.report import Check, Report, shown
from athena.host import Host
from athena.source import file_digest

OPTION_IDS = {
    "dtype='float32'": "float32",
    "dtype='bfloat16'": "bfloat16",
    "quantize_bits=8": "q8",
    "quantize_bits=4": "q4",
}
FIX = {"unverified": "run `athena models verify`", "missing": "run `athena models sync`"}
STATUS = {"fits": "pass", "tight": "warn", "does not fit": "warn", "unknown": "info"}


def model_checks(report: Report, host: Host, model: str) -> None:
    """Add the model section for `model` (a folder, or a hub id in the local cache)."""
    from athena import preflight
    from athena.errors import SourceError
    from athena.host import machine_bandwidth

    hint: str | None = "pass a model folder (config.json, model*.safetensors, tokenizer files)"
    try:
        info = preflight.inspect_model(model)
    except Exception as error:  # the doctor must not be what breaks: say it, with the type
        detail = f"{model} could not be read: {type(error).__name__}: {error}"
        detail = str(error) if isinstance(error, SourceError) else detail
        report.add(Check("model.folder", "model folder", "fail", detail, True, hint=hint))
        return
    budget, on_cpu = preflight.machine_budget(host), preflight.mlx_on_cpu(host)
    data = preflight.describe(info, budget=budget, on_cpu=on_cpu, bandwidth=machine_bandwidth(host))
    detail = (
        f"{data['path']}: {data['parameters']:,} parameters, {', '.join(data['stored_dtypes'])}, "
        f"{preflight.gib(data['disk_bytes'])} on disk"
    )
    folder = {k: data[k] for k in ("path", "parameters", "stored_dtypes", "disk_bytes")}
    report.add(Check("model.folder", "model folder", "pass", detail, True, data=folder))
    problem: str | None = info.config_problem
    detail = problem or "agrees with the weights (layers, hidden size, experts, vocabulary)"
    hint = "use the config.json that belongs to these weights" if problem else None
    status, title, config = "fail" if problem else "pass", "config.json vs weights", data["config"]
    report.add(Check("model.config", title, status, detail, True, hint, {"config": config}))
    problem, tokenizer = info.tokenizer_problem, data["tokenizer"]
    detail = problem or f"{tokenizer['kind']}, {tokenizer['vocab']} ids"
    hint = "re-download the folder or copy its tokenizer files" if problem else None
    status = "fail" if problem else "pass"
    report.add(Check("model.tokenizer", "tokenizer", status, detail, True, hint, tokenizer))
    this = data["this_load"]
    if this is not None:
        refused = this["status"] == "does not fit"
        hint = None
        if this["status"] in ("does not fit", "tight"):
            hint = data["problems"][-1] if refused else "it loads; other programs may swap"
        title = f"this load ({this['backend']}, {this['option']})"
        status = "fail" if refused else STATUS[this["status"]]
        detail = f"estimated resident {preflight.gib(this['resident'])}: {this['status']}"
        report.add(Check("model.load", title, status, detail, True, hint, this))
    for row in data["estimates"]:
        name = OPTION_IDS.get(row["option"], row["option"])
        status = STATUS[row["status"]]
        hint = None if status in ("pass", "info") else "pick an option that fits"
        detail = f"estimated resident {preflight.gib(row['resident'])}: {row['status']}"
        title = f"{row['option']} on {row['backend']}"
        report.add(Check(f"model.memory.{name}", title, status, detail, hint=hint, data=row))


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
