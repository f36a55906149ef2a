"""The smoke section (`--smoke`): generate 4 tokens from the tiny checkpoint, then compare
the mlx (and transformers) logits and greedy ids with the reference (numerics.py)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from athena.doctor import numerics
from athena.doctor.report import Check, Report

REFERENCE_HINT = (
    "this machine does not compute the team's numbers: a wrong mlx build (`uv sync --locked "
    "--reinstall-package mlx`), broken Metal kernels (if `ATHENA_MLX_DEVICE=cpu athena doctor "
    "--smoke` passes, Metal is at fault), or a device that differs from the team's (`athena "
    "doctor --compare` with a teammate's report)"
)
MISSING = {
    "mlx": "mlx-lm is not installed (a main dependency on a Mac; the mlx-cpu group on Linux)",
    "transformers": "torch is not installed (optional: `uv sync --locked --group torch`)",
}


def smoke_checks(report: Report, generate: bool = True) -> None:
    """Write the tiny checkpoint once; generate with it, then compare with the reference."""
    with tempfile.TemporaryDirectory(prefix="athena-doctor-") as tmp:
        try:
            path = numerics.write_checkpoint(Path(tmp))
        except Exception as error:
            path, why = None, f"{type(error).__name__}: {error}"
            problem = f"cannot write the tiny checkpoint: {why}"
        if generate:
            _generate_check(report, path)
        try:
            reference = numerics.load_reference()
            if path is None:
                raise numerics.ReferenceError(problem)
            numerics.check_checkpoint(reference, path)
        except numerics.ReferenceError as error:
            for backend in MISSING:
                report.add(_check(backend, "fail", str(error), hint=f"`{numerics.REGENERATE}`"))
            return
        for backend in MISSING:
            module = "mlx_lm" if backend == "mlx" else "torch"
            if importlib.util.find_spec(module) is None:
                report.add(_check(backend, "skip", MISSING[backend], required=False))
            else:
                _reference_check(report, backend, path, reference)


def _generate_check(report: Report, path: Path | None) -> None:
    title = "tiny OLMoE: load + 4 tokens"
    try:
        if path is None:
            raise RuntimeError("the tiny checkpoint could not be written")
        from athena.models.olmoe import OLMoEConfig, OLMoEModel

        config = OLMoEConfig(
            model_name=str(path), mlx_model_path=str(path), max_tokens=4, temperature=0.0, seed=0
        )
        model = OLMoEModel(config)
        if not model.load():
            raise RuntimeError(f"OLMoEModel.load() returned False for {path} (see the log)")
        text = model.generate("Hello", max_tokens=4, temperature=0.0)
        backend, device = model.backend, model.device
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        hint = "fix the failed checks above first; then run `pytest tests/loader` for details"
        report.add(Check("smoke.generate", title, "fail", detail, required=True, hint=hint))
        return
    detail = f"backend {backend} ({device}): generated {text!r}"
    data = {"backend": backend, "device": device, "text": text}
    report.add(Check("smoke.generate", title, "pass", detail, required=True, data=data))


def _check(backend: str, status: str, detail: str, **fields: Any) -> Check:
    fields.setdefault("required", True)
    title = f"reference numerics, {backend}"
    return Check(f"smoke.reference_{backend}", title, status, detail, **fields)


def _reference_check(report: Report, backend: str, path: Path, reference: dict[str, Any]) -> None:
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    options: dict[str, Any] = {"use_mlx": backend == "mlx", "allow_fallback": False}
    model = OLMoEModel(OLMoEConfig(str(path), mlx_model_path=str(path), dtype="float32", **options))
    if not model.load():
        detail = f"load() failed: {model.load_error}"
        report.add(_check(backend, "fail", detail, hint=REFERENCE_HINT))
        return
    try:
        result = numerics.compare(reference, numerics.measure(model))
    except Exception as error:  # a backend that loads but cannot run: say so, do not crash
        report.add(_check(backend, "fail", f"{type(error).__name__}: {error}", hint=REFERENCE_HINT))
        return
    worst = result["max_difference"]
    data = {**result, "tolerance": reference["tolerance"], "greedy_ids": reference["greedy_ids"]}
    if result["problems"]:
        detail = "; ".join(result["problems"])
        report.add(_check(backend, "fail", detail, hint=REFERENCE_HINT, data=data))
        return
    detail = (
        f"max |logit - reference| {worst:.1e} <= {reference['tolerance']} at positions "
        f"{', '.join(reference['logits'])}; greedy ids match ({len(reference['greedy_ids'])})"
    )
    report.add(_check(backend, "pass", detail, data=data))
