"""Loader overhead, load time, peak memory, and decode/prefill speed on generated OLMoE checkpoints.

Per checkpoint size, every configuration below runs in its own fresh interpreter
(bench/worker.py), once per round; rounds alternate the order inside each athena/raw pair,
so slow drift on a shared machine hits both sides alike:

    athena-mlx       OLMoEModel(use_mlx=True).load() + generate()      (float32 checkpoint)
    mlx_lm           mlx_lm.load() + stream_generate()                  (same checkpoint)
    athena-hf        OLMoEModel(use_mlx=False).load() + generate()      (same checkpoint)
    transformers     AutoModelForCausalLM.from_pretrained() + generate() (same checkpoint)
    mlx_lm-q8/q4     mlx_lm on the checkpoint converted by mlx_lm.convert (8/4-bit, group 64)
    athena-mlx-q4    OLMoEModel(quantize_bits=4) on the float32 checkpoint (quantized after
                     loading: its peak holds the float32 weights too)

Targets (issue #6): generation tokens/s of athena >= 0.98x raw, its load time <= 1.05x raw
(ratios taken per round); 4-bit peak memory <= 0.35x float32.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Results, Target, WorkerError, run_worker

MiB = 1 << 20
PROMPT = "The quick brown fox jumps over the lazy dog."
LOAD_TARGET = Target("<=", 1.05, "athena load time <= 1.05x raw")
GENERATE_TARGET = Target(">=", 0.98, "athena generation tokens/s >= 0.98x raw")
MEMORY_TARGET = Target("<=", 0.35, "4-bit peak memory <= 0.35x float32")


@dataclass(frozen=True)
class Config:
    name: str
    impl: str  # "athena" | "mlx_lm" | "transformers"
    backend: str  # "mlx" | "transformers"
    variant: str  # checkpoint: "fp32", "q8", "q4"
    quantize_bits: int | None = None  # athena quantizes at load

    def needs(self) -> list[str]:
        mods = ["mlx", "mlx_lm"] if self.backend == "mlx" else ["torch", "transformers"]
        return [*mods, "athena.models.olmoe"] if self.impl == "athena" else mods


CONFIGS = (
    Config("athena-mlx", "athena", "mlx", "fp32"),
    Config("mlx_lm", "mlx_lm", "mlx", "fp32"),
    Config("athena-hf", "athena", "transformers", "fp32"),
    Config("transformers", "transformers", "transformers", "fp32"),
    Config("mlx_lm-q8", "mlx_lm", "mlx", "q8"),
    Config("mlx_lm-q4", "mlx_lm", "mlx", "q4"),
    Config("athena-mlx-q4", "athena", "mlx", "fp32", quantize_bits=4),
)
QUICK_LEAVES_OUT = ("mlx_lm-q8", "athena-mlx-q4")
PAIRS = (("athena-mlx", "mlx_lm"), ("athena-hf", "transformers"))
BY_NAME = {c.name: c for c in CONFIGS}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


# --- checkpoints -------------------------------------------------------------------------


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file (tensor name -> dtype, shape, data_offsets)."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header


def checkpoint_stats(folder: Path) -> dict[str, Any]:
    """Bytes and parameters of a checkpoint, and the bytes a decode step reads.

    Expert tensors (`.experts.` in Hugging Face naming, `.switch_mlp.` after mlx_lm.convert)
    are read for top_k of num_experts experts per token; the input embedding table for one
    row; every other tensor in full. `active_params` is the issue's count (non-expert params
    + top_k experts' params per layer); `bytes_per_token` is what the bandwidth bound uses.
    """
    config = json.loads((folder / "config.json").read_text())
    top_k, experts, vocab = (
        config["num_experts_per_tok"],
        config["num_experts"],
        config["vocab_size"],
    )
    total_bytes = expert_bytes = embed_bytes = 0
    total_params = expert_params = 0
    for file in sorted(folder.glob("*.safetensors")):
        for name, info in safetensors_header(file).items():
            start, end = info["data_offsets"]
            nbytes = end - start
            count = 1
            for dim in info["shape"]:
                count *= dim
            total_bytes += nbytes
            total_params += count
            if ".experts." in name or ".switch_mlp." in name:
                expert_bytes += nbytes
                expert_params += count
            elif "embed_tokens" in name:
                embed_bytes += nbytes
    fraction = top_k / experts
    return {
        "file_bytes": total_bytes,
        "stored_elements": total_params,
        "expert_fraction_active": fraction,
        "active_elements": (total_params - expert_params) + expert_params * fraction,
        "bytes_per_token": (total_bytes - expert_bytes - embed_bytes)
        + expert_bytes * fraction
        + embed_bytes / vocab,
        "quantization": config.get("quantization"),
        "num_experts": experts,
        "top_k": top_k,
        "layers": config["num_hidden_layers"],
        "hidden_size": config["hidden_size"],
    }


# --- the measurement ---------------------------------------------------------------------


def measure(
    results: Results,
    work: Path,
    *,
    sizes: list[str],
    rounds: dict[str, int],
    max_tokens: dict[str, int],
    generate_repeats: dict[str, int],
    bandwidth: dict[str, Any],
    quick: bool = False,
) -> dict[str, Any]:
    """Run every available configuration on every size; return the checkpoints' stats.

    `quick` leaves out QUICK_LEAVES_OUT (the smoke run keeps one configuration of each kind)."""
    have = {m: _available(m) for m in ("mlx", "mlx_lm", "torch", "transformers")}
    have["athena.models.olmoe"] = _available("athena.models.olmoe")
    wanted = [c for c in CONFIGS if not (quick and c.name in QUICK_LEAVES_OUT)]
    configs = [c for c in wanted if all(have[m] for m in c.needs())]
    for c in wanted:
        if c not in configs:
            missing = ", ".join(m for m in c.needs() if not have[m])
            for size in sizes:
                results.skip(
                    f"load.{size}.{c.name}",
                    f"{c.name} ({size})",
                    f"{missing} not importable here (install the torch / mlx-cpu groups)",
                    group="load",
                )
    checkpoints: dict[str, Any] = {}
    for size in sizes:
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"ckpt-{size}-"))
        try:
            checkpoints[size] = _measure_size(
                results,
                folder,
                size,
                configs,
                rounds[size],
                max_tokens[size],
                generate_repeats[size],
                bandwidth,
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return checkpoints


def _measure_size(
    results: Results,
    folder: Path,
    size: str,
    configs: list[Config],
    rounds: int,
    max_tokens: int,
    generate_repeats: int,
    bandwidth: dict[str, Any],
) -> dict[str, Any]:
    print(f"checkpoint {size}: writing and converting", flush=True)
    bits = [b for b in (8, 4) if any(c.variant == f"q{b}" for c in configs)]
    prepared = run_worker({"task": "prepare", "size": size, "out": str(folder), "bits": bits})
    variants: tuple[str, ...] = ("fp32", "q8", "q4")
    paths: dict[str, str] = {k: prepared[k] for k in variants if k in prepared}
    stats = {variant: checkpoint_stats(Path(p)) for variant, p in paths.items()}
    configs = [c for c in configs if c.variant in paths]
    print(
        f"{size}: {len(configs)} configurations x {rounds} rounds, fresh process each, "
        f"prompt {len(PROMPT)} bytes, {max_tokens} new tokens, fastest of {generate_repeats} "
        "generate calls per process",
        flush=True,
    )
    runs: dict[str, list[dict[str, Any] | None]] = {c.name: [] for c in configs}
    errors: dict[str, str] = {}
    for r in range(rounds):
        for c in _round_order(configs, r):
            spec = {
                "task": "generate",
                "impl": c.impl,
                "backend": c.backend,
                "model": paths[c.variant],
                "quantize_bits": c.quantize_bits,
                "prompt": PROMPT,
                "max_tokens": max_tokens,
                "generate_repeats": generate_repeats,
            }
            try:
                runs[c.name].append(run_worker(spec))
            except (WorkerError, TimeoutError) as error:
                runs[c.name].append(None)
                errors.setdefault(c.name, str(error))
        print(f"  round {r + 1}/{rounds} done", flush=True)
    _figures(results, size, configs, runs, errors, stats, bandwidth, max_tokens)
    return {
        "variants": stats,
        "write_s": prepared.get("write_s"),
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "generate_repeats": generate_repeats,
        "rounds": rounds,
        "generated_text": {
            name: next((x["text"] for x in rs if x), None) for name, rs in runs.items()
        },
        "runs": {
            name: [None if x is None else {k: v for k, v in x.items() if k != "text"} for x in rs]
            for name, rs in runs.items()
        },
    }


def _round_order(configs: list[Config], r: int) -> list[Config]:
    """Pairs first (athena first on even rounds, raw first on odd), then the rest rotated."""
    names = [c.name for c in configs]
    order: list[str] = []
    for a, b in PAIRS:
        pair = [n for n in (a, b) if n in names]
        order += pair if r % 2 == 0 else pair[::-1]
    rest = [n for n in names if n not in order]
    if rest:
        k = r % len(rest)
        order += rest[k:] + rest[:k]
    return [BY_NAME[n] for n in order]


def _ok(runs: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [x for x in runs if x is not None]


def _figures(
    results: Results,
    size: str,
    configs: list[Config],
    runs: dict[str, list[dict[str, Any] | None]],
    errors: dict[str, str],
    stats: dict[str, dict[str, Any]],
    bandwidth: dict[str, Any],
    max_tokens: int,
) -> None:
    print(f"{size}: figures", flush=True)
    for c in configs:
        ok = _ok(runs[c.name])
        if not ok:
            reason = errors.get(c.name, "no run succeeded")
            results.skip(f"load.{size}.{c.name}", f"{c.name} ({size})", reason, group="load")
            continue
        ctx = {
            "impl": c.impl,
            "backend": c.backend,
            "checkpoint": c.variant,
            "quantize_bits_at_load": c.quantize_bits,
            "failed_rounds": len(runs[c.name]) - len(ok),
            "error": errors.get(c.name),
        }
        results.add(
            f"load.{size}.{c.name}",
            f"load time, {c.name} ({size})",
            [x["load_s"] for x in ok],
            "s",
            group="load",
            context={**ctx, "note": "backend package imported before the timer starts"},
        )
    _overhead(results, size, runs)
    _memory(results, size, configs, runs)
    _throughput(results, size, configs, runs, stats, bandwidth)


def _overhead(results: Results, size: str, runs: dict[str, list[dict[str, Any] | None]]) -> None:
    for athena, raw in PAIRS:
        if athena not in runs or raw not in runs:
            continue
        pairs = [
            (a, b)
            for a, b in zip(runs[athena], runs[raw], strict=True)
            if a is not None and b is not None
        ]
        backend = BY_NAME[raw].backend
        if not pairs:
            results.skip(
                f"overhead.{size}.{backend}.load_ratio",
                f"{athena} / {raw} ({size})",
                "no round where both ran",
                group="overhead",
            )
            continue
        same_text = all(a["text"] == b["text"] for a, b in pairs)
        tokens = [b["e2e_tokens"] for _, b in pairs]
        ctx = {
            "athena": athena,
            "raw": raw,
            "rounds": len(pairs),
            "same_text": same_text,
            "tokens": tokens,
        }
        results.add(
            f"overhead.{size}.{backend}.load_ratio",
            f"load time {athena} / {raw} ({size})",
            [a["load_s"] / b["load_s"] for a, b in pairs],
            "ratio",
            group="overhead",
            target=LOAD_TARGET,
            context=ctx,
        )
        results.add(
            f"overhead.{size}.{backend}.generate_ratio",
            f"generation tokens/s {athena} / {raw} ({size})",
            [b["e2e_s"] / a["e2e_s"] for a, b in pairs],
            "ratio",
            group="overhead",
            target=GENERATE_TARGET,
            context={
                **ctx,
                "note": "same prompt, same greedy tokens (same_text), so tokens/s ratio = "
                "raw time / athena time for one generate call",
            },
        )
        for name, side in ((raw, 1), (athena, 0)):
            results.add(
                f"generate.{size}.{name}",
                f"generation tokens/s, {name} ({size})",
                [p[1]["e2e_tokens"] / p[side]["e2e_s"] for p in pairs],
                "tokens/s",
                group="overhead",
                context={"tokens": tokens, "includes": "prefill of the prompt + decode"},
            )


def _memory(
    results: Results,
    size: str,
    configs: list[Config],
    runs: dict[str, list[dict[str, Any] | None]],
) -> None:
    names = {c.name for c in configs}
    for c in configs:
        ok = _ok(runs[c.name])
        if not ok or c.name in ("athena-mlx", "athena-hf"):
            continue
        if c.backend == "mlx":
            results.add(
                f"memory.{size}.{c.name}.mx_peak",
                f"mx.get_peak_memory, {c.name} ({size})",
                [x["mx_peak"] / MiB for x in ok],
                "MiB",
                group="memory",
                context={"after": "load + warm-up + one generation"},
            )
        results.add(
            f"memory.{size}.{c.name}.rss_growth",
            f"peak RSS - RSS after imports, {c.name} ({size})",
            [(x["peak_rss"] - x["rss_after_import"]) / MiB for x in ok],
            "MiB",
            group="memory",
            context={"peak_rss_MiB": [x["peak_rss"] / MiB for x in ok]},
        )
    if "mlx_lm" not in names:
        return
    for quantized, target in (
        ("mlx_lm-q4", MEMORY_TARGET),
        ("mlx_lm-q8", None),
        ("athena-mlx-q4", MEMORY_TARGET),
    ):
        if quantized not in names:
            continue
        pairs = [
            (q, f)
            for q, f in zip(runs[quantized], runs["mlx_lm"], strict=True)
            if q is not None and f is not None
        ]
        if not pairs:
            continue
        note = (
            "quantized after a float32 load: the peak holds both"
            if quantized.startswith("athena")
            else "checkpoint converted by mlx_lm.convert"
        )
        for key, label, get in (
            ("mx_peak", "mx peak", lambda x: x["mx_peak"]),
            ("rss_growth", "RSS growth", lambda x: x["peak_rss"] - x["rss_after_import"]),
        ):
            results.add(
                f"memory.{size}.{quantized}_over_fp32.{key}",
                f"{label} {quantized} / mlx_lm float32 ({size})",
                [get(q) / get(f) for q, f in pairs],
                "ratio",
                group="memory",
                target=target,
                context={"note": note},
            )


def _throughput(
    results: Results,
    size: str,
    configs: list[Config],
    runs: dict[str, list[dict[str, Any] | None]],
    stats: dict[str, dict[str, Any]],
    bandwidth: dict[str, Any],
) -> None:
    for c in configs:
        ok = [x for x in _ok(runs[c.name]) if x.get("decode_tokens")]
        if c.impl == "athena" or not ok:
            continue
        results.add(
            f"throughput.{size}.{c.name}.prefill",
            f"prefill tokens/s, {c.name} ({size})",
            [x["prompt_tokens"] / x["prefill_s"] for x in ok],
            "tokens/s",
            group="throughput",
            context={"prompt_tokens": ok[0]["prompt_tokens"], "measured": "call to first token"},
        )
        decode = results.add(
            f"throughput.{size}.{c.name}.decode",
            f"decode tokens/s, {c.name} ({size})",
            [x["decode_tokens"] / x["decode_s"] for x in ok],
            "tokens/s",
            group="throughput",
            context={"decode_tokens": ok[0]["decode_tokens"], "measured": "first token to last"},
        )
        device = bandwidth.get("mlx_device" if c.backend == "mlx" else "torch_device")
        best = bandwidth.get("best", {}).get(device)
        if best is None:
            continue
        per_token = stats[c.variant]["bytes_per_token"]
        bound = [gbs * 1e9 / per_token for gbs in best["values"]]
        bound_figure = results.add(
            f"throughput.{size}.{c.name}.decode_bound",
            f"decode bound, {c.name} ({size})",
            bound,
            "tokens/s",
            group="throughput",
            context={
                "bandwidth_figure": best["id"],
                "bytes_per_token": per_token,
                "memory": device,
            },
        )
        results.add(
            f"throughput.{size}.{c.name}.decode_over_bound",
            f"decode / bound, {c.name} ({size})",
            [v / bound_figure["median"] for v in decode["values"]],
            "ratio",
            group="throughput",
            context={"bound_tokens_per_s": bound_figure["median"]},
        )
