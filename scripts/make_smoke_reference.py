#!/usr/bin/env python3
"""Write athena/doctor/reference/tiny.json: what `athena doctor --smoke` compares against.

It writes the canonical tiny checkpoint (athena/checkpoints/; the same bytes everywhere),
runs it with plain transformers in float32 on the CPU, and records the prompt's token ids,
the logits at fixed positions and the greedy continuation. Rerun it after any change to the
tiny checkpoint (its weights, config or tokenizer):

    uv run --locked --group torch python scripts/make_smoke_reference.py

`--check` writes nothing and exits 1 when the committed file is stale (stale_fields).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from athena.doctor import numerics

DIGITS = 7  # decimals kept in the JSON (rounding adds < 1e-7)


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
    ids = [int(i) for i in tokenizer(numerics.PROMPT)["input_ids"]]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
        output = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=numerics.GREEDY_TOKENS,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    greedy = [int(i) for i in output[0, len(ids) :].tolist()]
    if tokenizer.eos_token_id in greedy:  # athena's backends stop before the eos token
        greedy = greedy[: greedy.index(tokenizer.eos_token_id)]
    return {
        "schema": numerics.REFERENCE_SCHEMA,
        "made_by": "scripts/make_smoke_reference.py (transformers, float32, CPU)",
        "regenerate": numerics.REGENERATE,
        "checkpoint": {**numerics.CHECKPOINT, "sha256": numerics.checkpoint_hashes(path)},
        "made_with": {"transformers": transformers.__version__, "torch": torch.__version__},
        "tolerance": numerics.TOLERANCE,
        "prompt": numerics.PROMPT,
        "prompt_ids": ids,
        "logits": {
            str(p): [round(float(x), DIGITS) for x in logits[p].tolist()]
            for p in positions(len(ids))
        },
        "greedy_tokens": numerics.GREEDY_TOKENS,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=numerics.REFERENCE_PATH)
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="athena-reference-") as tmp:
        reference = make_reference(numerics.write_checkpoint(Path(tmp)))
    if args.check:
        try:
            stale = stale_fields(numerics.load_reference(args.output), reference)
        except numerics.ReferenceError as error:
            print(error, file=sys.stderr)
            return 1
        if stale:
            print(
                f"{args.output} is stale ({', '.join(stale)} changed): regenerate it with "
                f"`{numerics.REGENERATE}`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is current")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(to_json(reference), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
