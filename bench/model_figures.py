"""The figures of bench/models.py's runs: load time, overhead ratios, memory, throughput.

Decode speed is given as a share of `athena inspect`'s decode ceiling for the same option on
this machine. Targets (issue #6): bench/README.md.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.common import MiB, Results, Target
from bench.models import BY_NAME, PAIRS, Config
from bench.preflight import add_share_of_ceiling

# Issue 31: at most 1.1x on tiny (the preflight's fixed cost on a 20 ms load), no slower on medium.
LOAD_TARGETS = {"tiny": Target("<=", 1.1, "athena load time <= 1.1x raw (tiny)")}
LOAD_TARGET = Target("<=", 1.0, "athena load time <= 1.0x raw")
GENERATE_TARGET = Target(">=", 0.98, "athena generation tokens/s >= 0.98x raw")
MEMORY_TARGET = Target("<=", 0.35, "4-bit peak memory <= 0.35x float32")
Runs = dict[str, list[dict[str, Any] | None]]


def mx_peak(x: dict[str, Any]) -> float:
    return float(x["mx_peak"])


def rss_growth(x: dict[str, Any]) -> float:
    return float(x["peak_rss"] - x["rss_after_import"])


def _ok(runs: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [x for x in runs if x is not None]


def _pairs(a: list[Any], b: list[Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The rounds where both sides ran."""
    return [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]


def add_figures(
    results: Results,
    size: str,
    configs: list[Config],
    runs: Runs,
    errors: dict[str, str],
    paths: dict[str, str],
) -> None:
    """The figures of one size; `paths`: each checkpoint variant's folder."""
    print(f"{size}: figures", flush=True)
    for c in configs:
        if not (ok := _ok(runs[c.name])):
            reason = errors.get(c.name, "no run succeeded")
            results.skip(f"load.{size}.{c.name}", f"{c.name} ({size})", reason)
            continue
        ctx: dict[str, Any] = {"impl": c.impl, "backend": c.backend, "checkpoint": c.variant}
        ctx.update(quantize_bits_at_load=c.quantize_bits, failed_rounds=len(runs[c.name]) - len(ok))
        ctx.update(
            error=errors.get(c.name), note="backend package imported before the timer starts"
        )
        label = f"load time, {c.name} ({size})"
        results.add(f"load.{size}.{c.name}", label, [x["load_s"] for x in ok], "s", None, ctx)
    _overhead(results, size, runs)
    _memory(results, size, configs, runs)
    _throughput(results, size, configs, runs, paths)


def _overhead(results: Results, size: str, runs: Runs) -> None:
    add = results.add
    for athena, raw in PAIRS:
        if athena not in runs or raw not in runs:
            continue
        fid, names = f"overhead.{size}.{BY_NAME[raw].backend}", f"{athena} / {raw} ({size})"
        if not (pairs := _pairs(runs[athena], runs[raw])):
            results.skip(f"{fid}.load_ratio", names, "no round where both ran")
            continue
        tokens = [b["e2e_tokens"] for _, b in pairs]
        same_text = all(a["text"] == b["text"] for a, b in pairs)
        ctx: dict[str, Any] = {
            "athena": athena,
            "raw": raw,
            "rounds": len(pairs),
            "same_text": same_text,
        }
        ctx["tokens"] = tokens
        ctx["pairs"] = 1 + len(pairs[0][0].get("more", []))  # a round's ratio: their median
        ratios = [_round_ratio(a, b, lambda x, y: x["load_s"] / y["load_s"]) for a, b in pairs]
        target = LOAD_TARGETS.get(size, LOAD_TARGET)
        add(f"{fid}.load_ratio", f"load time {names}", ratios, "ratio", target, ctx)
        note = "same prompt, same greedy tokens (same_text), so tokens/s ratio = "
        note += "raw time / athena time for one generate call"
        ratios = [_round_ratio(a, b, lambda x, y: y["e2e_s"] / x["e2e_s"]) for a, b in pairs]
        label = f"generation tokens/s {names}"
        add(f"{fid}.generate_ratio", label, ratios, "ratio", GENERATE_TARGET, {**ctx, "note": note})
        ctx = {"tokens": tokens, "includes": "prefill of the prompt + decode"}
        for name, side in ((raw, 1), (athena, 0)):
            rates = [p[1]["e2e_tokens"] / p[side]["e2e_s"] for p in pairs]
            label = f"generation tokens/s, {name} ({size})"
            add(f"generate.{size}.{name}", label, rates, "tokens/s", None, ctx, group="overhead")


