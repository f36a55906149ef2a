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
DIGITS = 7  # decimals kept in the JSON (rounding adds < 1e-7)
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


def positions(count: int) -> list[int]:
    """The fixed positions whose logits are compared: first, middle, last token."""
    return sorted({0, count // 2, count - 1})


def make_reference(path: Path) -> dict[str, Any]:
    """The reference for the checkpoint at `path`, from plain transformers in float32."""
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, use_safetensors=True, trust_remote_code=False
    ).eval()
    ids = [int(i) for i in tokenizer(PROMPT)["input_ids"]]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
        output = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=GREEDY_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    greedy = [int(i) for i in output[0, len(ids) :].tolist()]
    if tokenizer.eos_token_id in greedy:  # athena's backends stop before the eos token
        greedy = greedy[: greedy.index(tokenizer.eos_token_id)]
    return {
        "schema": REFERENCE_SCHEMA,
        "made_by": "scripts/make_smoke_reference.py (transformers, float32, CPU)",
        "regenerate": REGENERATE,
        "checkpoint": {**CHECKPOINT, "sha256": checkpoint_hashes(path)},
        "made_with": {"transformers": transformers.__version__, "torch": torch.__version__},
        "tolerance": TOLERANCE,
        "prompt": PROMPT,
        "prompt_ids": ids,
        "logits": {
            str(p): [round(float(x), DIGITS) for x in logits[p].tolist()]
            for p in positions(len(ids))
        },
        "greedy_tokens": GREEDY_TOKENS,
        "greedy_ids": greedy,
    }


def to_json(reference: Mapping[str, Any]) -> str:
    """The file's text: one line per field and per logits row, so a diff shows what moved."""
    items = []
    for key, value in reference.items():
        if key == "logits":
            rows = ",\n".join(f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in value.items())
            items.append(f'  "logits": {{\n{rows}\n  }}')
        else:
            items.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(items) + "\n}\n"


def stale_fields(committed: Mapping[str, Any], fresh: Mapping[str, Any]) -> list[str]:
    """What differs between two references: every field exactly, but `made_with` (versions,
    informational) and the logits, which may move in the last digits with another torch build
    or CPU (by at most 1e-5, ten times below the doctor's tolerance)."""
    stale = [
        key
        for key in sorted(set(committed) | set(fresh))
        if key not in ("made_with", "logits") and committed.get(key) != fresh.get(key)
    ]
    rows_a, rows_b = committed.get("logits") or {}, fresh.get("logits") or {}
    if set(rows_a) != set(rows_b) or any(
        len(rows_a[k]) != len(rows_b[k])
        or max(abs(a - b) for a, b in zip(rows_a[k], rows_b[k], strict=True)) > 1e-5
        for k in rows_a
    ):
        stale.append("logits")
    return stale


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
