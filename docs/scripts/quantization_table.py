"""Measure fp32 / 8-bit / 4-bit OLMoE: size on disk, memory, decode speed, agreement with fp32.

    python docs/scripts/quantization_table.py            # the committed table (docs/generated/)
    python docs/scripts/quantization_table.py --quick    # a smoke run on the tiny preset

The checkpoint is made locally (athena.checkpoints.write_tiny_olmoe, random weights) and each
variant is made with mlx_lm.convert, as a user would. Agreement is measured on the same token
sequences: top-1 match rate of the next-token argmax and the logit error against fp32.
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

NAME = "quantization"
GROUP_SIZE = 64
DEFAULT_SIZES = "small,medium"
# How much work per model size: (sequences, tokens each) for agreement; decode tokens, repeats.
RUN_SETTINGS = {
    "quick": {"n_sequences": 2, "length": 32, "decode_tokens": 8, "repeats": 1},
    "small": {"n_sequences": 8, "length": 256, "decode_tokens": 128, "repeats": 5},
    "large": {"n_sequences": 2, "length": 128, "decode_tokens": 32, "repeats": 3},
}


def run_settings(size: str, quick: bool) -> dict[str, int]:
    """The quick smoke settings, the full ones for tiny/small, lighter ones for anything larger."""
    if quick:
        return RUN_SETTINGS["quick"]
    return RUN_SETTINGS["small" if size in ("tiny", "small") else "large"]


def keep_router_at_8_bits(path: str, module: Any) -> bool | dict[str, Any]:
    """A quant predicate: the MoE router gate at 8 bits, everything else at the default."""
    if path.endswith("mlp.gate"):
        return {"group_size": GROUP_SIZE, "bits": 8, "mode": "affine"}
    return True


# name -> mlx_lm.convert keyword arguments (None: the float32 checkpoint itself)
VARIANTS: dict[str, dict[str, Any] | None] = {
    "fp32": None,
    "8-bit": {"q_bits": 8},
    "4-bit": {"q_bits": 4},
    "4-bit, router 8-bit": {"q_bits": 4, "quant_predicate": keep_router_at_8_bits},
    "mixed_4_6": {"q_bits": 4, "quant_predicate": "mixed_4_6"},
}


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


def make_variants(
    work: Path, size: str, names: list[str], model: Path | None = None
) -> dict[str, Path]:
    """The float32 source (`model`, or a generated preset) and one converted folder per name."""
    from mlx_lm import convert

    from athena.checkpoints import write_tiny_olmoe

    if model is not None:
        source = work / "fp32"
        convert(str(model), str(source), dtype="float32")  # the float32 reference
    else:
        source = write_tiny_olmoe(work / f"{size}-fp32", size=size, seed=0, dtype="float32")
    paths = {}
    for name in names:
        options = VARIANTS[name]
        if options is None:
            paths[name] = source
            continue
        target = work / f"{size}-{name.replace(' ', '').replace(',', '-')}"
        convert(str(source), str(target), quantize=True, q_group_size=GROUP_SIZE, **options)
        paths[name] = target
    return paths


def eval_tokens(tokenizer: Any, n_sequences: int, length: int) -> np.ndarray:
    """Deterministic token sequences: byte-level text encoded by the checkpoint's tokenizer."""
    rng = np.random.default_rng(1)
    words = ["mixture", "of", "experts", "router", "token", "layer", "apple", "silicon", "mlx"]
    rows = []
    for _ in range(n_sequences):
        ids: list[int] = []
        while len(ids) < length:
            ids += tokenizer.encode(" ".join(rng.choice(words, 16)) + ". ")
        rows.append(ids[:length])
    return np.array(rows, dtype=np.int32)


