"""Measure how batch size trades memory for throughput: generation and LoRA training.

    python docs/scripts/batch_size_curve.py            # the committed curve (docs/generated/)
    python docs/scripts/batch_size_curve.py --quick    # a smoke run on the tiny preset

Generation: mlx-lm's `batch_generate` with N prompts decoded together (one batch of N).
Training: mlx-lm's LoRA trainer (`mlx_lm.tuner.trainer.train`, what `mlx_lm.lora` runs) with
`batch_size=N`. Both on a locally generated OLMoE checkpoint in float32 (MLX's CPU backend runs
MoE experts in float32 only). Writes batch_size.md, batch_size.json and batch_size.png.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import textwrap
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

NAME = "batch_size"
WORDS = ["mixture", "of", "experts", "router", "token", "layer", "apple", "silicon", "mlx"]


def sentence(rng: np.random.Generator, n_words: int) -> str:
    return " ".join(rng.choice(WORDS, n_words)) + "."


def measure_generation(
    model: Any,
    tokenizer: Any,
    batch_sizes: list[int],
    prompt_words: int,
    max_tokens: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """Each batch size once per round, in turn (load on a shared machine hits all alike)."""
    import mlx.core as mx
    from mlx_lm import batch_generate
    from mlx_lm.sample_utils import make_logits_processors

    # eos masked: every sequence decodes max_tokens, so batches are comparable
    no_eos = make_logits_processors(logit_bias={t: -1e9 for t in tokenizer.eos_token_ids})
    rng = np.random.default_rng(0)
    prompts = [tokenizer.encode(sentence(rng, prompt_words)) for _ in range(max(batch_sizes))]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in batch_sizes}
    for round_index in range(rounds + 1):  # round 0 warms up and is dropped
        for n in batch_sizes:
            mx.clear_cache()
            mx.reset_peak_memory()
            stats = batch_generate(
                model,
                tokenizer,
                prompts[:n],
                max_tokens=max_tokens,
                completion_batch_size=n,
                prefill_batch_size=n,
                logits_processors=no_eos,
            ).stats
            if round_index:
                runs[n].append(
                    {
                        "generation_tokens": stats.generation_tokens,
                        "tokens_per_s": stats.generation_tps,
                        "peak_memory_bytes": mx.get_peak_memory(),
                    }
                )
    return [
        summarize(n, runs[n], generation_tokens=runs[n][0]["generation_tokens"])
        for n in batch_sizes
    ]


def summarize(batch_size: int, runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Median tokens/s with its range, and the largest peak memory, over the rounds."""
    speeds = [r["tokens_per_s"] for r in runs]
    return {
        "batch_size": batch_size,
        "tokens_per_s": float(np.median(speeds)),
        "tokens_per_s_runs": speeds,
        "peak_memory_bytes": max(r["peak_memory_bytes"] for r in runs),
        **extra,
    }


def measure_lora(
    model_path: Path,
    batch_sizes: list[int],
    num_layers_options: list[int],
    text_words: int,
    iters: int,
    rounds: int,
    work: Path,
) -> list[dict[str, Any]]:
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

    def one_run(num_layers: int, n: int) -> dict[str, Any]:
        model, tokenizer = load_model(model_path)
        # Seeds as mlx_lm.lora sets them: LoRA init (mx.random), batch order (np.random).
        mx.random.seed(0)
        np.random.seed(0)
        model.freeze()
        linear_to_lora_layers(model, num_layers, {"rank": 8, "dropout": 0.0, "scale": 20.0})
        rng = np.random.default_rng(0)
        data = [{"text": sentence(rng, text_words)} for _ in range(max(64, 2 * n))]
        callback = Reports()
        args = TrainingArgs(
            batch_size=n,
            iters=iters,
            steps_per_report=iters // 2,  # the second report: steady state, no compile
            steps_per_eval=10**9,
            steps_per_save=10**9,
            adapter_file=str(work / "adapters.safetensors"),
            max_seq_length=512,
        )
        mx.clear_cache()
        mx.reset_peak_memory()
        train(
            model,
            optim.Adam(learning_rate=1e-4),
            CacheDataset(TextDataset(data, tokenizer)),
            args=args,
            training_callback=callback,
        )
        last = callback.reports[-1]
        # the trainer reports GB (1e9 bytes) since our reset: the whole run
        return {
            "tokens_per_s": last["tokens_per_second"],
            "peak_memory_bytes": int(last["peak_memory"] * 1e9),
        }

    configs = [(layers, n) for layers in num_layers_options for n in batch_sizes]
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {c: [] for c in configs}
    for _ in range(rounds):
        for config in configs:
            runs[config].append(one_run(*config))
    return [summarize(n, runs[(layers, n)], num_layers=layers) for layers, n in configs]


