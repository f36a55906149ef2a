"""Measure gradient checkpointing: peak memory and step time of LoRA training with and without.

    python docs/scripts/grad_checkpoint.py            # the committed table (docs/generated/)
    python docs/scripts/grad_checkpoint.py --quick    # a smoke run on the tiny preset

Runs mlx-lm's LoRA trainer (`mlx_lm.tuner.trainer.train`, what `mlx_lm.lora` runs) on a locally
generated OLMoE checkpoint, with `grad_checkpoint=False` and `True` (`--grad-checkpoint`), for a
few batch shapes. Writes grad_checkpoint.md and grad_checkpoint.json.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_common import (
    ROOT,
    load_model,
    machine,
    machine_line,
    markdown_table,
    script_parser,
    write_outputs,
)

NAME = "grad_checkpoint"


def train_once(
    model_path: Path, batch_size: int, tokens: int, iters: int, checkpoint: bool, work: Path
) -> dict[str, Any]:
    """One LoRA run; returns the steady-state speed and the run's peak memory."""
    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm.tuner.datasets import CacheDataset, TextDataset
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.tuner.utils import linear_to_lora_layers

    class Reports(TrainingCallback):
        def __init__(self) -> None:
            self.reports: list[dict[str, Any]] = []

        def on_train_loss_report(self, train_info: dict[str, Any]) -> None:
            self.reports.append(dict(train_info))

    model, tokenizer = load_model(model_path)
    # Seeds as mlx_lm.lora sets them: LoRA init (mx.random), batch order (np.random).
    mx.random.seed(0)
    np.random.seed(0)
    model.freeze()
    linear_to_lora_layers(model, len(model.layers), {"rank": 8, "dropout": 0.0, "scale": 20.0})
    # Byte-level tokenizer: one token per character. The trainer pads to 1 + a multiple of 32.
    rng = np.random.default_rng(0)
    data = [
        {"text": "".join(rng.choice(list("abcdefgh "), tokens - 2))}
        for _ in range(max(16, 2 * batch_size))
    ]
    callback = Reports()
    args = TrainingArgs(
        batch_size=batch_size,
        iters=iters,
        steps_per_report=iters // 2,  # the second report is steady state (no compile)
        steps_per_eval=10**9,
        steps_per_save=10**9,
        adapter_file=str(work / "adapters.safetensors"),
        max_seq_length=4096,
        grad_checkpoint=checkpoint,
    )
    # mlx-lm's grad_checkpoint() replaces __call__ on the layer *class*, for every instance in
    # the process: put it back so the next run measures what it says.
    layer_class = type(model.layers[0])
    original_call = layer_class.__call__
    mx.clear_cache()
    mx.reset_peak_memory()
    try:
        train(
            model,
            optim.Adam(learning_rate=1e-4),
            CacheDataset(TextDataset(data, tokenizer)),
            args=args,
            training_callback=callback,
        )
    finally:
        layer_class.__call__ = original_call
    last = callback.reports[-1]
    return {
        "batch_size": batch_size,
        "tokens_per_example": tokens,
        "grad_checkpoint": checkpoint,
        "step_time_s": 1.0 / last["iterations_per_second"],
        "tokens_per_s": last["tokens_per_second"],
        "peak_memory_bytes": int(last["peak_memory"] * 1e9),
        "train_loss": last["train_loss"],
    }


def render(rows: list[dict[str, Any]], s: dict[str, Any]) -> str:
    table_rows = []
    for off, on in zip(rows[::2], rows[1::2], strict=True):
        table_rows.append(
            [
                f"{off['batch_size']} x {off['tokens_per_example']}",
                f"{off['peak_memory_bytes'] / 2**20:.1f} MiB",
                f"{on['peak_memory_bytes'] / 2**20:.1f} MiB",
                f"{on['peak_memory_bytes'] / off['peak_memory_bytes']:.2f}x",
                f"{off['step_time_s'] * 1e3:.0f} ms",
                f"{on['step_time_s'] * 1e3:.0f} ms",
                f"{on['step_time_s'] / off['step_time_s']:.2f}x",
            ]
        )
    table = markdown_table(
        [
            "batch x tokens",
            "peak memory, off",
            "peak memory, on",
            "memory ratio",
            "step time, off",
            "step time, on",
            "time ratio",
        ],
        table_rows,
    )
    return (
        f"LoRA (rank 8, all {s['layers']} layers) on OLMoE preset `{s['size']}` "
        f"({s['parameters'] / 1e6:.1f} M parameters, float32), `mlx_lm.tuner.trainer.train` "
        f"with `grad_checkpoint` off and on; {s['iters']} steps, step time over the last "
        f"{s['iters'] // 2}.\n\n" + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--size", default="small", help="checkpoint preset")
    args = parser.parse_args(argv)

    from athena.checkpoints import SIZES, count_parameters, write_tiny_olmoe

    size = "tiny" if args.quick else args.size
    shapes = [(2, 64)] if args.quick else [(4, 256), (8, 256), (4, 1024)]
    settings: dict[str, Any] = {
        "size": size,
        "parameters": count_parameters(size),
        "layers": SIZES[size]["num_hidden_layers"],
        "shapes": shapes,
        "iters": 2 if args.quick else 6,
    }
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="athena-ckpt-"))
    rows = []
    try:
        path = write_tiny_olmoe(work / "model", size=size, seed=0, dtype="float32")
        for batch_size, tokens in shapes:
            for checkpoint in (False, True):
                rows.append(
                    train_once(path, batch_size, tokens, settings["iters"], checkpoint, work)
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    command = "python docs/scripts/grad_checkpoint.py" + (" --quick" if args.quick else "")
    markdown = render(rows, settings) + "\n" + machine_line(info) + "\n"
    data = {"settings": settings, "results": rows, "machine": info}
    out = write_outputs(NAME, markdown, data, args.out, command=command)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
