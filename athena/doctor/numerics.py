"""The smoke section (`--smoke`): generate 4 tokens from the canonical tiny checkpoint, then
compare its mlx (and transformers) logits and greedy ids with reference/tiny.json
(docs/doctor.md). numpy, mlx, transformers and torch are imported when used."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from athena.doctor.report import Check, Report

REFERENCE_PATH = Path(__file__).with_name("reference") / "tiny.json"
REFERENCE_SCHEMA = "athena-smoke-reference/1"
CHECKPOINT = {"size": "tiny", "seed": 0, "dtype": "float32"}
PROMPT = "The quick brown fox jumps over the lazy dog"
GREEDY_TOKENS = 8
TOLERANCE = 1e-4  # max |logit - reference| allowed
# The one command that rewrites reference/tiny.json (after a change to athena/checkpoints/).
REGENERATE = "uv run --locked --group torch python scripts/make_smoke_reference.py"


class ReferenceError(Exception):
    """The committed reference is missing, unreadable, or for other checkpoint bytes."""


def write_checkpoint(folder: Path) -> Path:
    """The canonical tiny checkpoint, in `folder`/tiny-olmoe."""
    from athena.checkpoints import write_tiny_olmoe

    return write_tiny_olmoe(Path(folder) / "tiny-olmoe", **CHECKPOINT)  # type: ignore[arg-type]


def checkpoint_hashes(path: Path) -> dict[str, str]:
    """sha256 of every file of a checkpoint folder, by file name."""
    return {
        file.name: hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(Path(path).iterdir())
        if file.is_file()
    }


def load_reference(path: Path | None = None) -> dict[str, Any]:
    path = path or REFERENCE_PATH
    try:
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ReferenceError(
            f"cannot read the reference {path} ({error}): `{REGENERATE}`"
        ) from None
    if not isinstance(reference, dict) or reference.get("schema") != REFERENCE_SCHEMA:
        raise ReferenceError(f"{path} is not an {REFERENCE_SCHEMA} file: `{REGENERATE}`")
    return reference


def check_checkpoint(reference: Mapping[str, Any], path: Path) -> None:
    """ReferenceError unless the checkpoint at `path` has the bytes the reference was made from."""
    expected = reference["checkpoint"]["sha256"]
    found = checkpoint_hashes(path)
    changed = sorted(name for name in {*expected, *found} if expected.get(name) != found.get(name))
    if changed:
        raise ReferenceError(
            f"the canonical tiny checkpoint's {', '.join(changed)} differ from the reference's "
            f"(athena/checkpoints/ changed since it was made): regenerate it with `{REGENERATE}`"
        )


def measure(model: Any) -> dict[str, Any]:
    """Run a loaded `OLMoEModel` the way the reference was made: token ids, logits, greedy."""
    ids = model.tokenize(PROMPT)
    logits = model.logits(ids)
    greedy = model.generate_ids(PROMPT, max_tokens=GREEDY_TOKENS, temperature=0.0)
    return {"prompt_ids": ids, "logits": logits, "greedy_ids": greedy}


def compare(reference: Mapping[str, Any], measured: Mapping[str, Any]) -> dict[str, Any]:
    """max |logit difference| at the reference's positions, and what disagrees."""
    problems = []
    if list(measured["prompt_ids"]) != list(reference["prompt_ids"]):
        problems.append(
            f"the prompt tokenizes to {list(measured['prompt_ids'])[:8]}..., the reference to "
            f"{list(reference['prompt_ids'])[:8]}..."
        )
        return {"max_difference": None, "problems": problems}
    max_difference = 0.0
    for position, expected in reference["logits"].items():
        row = [float(x) for x in measured["logits"][int(position)]]
        differences = (abs(a - b) for a, b in zip(row, expected, strict=True))
        max_difference = max(max_difference, *differences)
    tolerance = float(reference.get("tolerance", TOLERANCE))
    if max_difference > tolerance:
        problems.append(f"max |logit - reference| {max_difference:.2e} > {tolerance}")
    if list(measured["greedy_ids"]) != list(reference["greedy_ids"]):
        problems.append(
            f"greedy ids {list(measured['greedy_ids'])} != the reference's "
            f"{list(reference['greedy_ids'])}"
        )
    return {"max_difference": max_difference, "problems": problems}


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
            path = write_checkpoint(Path(tmp))
        except Exception as error:
            path, why = None, f"{type(error).__name__}: {error}"
            problem = f"cannot write the tiny checkpoint: {why}"
        if generate:
            _generate_check(report, path)
        try:
            reference = load_reference()
            if path is None:
                raise ReferenceError(problem)
            check_checkpoint(reference, path)
        except ReferenceError as error:
            for backend in MISSING:
                report.add(_check(backend, "fail", str(error), hint=f"`{REGENERATE}`"))
            return
        for backend in MISSING:
            if importlib.util.find_spec("mlx_lm" if backend == "mlx" else "torch") is None:
                report.add(_check(backend, "skip", MISSING[backend], required=False))
            else:
                _reference_check(report, backend, path, reference)


def _generate_check(report: Report, path: Path | None) -> None:
    title = "tiny OLMoE: load + 4 tokens"
    try:
        if path is None:
            raise RuntimeError("the tiny checkpoint could not be written")
        from athena.models.olmoe import OLMoEConfig, OLMoEModel

        model = OLMoEModel(OLMoEConfig(str(path), mlx_model_path=str(path)))
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
        result = compare(reference, measure(model))
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