def measure(
    paths: dict[str, Path], n_sequences: int, length: int, decode_tokens: int, repeats: int
) -> list[dict[str, Any]]:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_logits_processors

    def decode(model: Any, tokenizer: Any) -> float:
        """mlx-lm's own generation loop, greedy, eos masked so every run is full length."""
        no_eos = make_logits_processors(logit_bias={t: -1e9 for t in tokenizer.eos_token_ids})
        last = None
        for last in stream_generate(  # noqa: B007 - the last response has the totals
            model,
            tokenizer,
            "The router sends each token to",
            max_tokens=decode_tokens,
            logits_processors=no_eos,
        ):
            pass
        assert last is not None and last.generation_tokens == decode_tokens
        return float(last.generation_tps)

    reference: np.ndarray | None = None
    rows: list[dict[str, Any]] = []
    models: dict[str, tuple[Any, Any]] = {}
    for name, path in paths.items():
        mx.clear_cache()
        mx.reset_peak_memory()
        base = mx.get_active_memory()  # the variants loaded before this one stay in memory
        model, tokenizer = load_model(path)
        parameters: dict[str, Any] = dict(tree_flatten(model.parameters()))
        weights = sum(array.nbytes for array in parameters.values())
        tokens = eval_tokens(tokenizer, n_sequences, length)
        logits = np.stack(
            [np.array(model(mx.array(row[None]))[0].astype(mx.float32)) for row in tokens]
        )
        decode(model, tokenizer)  # a warm-up, and decoding counts in the peak
        peak = mx.get_peak_memory() - base
        if reference is None:
            reference = logits
        top1 = float((logits.argmax(-1) == reference.argmax(-1)).mean())
        error = np.abs(logits - reference)
        # KL(fp32 || variant) of the next-token distributions, in nats, averaged over positions.
        log_p = reference - np.logaddexp.reduce(reference, axis=-1, keepdims=True)
        log_q = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        kl = float((np.exp(log_p) * (log_p - log_q)).sum(-1).mean())
        rows.append(
            {
                "variant": name,
                "disk_bytes": disk_bytes(path),
                "weights_bytes": weights,
                "peak_memory_bytes": peak,
                "top1_agreement": top1,
                "max_abs_logit_error": float(error.max()),
                "mean_abs_logit_error": float(error.mean()),
                "mean_kl_nats": kl,
            }
        )
        models[name] = (model, tokenizer)
    # Decode speed round-robin over the variants, so load on a shared machine hits them alike.
    speeds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, (model, tokenizer) in models.items():
            speeds[name].append(decode(model, tokenizer))
    for row in rows:
        row["decode_tokens_per_s"] = float(np.median(speeds[row["variant"]]))
        row["decode_tokens_per_s_runs"] = speeds[row["variant"]]
    return rows


def render(size: str, rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    fp32 = rows[0]
    run = settings["runs"][size]
    if size in settings["parameters"]:
        what = (
            f"OLMoE preset `{size}` ({settings['parameters'][size] / 1e6:.1f} M parameters, "
            "random weights)"
        )
    else:
        what = f"Model `{size}`"
    table = markdown_table(
        [
            "variant",
            "size on disk",
            "vs fp32",
            "peak memory",
            "decode tok/s (min-max)",
            "top-1 agreement",
            "max / mean abs logit error",
            "KL (nats)",
        ],
        [
            [
                r["variant"],
                f"{r['disk_bytes'] / 2**20:.1f} MiB",
                f"{r['disk_bytes'] / fp32['disk_bytes']:.2f}x",
                f"{r['peak_memory_bytes'] / 2**20:.1f} MiB",
                f"{r['decode_tokens_per_s']:.0f} ({min(r['decode_tokens_per_s_runs']):.0f}-"
                f"{max(r['decode_tokens_per_s_runs']):.0f})",
                f"{r['top1_agreement'] * 100:.1f}%",
                f"{r['max_abs_logit_error']:.3f} / {r['mean_abs_logit_error']:.4f}",
                f"{r['mean_kl_nats']:.5f}",
            ]
            for r in rows
        ],
    )
    return (
        f"{what}, group size {GROUP_SIZE}. Agreement: {run['n_sequences']} sequences x "
        f"{run['length']} tokens against fp32. Decode: {run['decode_tokens']} greedy "
        f"tokens with `stream_generate`, median of {run['repeats']} runs taken in turn."
        "\n\n" + table
    )


def main(argv: list[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help=f"comma-separated presets (default {DEFAULT_SIZES})"
    )
    parser.add_argument(
        "--model", type=Path, help="measure this local model folder instead of a generated one"
    )
    args = parser.parse_args(argv)

    from athena.checkpoints import count_parameters

    if args.model is not None and not (args.model / "config.json").is_file():
        parser.error(f"{args.model} has no config.json (is it a model folder?)")
    sizes = ["tiny"] if args.quick else args.sizes.split(",")
    if args.model is not None:
        sizes = [str(args.model)]
    settings: dict[str, Any] = {
        "runs": {s: run_settings(s, args.quick) for s in sizes},
        "group_size": GROUP_SIZE,
        "parameters": {s: count_parameters(s) for s in sizes if args.model is None},
    }
    info = machine()
    sections, results = [], {}
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="athena-quant-"))
        try:
            paths = make_variants(work, size, list(VARIANTS), args.model)
            rows = measure(paths, **settings["runs"][size])
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results[size] = rows
        sections.append(render(size, rows, settings))
    command = "python docs/scripts/quantization_table.py" + (" --quick" if args.quick else "")
    if args.model is not None:
        command += f" --model {args.model}"
    elif not args.quick and args.sizes != DEFAULT_SIZES:
        command += f" --sizes {args.sizes}"
    markdown = "\n".join(sections) + "\n" + machine_line(info) + "\n"
    data = {"settings": settings, "results": results, "machine": info}
    out = write_outputs(NAME, markdown, data, args.out, command=command)
    print(out.read_text())
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
