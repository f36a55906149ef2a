"""`athena doctor --model MODEL`: the preflight's view of one model folder (issue 16).

The same facts as `athena inspect` (athena/preflight.py: headers only, standard library only),
as doctor checks: `model.folder`, `model.config`, `model.tokenizer`, `model.load` (this
machine's default load) and `model.memory.<option>` (float32, bfloat16, 8-bit, 4-bit). The
memory of "this machine" comes from the doctor's Host (simulated in the Mac tests).
"""

from __future__ import annotations

from typing import Any

from athena.doctor.report import Check, Report

OPTION_IDS = {
    "dtype='float32'": "float32",
    "dtype='bfloat16'": "bfloat16",
    "quantize_bits=8": "q8",
    "quantize_bits=4": "q4",
}
STATUS = {"fits": "pass", "tight": "warn", "does not fit": "warn", "unknown": "info"}


def model_checks(report: Report, host: Any, model: str) -> None:
    """Add the model section for `model` (a folder, or a hub id in the local cache)."""
    from athena import preflight
    from athena.backends import SourceError

    try:
        info = preflight.inspect_model(model)
    except SourceError as error:
        report.add(
            Check(
                "model.folder",
                "model folder",
                "fail",
                str(error),
                required=True,
                hint="pass a model folder (config.json, model*.safetensors, tokenizer files)",
            )
        )
        return
    data = preflight.describe(
        info, budget=preflight.machine_budget(host), on_cpu=preflight.mlx_on_cpu(host)
    )
    dtypes = ", ".join(data["stored_dtypes"])
    report.add(
        Check(
            "model.folder",
            "model folder",
            "pass",
            f"{data['path']}: {data['parameters']:,} parameters, {dtypes}, "
            f"{preflight.gib(data['disk_bytes'])} on disk",
            required=True,
            data={k: data[k] for k in ("path", "parameters", "stored_dtypes", "disk_bytes")},
        )
    )
    config_problem = info.config_problem
    report.add(
        Check(
            "model.config",
            "config.json vs weights",
            "fail" if config_problem else "pass",
            config_problem or "agrees with the weights (layers, hidden size, experts, vocabulary)",
            required=True,
            hint="use the config.json that belongs to these weights" if config_problem else None,
            data={"config": data["config"]},
        )
    )
    tokenizer_problem = info.tokenizer_problem
    tokenizer = data["tokenizer"]
    report.add(
        Check(
            "model.tokenizer",
            "tokenizer",
            "fail" if tokenizer_problem else "pass",
            tokenizer_problem or f"{tokenizer['kind']}, {tokenizer['vocab']} ids",
            required=True,
            hint="re-download the folder or copy its tokenizer files"
            if tokenizer_problem
            else None,
            data=tokenizer,
        )
    )
    this = data["this_load"]
    if this is not None:
        refused = this["status"] == "does not fit"
        report.add(
            Check(
                "model.load",
                f"this load ({this['backend']}, {this['option']})",
                "fail" if refused else STATUS[this["status"]],
                f"estimated peak {preflight.gib(this['peak'])}: {this['status']}",
                required=True,
                hint=(data["problems"][-1] if refused else "it loads; other programs may swap")
                if this["status"] in ("does not fit", "tight")
                else None,
                data=this,
            )
        )
    for row in data["estimates"]:
        name = OPTION_IDS.get(row["option"], row["option"])
        status = STATUS[row["status"]]
        report.add(
            Check(
                f"model.memory.{name}",
                f"{row['option']} on {row['backend']}",
                status,
                f"estimated peak {preflight.gib(row['peak'])}: {row['status']}",
                hint=None if status in ("pass", "info") else "pick an option that fits",
                data=row,
            )
        )