def plot(gen: list[dict[str, Any]], lora: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    top_layers = max(r["num_layers"] for r in lora)
    series = [
        ("generation (batch_generate)", gen, axes[0]),
        (
            f"LoRA training (--num-layers {top_layers})",
            [r for r in lora if r["num_layers"] == top_layers],
            axes[1],
        ),
    ]
    for label, rows, ax in series:
        sizes = [r["batch_size"] for r in rows]
        median = np.array([r["tokens_per_s"] for r in rows])
        low = median - np.array([min(r["tokens_per_s_runs"]) for r in rows])
        high = np.array([max(r["tokens_per_s_runs"]) for r in rows]) - median
        ax.errorbar(sizes, median, yerr=[low, high], fmt="o-", color="tab:blue", capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlabel("batch size")
        ax.set_ylabel("tokens/s (median, min-max)", color="tab:blue")
        ax.set_title(label)
        twin = ax.twinx()
        twin.plot(sizes, [r["peak_memory_bytes"] / 2**20 for r in rows], "s--", color="tab:red")
        twin.set_ylabel("peak memory (MiB)", color="tab:red")
        twin.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
    fig.suptitle(textwrap.fill(title, 150), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def speed(row: dict[str, Any]) -> str:
    runs = row["tokens_per_s_runs"]
    return f"{row['tokens_per_s']:.0f} ({min(runs):.0f}-{max(runs):.0f})"


def render(gen: list[dict[str, Any]], lora: list[dict[str, Any]], s: dict[str, Any]) -> str:
    gen_table = markdown_table(
        ["batch size", "generated tok/s (min-max)", "vs batch 1", "peak memory"],
        [
            [
                str(r["batch_size"]),
                speed(r),
                f"{r['tokens_per_s'] / gen[0]['tokens_per_s']:.1f}x",
                f"{r['peak_memory_bytes'] / 2**20:.1f} MiB",
            ]
            for r in gen
        ],
    )
    lora_table = markdown_table(
        ["--num-layers", "--batch-size", "trained tok/s (min-max)", "peak memory"],
        [
            [
                str(r["num_layers"]),
                str(r["batch_size"]),
                speed(r),
                f"{r['peak_memory_bytes'] / 2**20:.1f} MiB",
            ]
            for r in lora
        ],
    )
    return (
        f"OLMoE preset `{s['size']}` ({s['parameters'] / 1e6:.1f} M parameters, float32).\n\n"
        f"Generation: `batch_generate`, prompts of ~{s['prompt_tokens']} tokens, "
        f"{s['max_tokens']} new tokens each, all prompts in one batch; median of "
        f"{s['generation_rounds']} rounds taken in turn.\n\n{gen_table}\n"
        f"LoRA: `mlx_lm.tuner.trainer.train`, rank 8, texts of ~{s['text_tokens']} tokens "
        f"(padded to a multiple of 32, +1), {s['iters']} steps, speed over the last "
        f"{s['iters'] // 2}; median of {s['lora_rounds']} rounds.\n\n{lora_table}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--size", default="small", help="checkpoint preset")
    args = parser.parse_args(argv)

    from athena.checkpoints import SIZES, count_parameters, write_tiny_olmoe

    size = "tiny" if args.quick else args.size
    settings: dict[str, Any] = {
        "size": size,
        "parameters": count_parameters(size),
        "generation_batch_sizes": [1, 4] if args.quick else [1, 2, 4, 8, 16, 32, 64],
        "lora_batch_sizes": [1, 2] if args.quick else [1, 2, 4, 8, 16],
        "prompt_words": 4 if args.quick else 8,
        "max_tokens": 4 if args.quick else 64,
        "text_words": 8 if args.quick else 24,
        "iters": 2 if args.quick else 6,
        "generation_rounds": 1 if args.quick else 3,
        "lora_rounds": 1 if args.quick else 2,
    }
    layers = SIZES[size]["num_hidden_layers"]
    settings["lora_num_layers"] = [layers] if args.quick else sorted({1, layers})
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="athena-batch-"))
    try:
        path = write_tiny_olmoe(work / "model", size=size, seed=0, dtype="float32")
        model, tokenizer = load_model(path)
        rng = np.random.default_rng(0)
        settings["prompt_tokens"] = len(tokenizer.encode(sentence(rng, settings["prompt_words"])))
        settings["text_tokens"] = len(tokenizer.encode(sentence(rng, settings["text_words"])))
        gen = measure_generation(
            model,
            tokenizer,
            settings["generation_batch_sizes"],
            settings["prompt_words"],
            settings["max_tokens"],
            settings["generation_rounds"],
        )
        del model
        lora = measure_lora(
            path,
            settings["lora_batch_sizes"],
            settings["lora_num_layers"],
            settings["text_words"],
            settings["iters"],
            settings["lora_rounds"],
            work,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(gen, lora, args.out / f"{NAME}.png", machine_line(info))
    command = "python docs/scripts/batch_size_curve.py" + (" --quick" if args.quick else "")
    markdown = render(gen, lora, settings) + "\n" + machine_line(info) + "\n"
    data = {"settings": settings, "generation": gen, "lora": lora, "machine": info}
    out = write_outputs(NAME, markdown, data, args.out, command=command)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
