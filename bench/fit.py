"""Will it fit, and how fast, at real scale (issue 20): the preflight against real loads of
OLMoE-1B-7B's shape (`fit`), and the router-safe 4-bit against float32 (`router`). Each
figure: bench/README.md, "Fit at real scale".
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from os.path import commonprefix
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULT_MARK,
    ROOT,
    Results,
    Target,
    WorkerError,
    backend_importable,
    child_result,
    load_spec_model,
    proc_status,
    run_worker,
    worker_env,
)
from bench.preflight import add_share_of_ceiling, estimate_parts

GiB = 1 << 30
TARGET = Target("<=", 1.1, "estimate within 0.9-1.1x of the measured peak (RssAnon)")
DECODE_TOKENS = 8
SAMPLE_S = 0.02  # the child's /proc status is read this often, through its load and decode
# A small shape like OLMoE-1B-7B's (64 experts, 8 per token, the same vocabulary), for
# developing and testing the group without 28 GB of address space.
LIKE_SHAPE = {
    "vocab_size": 50304,
    "hidden_size": 256,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "num_experts": 64,
    "num_experts_per_tok": 8,
}
OPTIONS = (  # name, backend, dtype, quantize_bits
    ("mlx-q4", "mlx", None, 4),
    ("mlx-q8", "mlx", None, 8),
    ("mlx-float32", "mlx", "float32", None),
    ("transformers-bfloat16", "transformers", "bfloat16", None),
    ("transformers-float32", "transformers", "float32", None),
)
PROMPTS = (
    "The quick brown fox jumps over the lazy dog",
    "Memory is the process of storing and recalling",
    "In the beginning the model saw only noise",
    "A mixture of experts routes every token to",
    "Rain fell on the city while the lights",
    "The recipe calls for two cups of flour",
)


def measure(
    results: Results,
    work: Path,
    *,
    shape: str = "real",
    only: list[str] | None = None,
    cap: int | None = None,
) -> dict[str, Any]:
    """The `fit` group: every option of `OPTIONS` (or `only`) that fits here."""
    from athena import preflight
    from athena.checkpoints import write_sparse_olmoe
    from athena.host import machine_bandwidth
    from athena.preflight import speed

    folder = write_sparse_olmoe(
        work / f"olmoe-{shape}-shape", None if shape == "real" else LIKE_SHAPE, shards=6
    )
    info = preflight.inspect_model(str(folder))
    budget = preflight.machine_budget()
    bandwidth = machine_bandwidth()
    physical = budget.physical or 0
    cap = cap or max(physical - 2 * GiB, GiB)
    out: dict[str, Any] = {"shape": shape, "cap": cap, "options": {}}
    for name, backend, dtype, bits in OPTIONS:
        fid, label = f"fit.{shape}.{name}", f"{name} ({shape} shape)"
        if only and name not in only:
            continue
        if not backend_importable(backend):
            results.skip(fid, label, f"{backend} not installed here")
            continue
        estimate = preflight.estimate_peak(
            info, backend=backend, dtype=dtype, quantize_bits=bits, context=0
        )
        if budget.status(estimate.resident) == "does not fit" or estimate.resident > cap:
            reason = f"estimated {preflight.gib(estimate.resident)} does not fit here"
            results.skip(fid, label, reason)
            continue
        spec = {"model": str(folder), "backend": backend, "dtype": dtype, "quantize_bits": bits}
        try:
            measured = run_capped(spec, cap)
        except (WorkerError, TimeoutError) as error:
            results.skip(fid, label, str(error))
            continue
        ceiling = speed.decode_ceiling(info, estimate, bandwidth)
        ratio = estimate.resident / max(measured["max_rss_anon"], 1)
        rate = measured["decode_tokens_per_s"]
        best = ceiling["tokens_per_second"]
        share = rate / best if best else None
        context: dict[str, Any] = {"estimate": estimate_parts(estimate), "measured": measured}
        context["sampled"] = f"RssAnon every {SAMPLE_S * 1000:g} ms through the load and decode"
        context["peak_over_vmhwm"] = estimate.peak / max(measured["vm_hwm"], 1)
        context.update(decode_ceiling=ceiling, share_of_ceiling=share)
        label_r = f"max(r, 1/r), resident estimate / peak RssAnon, {label}"
        results.add(f"{fid}.off_by", label_r, [max(ratio, 1 / ratio)], "ratio", TARGET, context)
        results.add(f"{fid}.load_s", f"load, {label}", [measured["load_s"]], "s")
        ctx = {"share_of_ceiling": share, "ceiling": ceiling}
        results.add(f"{fid}.decode", f"decode, {label}", [rate], "tokens/s", None, ctx)
        add_share_of_ceiling(results, fid, label, [rate], ceiling, bandwidth)
        out["options"][name] = context
    return out


def run_capped(spec: dict[str, Any], cap: int, timeout: float = 1800.0) -> dict[str, Any]:
    """This file's child on `spec`; sampled every SAMPLE_S s and killed when its anonymous
    memory passes `cap` (WorkerError). Returns the child's report plus the samples' maxima."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), json.dumps(spec)],
            stdout=out,
            stderr=err,
            cwd=ROOT,
            env=worker_env(),
        )
        peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        start = time.monotonic()
        killed = None
        while proc.poll() is None:
            now = proc_status(proc.pid)
            for key in peak:
                peak[key] = max(peak[key], now.get(key, 0))
            if peak["RssAnon"] > cap:
                killed = f"anonymous memory {peak['RssAnon'] / GiB:.1f} GiB passed the cap"
            elif time.monotonic() - start > timeout:
                killed = f"still running after {timeout:.0f} s"
            if killed:
                proc.kill()
                proc.wait()
                break
            time.sleep(SAMPLE_S)
        out.seek(0)
        err.seek(0)
        if killed:
            raise WorkerError(f"killed: {killed}")
        report = child_result("child", proc.returncode, out.read(), err.read())
    report["max_rss_anon"] = max(peak["RssAnon"], report["rss_anon_end"])
    report["max_rss_file"] = peak["RssFile"]
    report["vm_hwm"] = max(peak["VmHWM"], report["vm_hwm_end"])
    return report


