"""What `athena inspect` and `athena doctor --model` show: `describe()`'s JSON-ready data
(schema athena-inspect/1) and `render()`'s text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from athena import preflight as _package  # machine_budget is read where tests replace it
from athena.preflight.agreement import CONFIG_SIZES
from athena.preflight.checks import _oversize_sentence
from athena.preflight.memory import TIGHT_SHARE, estimate_peak, gib, load_options, mlx_on_cpu

if TYPE_CHECKING:
    from athena.preflight.info import ModelInfo
    from athena.preflight.memory import Estimate, MemoryBudget


def available_backends() -> list[str]:
    """The backends installed here, in load() order (found without importing them)."""
    import importlib.util

    def found(*names: str) -> bool:
        return all(importlib.util.find_spec(name) is not None for name in names)

    return [
        backend
        for backend, modules in (
            ("mlx", ("mlx", "mlx_lm")),
            ("transformers", ("torch", "transformers")),
        )
        if found(*modules)
    ]


def describe(
    info: ModelInfo,
    *,
    budget: MemoryBudget | None = None,
    backend: str | None = None,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    on_cpu: bool | None = None,
) -> dict[str, Any]:
    """Everything the preflight knows about `info`, as JSON-ready data (schema
    athena-inspect/1): what `athena inspect --json` prints and the doctor's model section."""
    budget = budget or _package.machine_budget()
    cpu = mlx_on_cpu() if on_cpu is None else on_cpu
    backends = available_backends()
    chosen = backend or (backends[0] if backends else None)
    config = info.config
    rows = []
    options = load_options(info, mlx="mlx" in backends or chosen == "mlx", on_cpu=cpu)
    for option in options:
        rows.append(_estimate_row(option, budget))
    default = estimate = None
    if chosen is not None and not (chosen == "transformers" and info.quantization is not None):
        bits = quantize_bits if chosen == "mlx" else None
        estimate = estimate_peak(info, backend=chosen, dtype=dtype, quantize_bits=bits, on_cpu=cpu)
        default = _estimate_row(estimate, budget)
    problems = list(info.problems)
    if not problems and estimate is not None and budget.status(estimate.peak) == "does not fit":
        problems.append(_oversize_sentence(info, estimate, budget, "mlx" in backends, on_cpu=cpu))
    return {
        "schema": "athena-inspect/1",
        "name": info.name,
        "path": str(info.path),
        "ok": not problems,
        "problems": problems,
        "parameters": info.parameters,
        "stored_dtypes": info.stored_dtypes,
        "disk_bytes": info.disk_bytes,
        "weight_files": len(list(info.path.glob("model*.safetensors"))),
        "quantization": info.quantization,
        "tokenizer": {
            "kind": info.tokenizer.kind,
            "vocab": info.tokenizer.vocab,
            "max_id": info.tokenizer.max_id,
        },
        "config": {key: config.get(key) for key in (*CONFIG_SIZES, "max_position_embeddings")},
        "config_agrees": info.config_problem is None,
        "backends_installed": backends,
        "backend": chosen,
        "mlx_on_cpu": cpu,
        "memory": {
            "physical": budget.physical,
            "recommended": budget.recommended,
            "recommended_source": budget.recommended_source,
            "tight_above": budget.tight_above,
        },
        "this_load": default,
        "estimates": rows,
    }


def _estimate_row(estimate: Estimate, budget: MemoryBudget) -> dict[str, Any]:
    return {
        "option": estimate.label(),
        "backend": estimate.backend,
        "dtype": estimate.dtype,
        "quantize_bits": estimate.quantize_bits,
        "peak": estimate.peak,
        "model": estimate.model,
        "transient": estimate.transient,
        "file_pages": estimate.file_pages,
        "runtime": estimate.runtime,
        "status": budget.status(estimate.peak),
    }


def _count(value: int) -> str:
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    """`describe()`'s data as the text `athena inspect` prints."""
    config, tokenizer, memory = report["config"], report["tokenizer"], report["memory"]
    dtypes = ", ".join(f"{name} ({gib(size)})" for name, size in report["stored_dtypes"].items())
    if report["quantization"]:
        quant = report["quantization"]
        dtypes += f"; mlx-quantized, {quant.get('bits')}-bit, group {quant.get('group_size')}"
    vocab = tokenizer["vocab"]
    tok = (
        "none"
        if tokenizer["kind"] is None
        else f"{tokenizer['kind']}, {vocab if vocab is not None else 'unknown'} ids"
        + (f" (max id {tokenizer['max_id']})" if tokenizer["max_id"] is not None else "")
    )
    shape = (
        f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
        f"{config['num_experts']} experts ({config['num_experts_per_tok']} per token), "
        f"vocabulary {config['vocab_size']}"
    )
    agreement = "agrees with the weights" if report["config_agrees"] else "DISAGREES"
    if report["backend"] is None:
        backend = "none installed (uv sync; on Linux --group mlx-cpu or --group torch)"
    else:
        backend = report["backend"]
        if backend == "mlx":
            backend += " (CPU: MoE experts run in float32)" if report["mlx_on_cpu"] else " (Metal)"
    tight = memory["recommended_source"] or f"{TIGHT_SHARE:.0%} of RAM"
    lines = [
        f"model        {report['name']}"
        + ("" if report["path"] == report["name"] else f" ({report['path']})"),
        f"parameters   {_count(report['parameters'])} ({report['parameters']:,})",
        f"stored       {dtypes}",
        f"on disk      {gib(report['disk_bytes'])} in {report['weight_files']} safetensors file(s)",
        f"tokenizer    {tok}",
        f"config       {shape}: {agreement}",
        f"backend      {backend}",
        f"memory       {gib(memory['physical'])} RAM; tight above {gib(memory['tight_above'])} "
        f"({tight})",
        "",
        "estimated peak memory of a load (docs/preflight.md):",
        f"  {'option':<22} {'backend':<13} {'peak':>10}  here",
    ]
    rows = list(report["estimates"])
    this = report["this_load"]
    for row in rows:
        mark = " (this load)" if this and _same(row, this) else ""
        lines.append(
            f"  {row['option']:<22} {row['backend']:<13} {gib(row['peak']):>10}  "
            f"{row['status']}{mark}"
        )
    if this and not any(_same(row, this) for row in rows):
        lines.append(
            f"  {this['option']:<22} {this['backend']:<13} {gib(this['peak']):>10}  "
            f"{this['status']} (this load)"
        )
    return "\n".join(lines)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("backend", "dtype", "quantize_bits")
    return all(a[key] == b[key] for key in keys)