def _round_ratio(
    athena: dict[str, Any],
    raw: dict[str, Any],
    ratio: Callable[[dict[str, Any], dict[str, Any]], float],
) -> float:
    """A round's `ratio` (athena's run, raw's run): the median over its pairs, the first runs'
    and then the `more` pairs' (bench/models.py MORE_PAIRS)."""
    more = zip(athena.get("more", []), raw.get("more", []), strict=True)
    return statistics.median(ratio(a, b) for a, b in [(athena, raw), *more])


def _memory(results: Results, size: str, configs: list[Config], runs: Runs) -> None:
    names = {c.name for c in configs}
    for c in configs:
        if not (ok := _ok(runs[c.name])) or c.name in ("athena-mlx", "athena-hf"):
            continue
        fid = f"memory.{size}.{c.name}"
        if c.backend == "mlx":
            label = f"mx.get_peak_memory, {c.name} ({size})"
            peaks = [x["mx_peak"] / MiB for x in ok]
            ctx: dict[str, Any] = {"after": "load + warm-up + one generation"}
            results.add(f"{fid}.mx_peak", label, peaks, "MiB", None, ctx)
        growth = [(x["peak_rss"] - x["rss_after_import"]) / MiB for x in ok]
        methods = sorted({x.get("peak_method", "ru_maxrss") for x in ok})
        ctx = {"peak_rss_MiB": [x["peak_rss"] / MiB for x in ok], "peak_method": methods}
        label = f"peak RSS - RSS after imports, {c.name} ({size})"
        results.add(f"{fid}.rss_growth", label, growth, "MiB", None, ctx)
    if "mlx_lm" not in names:
        return
    targets = {"mlx_lm-q4": MEMORY_TARGET, "mlx_lm-q8": None, "athena-mlx-q4": MEMORY_TARGET}
    for quantized, target in targets.items():
        if quantized not in names or not (pairs := _pairs(runs[quantized], runs["mlx_lm"])):
            continue
        note = (
            "quantized after a float32 load: the peak holds both"
            if quantized.startswith("athena")
            else "checkpoint converted by mlx_lm.convert"
        )
        methods = sorted({x.get("peak_method", "ru_maxrss") for pair in pairs for x in pair})
        for key, label, measured_by, get in (
            ("mx_peak", "mx peak", "mx.get_peak_memory() in the measured process", mx_peak),
            ("rss_growth", "RSS growth", methods, rss_growth),
        ):
            ratios = [get(q) / get(f) for q, f in pairs]
            ctx = {"note": note, "measured_by": measured_by}
            label = f"{label} {quantized} / mlx_lm float32 ({size})"
            fid = f"memory.{size}.{quantized}_over_fp32.{key}"
            results.add(fid, label, ratios, "ratio", target, ctx)


def _throughput(
    results: Results, size: str, configs: list[Config], runs: Runs, paths: dict[str, str]
) -> None:
    from athena import preflight
    from athena.host import machine_bandwidth
    from athena.preflight import speed

    add, bandwidth = results.add, machine_bandwidth()
    for c in configs:
        ok = [x for x in _ok(runs[c.name]) if x.get("decode_tokens")]
        if c.impl == "athena" or not ok:
            continue
        fid, of = f"throughput.{size}.{c.name}", f"{c.name} ({size})"
        rates = [x["prompt_tokens"] / x["prefill_s"] for x in ok]
        ctx = {"prompt_tokens": ok[0]["prompt_tokens"], "measured": "call to first token"}
        add(f"{fid}.prefill", f"prefill tokens/s, {of}", rates, "tokens/s", None, ctx)
        rates = [x["decode_tokens"] / x["decode_s"] for x in ok]
        ctx = {"decode_tokens": ok[0]["decode_tokens"], "measured": "first token to last"}
        add(f"{fid}.decode", f"decode tokens/s, {of}", rates, "tokens/s", None, ctx)
        info = preflight.inspect_model(paths[c.variant])
        estimate = preflight.estimate_peak(info, backend=c.backend, quantize_bits=c.quantize_bits)
        ceiling = speed.decode_ceiling(info, estimate, bandwidth)
        add_share_of_ceiling(results, fid, of, rates, ceiling, bandwidth)
