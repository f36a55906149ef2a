"""The smoke section (`--smoke`): a tiny OLMoE checkpoint loaded with the chosen backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from athena.doctor.report import Check, Report


def smoke_check(report: Report) -> None:
    """Write a tiny OLMoE checkpoint, load it with the chosen backend, generate 4 tokens."""
    import tempfile

    title = "tiny OLMoE: load + 4 tokens"
    try:
        from athena.checkpoints import write_tiny_olmoe
        from athena.models.olmoe import OLMoEConfig, OLMoEModel

        with tempfile.TemporaryDirectory(prefix="athena-doctor-") as tmp:
            path = write_tiny_olmoe(Path(tmp) / "tiny-olmoe", size="tiny", seed=0)
            model = OLMoEModel(
                OLMoEConfig(
                    model_name=str(path),
                    mlx_model_path=str(path),
                    max_tokens=4,
                    temperature=0.0,
                    seed=0,
                )
            )
            if not model.load():
                raise RuntimeError(f"OLMoEModel.load() returned False for {path} (see the log)")
            text = model.generate("Hello", max_tokens=4, temperature=0.0)
            backend = model._backend
    except Exception as error:
        report.add(
            Check(
                "smoke.generate",
                title,
                "fail",
                f"{type(error).__name__}: {error}",
                required=True,
                hint="fix the failed checks above first; then run "
                "`pytest tests/loader` for details",
            )
        )
        return
    report.add(
        Check(
            "smoke.generate",
            title,
            "pass",
            f"backend {backend}: generated {text!r}",
            required=True,
            data={"backend": backend, "text": text},
        )
    )


REFERENCE_HINT = (
    "this machine does not compute the team's numbers: a wrong mlx build (`uv sync --locked "
    "--reinstall-package mlx`), broken Metal kernels (if `ATHENA_MLX_DEVICE=cpu athena doctor "
    "--smoke` passes, Metal is at fault), or a device that differs from the team's (`athena "
    "doctor --compare` with a teammate's report)"
)


def reference_checks(report: Report) -> None:
    """Load the canonical tiny checkpoint on the mlx path, and on the transformers path when
    torch is installed, and compare logits and greedy ids with reference/tiny.json."""
    import importlib.util
    import tempfile

    from athena.doctor import numerics

    backends = {
        "mlx": importlib.util.find_spec("mlx_lm") is not None,
        "transformers": importlib.util.find_spec("torch") is not None,
    }
    missing = {
        "mlx": "mlx-lm is not installed (a main dependency on a Mac; the mlx-cpu group on Linux)",
        "transformers": "torch is not installed (optional: `uv sync --locked --group torch`)",
    }
    try:
        reference = numerics.load_reference()
        with tempfile.TemporaryDirectory(prefix="athena-doctor-") as tmp:
            path = numerics.write_checkpoint(Path(tmp))
            numerics.check_checkpoint(reference, path)
            for backend, available in backends.items():
                if available:
                    _reference_check(report, backend, path, reference)
                else:
                    report.add(_check(backend, "skip", missing[backend], required=False))
    except numerics.ReferenceError as error:
        for backend in backends:
            report.add(_check(backend, "fail", str(error), hint=f"`{numerics.REGENERATE}`"))


def _check(backend: str, status: str, detail: str, **fields: Any) -> Check:
    fields.setdefault("required", True)
    title = f"reference numerics, {backend}"
    return Check(f"smoke.reference_{backend}", title, status, detail, **fields)


def _reference_check(report: Report, backend: str, path: Path, reference: dict[str, Any]) -> None:
    from athena.doctor import numerics
    from athena.models.olmoe import OLMoEConfig, OLMoEModel

    model = OLMoEModel(
        OLMoEConfig(
            model_name=str(path),
            mlx_model_path=str(path),
            use_mlx=backend == "mlx",
            allow_fallback=False,
            dtype="float32",
        )
    )
    if not model.load():
        report.add(
            _check(backend, "fail", f"load() failed: {model.load_error}", hint=REFERENCE_HINT)
        )
        return
    try:
        result = numerics.compare(reference, numerics.measure(model))
    except Exception as error:  # a backend that loads but cannot run: say so, do not crash
        report.add(_check(backend, "fail", f"{type(error).__name__}: {error}", hint=REFERENCE_HINT))
        return
    worst = result["max_difference"]
    data = {**result, "tolerance": reference["tolerance"], "greedy_ids": reference["greedy_ids"]}
    if result["problems"]:
        report.add(
            _check(backend, "fail", "; ".join(result["problems"]), hint=REFERENCE_HINT, data=data)
        )
        return
    detail = (
        f"max |logit - reference| {worst:.1e} <= {reference['tolerance']} at positions "
        f"{', '.join(reference['logits'])}; greedy ids match ({len(reference['greedy_ids'])})"
    )
    report.add(_check(backend, "pass", detail, data=data))
