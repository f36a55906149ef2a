#!/usr/bin/env python3
"""Write athena/doctor/reference/tiny.json: what `athena doctor --smoke` compares against.

It writes the canonical tiny checkpoint (athena/checkpoints.py; the same bytes everywhere),
runs it with plain transformers in float32 on the CPU, and records the prompt's token ids,
the logits at fixed positions and the greedy continuation. Rerun it after any change to the
tiny checkpoint (its weights, config or tokenizer):

    uv run --locked --group torch python scripts/make_smoke_reference.py

`--check` writes nothing and exits 1 when the committed file is stale (numerics.stale_fields).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from athena.doctor import numerics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=numerics.REFERENCE_PATH)
    parser.add_argument(
        "--check", action="store_true", help="compare with --output instead of writing it"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="athena-reference-") as tmp:
        reference = numerics.make_reference(numerics.write_checkpoint(Path(tmp)))
    if args.check:
        try:
            stale = numerics.stale_fields(numerics.load_reference(args.output), reference)
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
    args.output.write_text(numerics.to_json(reference), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
