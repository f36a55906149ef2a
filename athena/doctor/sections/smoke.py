"""The smoke section (`--smoke`): a tiny OLMoE checkpoint loaded with the chosen backend."""

from __future__ import annotations

from pathlib import Path

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