# --- the child: one load, then single-token decode steps ----------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    model, load_s = load_spec_model(spec)
    after_load = proc_status()
    steps = _decode_mlx if spec["backend"] == "mlx" else _decode_torch
    seconds = steps(model.model, DECODE_TOKENS)
    end = proc_status()
    return {
        "load_s": load_s,
        "decode_tokens_per_s": DECODE_TOKENS / seconds,
        "rss_anon_after_load": after_load.get("RssAnon", 0),
        "rss_anon_end": end.get("RssAnon", 0),
        "vm_hwm_end": end.get("VmHWM", 0),
    }


def _decode_mlx(model: Any, tokens: int) -> float:
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    mx.eval(model(mx.array([[2, 3, 4, 5]]), cache=cache))  # a 4-token prompt
    start = time.perf_counter()
    for step in range(tokens):
        mx.eval(model(mx.array([[6 + step]]), cache=cache))
    return time.perf_counter() - start


def _decode_torch(model: Any, tokens: int) -> float:
    import torch

    with torch.no_grad():
        past = model(torch.tensor([[2, 3, 4, 5]]), use_cache=True).past_key_values
        start = time.perf_counter()
        for step in range(tokens):
            past = model(
                torch.tensor([[6 + step]]), past_key_values=past, use_cache=True
            ).past_key_values
        return time.perf_counter() - start


# --- the router group -------------------------------------------------------------------------


