"""The figures of bench/models.py's runs: load time, overhead ratios, memory, throughput.

Targets (issue #6): generation tokens/s of athena >= 0.98x raw, its load time <= 1.05x raw
(ratios taken per round); 4-bit peak memory <= 0.35x float32. Decode speed is compared with
the bound that the best copy bandwidth and the bytes read per decode step give.
"""

from __future__ import annotations

from typing import Any

from bench.common import Results, Target
from bench.models import BY_NAME, PAIRS, Config

MiB = 1 << 20
LOAD_TARGET = Target("<=", 1.05, "athena load time <= 1.05x raw")
GENERATE_TARGET = Target(">=", 0.98, "athena generation tokens/s >= 0.98x raw")
MEMORY_TARGET = Target("<=", 0.35, "4-bit peak memory <= 0.35x float32")


def _ok(runs: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [x for x in runs if x is not None]


def add_figures(
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
            results.skip(f"load.{size}.{c.name}", f"{c.name} ({size})", reason)
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
            target=LOAD_TARGET,
            context=ctx,
        )
        results.add(
            f"overhead.{size}.{backend}.generate_ratio",
            f"generation tokens/s {athena} / {raw} ({size})",
            [b["e2e_s"] / a["e2e_s"] for a, b in pairs],
            "ratio",
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
                context={"after": "load + warm-up + one generation"},
            )
        results.add(
            f"memory.{size}.{c.name}.rss_growth",
            f"peak RSS - RSS after imports, {c.name} ({size})",
            [(x["peak_rss"] - x["rss_after_import"]) / MiB for x in ok],
            "MiB",
            context={
                "peak_rss_MiB": [x["peak_rss"] / MiB for x in ok],
                "peak_method": sorted({x.get("peak_method", "ru_maxrss") for x in ok}),
            },
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
        measured_by = {
            "mx_peak": "mx.get_peak_memory() in the measured process",
            "rss_growth": sorted(
                {x.get("peak_method", "ru_maxrss") for pair in pairs for x in pair}
            ),
        }
        for key, label, get in (
            ("mx_peak", "mx peak", lambda x: x["mx_peak"]),
            ("rss_growth", "RSS growth", lambda x: x["peak_rss"] - x["rss_after_import"]),
        ):
            results.add(
                f"memory.{size}.{quantized}_over_fp32.{key}",
                f"{label} {quantized} / mlx_lm float32 ({size})",
                [get(q) / get(f) for q, f in pairs],
                "ratio",
                target=target,
                context={"note": note, "measured_by": measured_by[key]},
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
            context={"prompt_tokens": ok[0]["prompt_tokens"], "measured": "call to first token"},
        )
        decode = results.add(
            f"throughput.{size}.{c.name}.decode",
            f"decode tokens/s, {c.name} ({size})",
            [x["decode_tokens"] / x["decode_s"] for x in ok],
            "tokens/s",
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
            context={"bound_tokens_per_s": bound_figure["median"]},
        )
