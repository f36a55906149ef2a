"""Loader overhead, load time, peak memory, and decode/prefill speed on generated OLMoE checkpoints.

Every configuration of CONFIGS runs in its own fresh interpreter once per round; rounds alternate
the order inside each athena/raw pair. bench/model_figures.py makes the figures; bench/README.md
says how each is measured.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import Results, WorkerError, importable, run_worker

PROMPT = "The quick brown fox jumps over the lazy dog."


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
# More fresh-process pairs per round and size: a 13 ms load and a 50 ms generate call vary by
# +-25% between processes, so one pair per round cannot resolve a 10% or 2% target (bench/README).
MORE_PAIRS = {"tiny": 4}
BY_NAME = {c.name: c for c in CONFIGS}


# --- checkpoints -------------------------------------------------------------------------


def checkpoint_stats(folder: Path) -> dict[str, Any]:
    """Bytes and parameters of a checkpoint (experts: `.experts.` / `.switch_mlp.`, active at
    top_k / num_experts)."""
    from athena.source import read_safetensors_header

    config = json.loads((folder / "config.json").read_text())
    top_k, experts = config["num_experts_per_tok"], config["num_experts"]
    total_bytes = total_params = expert_params = 0
    for file in sorted(folder.glob("*.safetensors")):
        for name, info in read_safetensors_header(file).items():
            start, end = info["data_offsets"]
            nbytes, count = end - start, math.prod(info["shape"])
            total_bytes, total_params = total_bytes + nbytes, total_params + count
            if ".experts." in name or ".switch_mlp." in name:
                expert_params += count
    fraction = top_k / experts
    return {
        "file_bytes": total_bytes,
        "stored_elements": total_params,
        "expert_fraction_active": fraction,
        "active_elements": (total_params - expert_params) + expert_params * fraction,
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
    quick: bool = False,
) -> dict[str, Any]:
    """Run every available configuration (`quick`: but QUICK_LEAVES_OUT) on every size; return
    the checkpoints' stats."""
    have = {m: importable(m) for m in ("mlx", "mlx_lm", "torch", "transformers")}
    have["athena.models.olmoe"] = importable("athena.models.olmoe")
    configs = []
    for c in CONFIGS:
        if quick and c.name in QUICK_LEAVES_OUT:
            continue
        if missing := ", ".join(m for m in c.needs() if not have[m]):
            reason = f"{missing} not importable here (install the torch / mlx-cpu groups)"
            for size in sizes:
                results.skip(f"load.{size}.{c.name}", f"{c.name} ({size})", reason)
        else:
            configs.append(c)
    checkpoints: dict[str, Any] = {}
    for size in sizes:
        folder = Path(tempfile.mkdtemp(dir=work, prefix=f"ckpt-{size}-"))
        try:
            checkpoints[size] = _measure_size(
                results, folder, size, configs, rounds[size], max_tokens[size],
                generate_repeats[size], 0 if quick else MORE_PAIRS.get(size, 0),
            )  # fmt: skip
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
    more_pairs: int,
) -> dict[str, Any]:
    print(f"checkpoint {size}: writing and converting", flush=True)
    bits = [b for b in (8, 4) if any(c.variant == f"q{b}" for c in configs)]
    prepared = run_worker({"task": "prepare", "size": size, "out": str(folder), "bits": bits})
    paths: dict[str, str] = {k: prepared[k] for k in ("fp32", "q8", "q4") if k in prepared}
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
    task = {"prompt": PROMPT, "max_tokens": max_tokens, "generate_repeats": generate_repeats}
    for r in range(rounds):
        for c in _round_order(configs, r):
            try:
                runs[c.name].append(run_worker(_spec(c, paths, **task)))
            except (WorkerError, TimeoutError) as error:
                runs[c.name].append(None)
                errors.setdefault(c.name, str(error))
        for k in range(more_pairs):  # the same runs again, each pair's order alternating
            for pair in [p for p in PAIRS if all(runs.get(n) and runs[n][r] for n in p)]:
                order = pair if (r + k) % 2 else pair[::-1]
                try:
                    outs = {n: run_worker(_spec(BY_NAME[n], paths, **task)) for n in order}
                except (WorkerError, TimeoutError):
                    continue
                for n in pair:
                    timed = {key: outs[n][key] for key in ("load_s", "e2e_s")}
                    runs[n][r].setdefault("more", []).append(timed)  # type: ignore[union-attr]
        print(f"  round {r + 1}/{rounds} done", flush=True)
    from bench.model_figures import add_figures  # it imports this module's configurations

    add_figures(results, size, configs, runs, errors, paths)
    texts = {name: next((x["text"] for x in rs if x), None) for name, rs in runs.items()}
    kept = {
        name: [None if x is None else {k: v for k, v in x.items() if k != "text"} for x in rs]
        for name, rs in runs.items()
    }
    return {
        "variants": stats,
        "write_s": prepared.get("write_s"),
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "generate_repeats": generate_repeats,
        "rounds": rounds,
        "pairs_per_round": 1 + more_pairs,
        "generated_text": texts,
        "runs": kept,
    }


def _spec(c: Config, paths: dict[str, str], **more: Any) -> dict[str, Any]:
    """The worker's `generate` task for configuration `c` (bench/runners.py)."""
    return {"task": "generate", "impl": c.impl, "backend": c.backend, "model": paths[c.variant],
            "quantize_bits": c.quantize_bits, **more}  # fmt: skip


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