def measure_router(
    results: Results, work: Path, *, sizes: list[str], max_tokens: int = 8
) -> dict[str, Any]:
    """Top-k agreement with float32 of 4-bit with the router at 4 and at 8 bits."""
    if not backend_importable("mlx"):
        results.skip("router", "router-safe 4-bit", "mlx not installed here")
        return {}
    out: dict[str, Any] = {}
    for size in sizes:
        try:
            report = run_worker(
                {"task": "router", "size": size, "out": str(work), "max_tokens": max_tokens},
                script=Path(__file__),
            )
        except (WorkerError, TimeoutError) as error:
            results.skip(f"router.{size}", f"router ({size})", str(error))
            continue
        for variant in ("router4", "router8"):
            row, fid, of = report[variant], f"router.{size}.{variant}", f"4-bit, {variant} ({size})"
            for key, value, says in (
                ("topk_match", "topk_match", "top-k experts equal to float32's"),
                ("greedy_match", "greedy_match", "greedy text equal to float32's"),
                (
                    "greedy_prefix",
                    "greedy_common_prefix",
                    "greedy text's common prefix with float32's",
                ),
            ):
                ctx = row if key == "topk_match" else None
                results.add(f"{fid}.{key}", f"{says}, {of}", [row[value]], "share", None, ctx)
        extra = report["router8"]["model_bytes"] - report["router4"]["model_bytes"]
        label = f"model memory of the 8-bit router over the 4-bit one ({size})"
        results.add(f"router.{size}.router8_extra_bytes", label, [extra], "bytes")
        out[size] = report
    return out


def router_child(spec: dict[str, Any]) -> dict[str, Any]:
    """float32, 4-bit router 4, 4-bit router 8 of one tiny checkpoint: the top-k experts of
    every (token, layer) on PROMPTS, and the greedy continuations."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx_lm
    from mlx_lm.models import olmoe

    from athena import preflight
    from athena.backends.mlx_backend import select_device
    from athena.backends.quantize import olmoe_predicate
    from athena.checkpoints import write_tiny_olmoe

    select_device()
    folder = write_tiny_olmoe(Path(spec["out"]) / f"router-{spec['size']}", size=spec["size"])
    picked: list[Any] = []
    original = olmoe.OlmoeSparseMoeBlock.__call__

    def recording(self: Any, x: Any) -> Any:
        logits = self.gate(x.reshape(-1, x.shape[-1]))
        top = mx.argpartition(-logits, kth=self.top_k - 1, axis=-1)[..., : self.top_k]
        picked.append(mx.sort(top, axis=-1))
        return original(self, x)

    olmoe.OlmoeSparseMoeBlock.__call__ = recording  # type: ignore[method-assign]

    def run(model: Any, tokenizer: Any) -> tuple[list[Any], list[str]]:
        picks: list[Any] = []
        texts: list[str] = []
        for prompt in PROMPTS:
            picked.clear()
            mx.eval(model(mx.array([tokenizer.encode(prompt)])))
            picks.append(mx.stack(picked).tolist())
            picked.clear()
            texts.append(mlx_lm.generate(model, tokenizer, prompt, max_tokens=spec["max_tokens"]))
        return picks, texts

    loaded: Any = mlx_lm.load(str(folder))
    reference, reference_text = run(loaded[0], loaded[1])
    info = preflight.inspect_model(str(folder))
    report: dict[str, Any] = {}
    for router in (4, 8):
        loaded = mlx_lm.load(str(folder))
        nn.quantize(loaded[0], 64, 4, class_predicate=olmoe_predicate(4, 64, router))
        picks, texts = run(loaded[0], loaded[1])
        matches = [
            a == b
            for ours, theirs in zip(picks, reference, strict=True)
            for layer_ours, layer_theirs in zip(ours, theirs, strict=True)
            for a, b in zip(layer_ours, layer_theirs, strict=True)
        ]
        same, total = sum(matches), len(matches)
        pairs = list(zip(texts, reference_text, strict=True))
        greedy = sum(a == b for a, b in pairs) / len(pairs)
        prefix = sum(len(commonprefix([a, b])) / max(len(a), len(b), 1) for a, b in pairs)  # noqa: RUF071 (characters)
        prefix /= len(pairs)
        estimate = preflight.estimate_peak(
            info, backend="mlx", quantize_bits=4, router_bits=router, on_cpu=True
        )
        report[f"router{router}"] = {
            "topk_match": same / max(total, 1),
            "pairs": total,
            "greedy_match": greedy,
            "greedy_common_prefix": prefix,
            "model_bytes": estimate.model,
        }
    olmoe.OlmoeSparseMoeBlock.__call__ = original  # type: ignore[method-assign]
    return report


if __name__ == "__main__":
    task = json.loads(sys.argv[1])
    result = router_child(task) if task.get("task") == "router" else child(task)
    print(RESULT_MARK + json.dumps(result), flush=True)
