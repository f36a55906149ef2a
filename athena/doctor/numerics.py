"""Reference numerics (`--smoke`): the canonical tiny checkpoint against reference/tiny.json
(docs/doctor.md). numpy, mlx, transformers and torch are imported when used."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    changed = sorted(
        name for name in set(expected) | set(found) if expected.get(name) != found.get(name)
    )
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
    rows = measured["logits"]
    max_difference = 0.0
    for position, expected in reference["logits"].items():
        row = [float(x) for x in rows[int(position)]]
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
