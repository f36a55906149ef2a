"""What `athena inspect` and `athena doctor --model` show: `describe()`'s JSON-ready data
(schema athena-inspect/1) and `render()`'s text."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from athena.host import installed_backends
from athena.preflight import provenance
from athena.preflight.agreement import CONFIG_SIZES
from athena.preflight.checks import largest, oversize_sentence, unmappable
from athena.preflight.memory import (
    TIGHT_SHARE,
    estimate_peak,
    gib,
    load_options,
    machine_budget,
    mlx_on_cpu,
)
from athena.preflight.speed import decode_ceiling

if TYPE_CHECKING:
    from athena.host import Bandwidth
    from athena.preflight.info import ModelInfo
    from athena.preflight.memory import Estimate, MemoryBudget


def describe(
    info: ModelInfo,
    *,
    budget: MemoryBudget | None = None,
    backend: str | None = None,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    on_cpu: bool | None = None,
    context: int | None = None,
    router_bits: int | None = None,
    bandwidth: Bandwidth | None = None,
) -> dict[str, Any]:
    """Everything the preflight knows about `info`, JSON-ready (athena-inspect/1): each option
    at `context` tokens (default max_position_embeddings; 0: the weights alone), its decode
    ceiling from `bandwidth` (None: no ceiling)."""
    budget = budget or machine_budget()
    cpu = mlx_on_cpu() if on_cpu is None else on_cpu
    backends = installed_backends()
    chosen = backend or (backends[0] if backends else None)
    positions = info.config.get("max_position_embeddings")
    default_context = context is None
    if context is None:
        context = positions if isinstance(positions, int) and positions > 0 else 0
    mlx = "mlx" in backends or chosen == "mlx"
    options = load_options(info, mlx=mlx, on_cpu=cpu, router_bits=router_bits, context=context)
    default = estimate = None
    if chosen is not None and not (chosen == "transformers" and info.quantization is not None):
        bits = quantize_bits if chosen == "mlx" else None
        estimate = estimate_peak(info, backend=chosen, dtype=dtype, quantize_bits=bits,
                                 on_cpu=cpu, router_bits=router_bits, context=context)  # fmt: skip
        default = _estimate_row(info, estimate, budget, bandwidth)
    problems = list(info.problems)  # quantized_problems included (config_disagreement)
    if not problems and isinstance(positions, int) and context > positions:
        problems.append(
            f"a context of {context} tokens is beyond the model's max_position_embeddings "
            f"({positions}); ask for at most {positions} (--context)"
        )
    if not problems and estimate is not None:
        if estimate.backend == "transformers" and (mapping := unmappable(info, budget)):
            problems.append(mapping)
        elif budget.status(estimate.resident) == "does not fit":
            load_only = replace(estimate, context=0, context_tokens=0)
            if budget.status(load_only.resident) == "does not fit":
                problems.append(
                    oversize_sentence(info, load_only, budget, "mlx" in backends, on_cpu=cpu)
                )
            else:
                longest = _longest_context(info, estimate, budget)
                problems.append(
                    f"{info.name} loads with {estimate.backend} "
                    f"({estimate.label()}{estimate.router_note()}, "
                    f"{gib(load_only.resident)}), but {context} tokens of context need "
                    f"{gib(estimate.context)} more, beyond this machine's "
                    f"{gib(budget.physical)}; at most {longest} tokens of context fit "
                    "with it (or pick a smaller option)"
                )
    return {
        "schema": "athena-inspect/1",
        "name": info.name,
        "path": str(info.path),
        "ok": not problems,
        "problems": problems,
        "parameters": info.parameters,
        "stored_dtypes": info.stored_dtypes,
        "disk_bytes": info.disk_bytes,
        "weight_files": len(info.file_sizes),
        "largest_weight_file": max(info.file_sizes.values(), default=0),
        "quantization": info.quantization,
        "tokenizer": asdict(info.tokenizer),
        "config": {key: info.config.get(key) for key in (*CONFIG_SIZES, "max_position_embeddings")},
        "config_agrees": info.config_problem is None,
        "backends_installed": backends,
        "backend": chosen,
        "mlx_on_cpu": cpu,
        "memory": {**asdict(budget), "tight_above": budget.tight_above},
        "context": {
            "tokens": context,
            "source": "max_position_embeddings" if default_context else "--context",
        },
        "bandwidth": None if bandwidth is None else asdict(bandwidth),
        "this_load": default,
        "estimates": [_estimate_row(info, option, budget, bandwidth) for option in options],
        "provenance": provenance.check(info.path),
    }


def _estimate_row(
    info: ModelInfo, estimate: Estimate, budget: MemoryBudget, bandwidth: Bandwidth | None
) -> dict[str, Any]:
    keys = "backend dtype quantize_bits router_bits resident peak model transient file_pages "
    keys += "runtime context context_tokens"
    unmapped = estimate.backend == "transformers" and unmappable(info, budget)
    return {
        "option": estimate.label(),
        "router": estimate.router_note().strip(" ()") or None,
        **{key: getattr(estimate, key) for key in keys.split()},
        "status": "does not fit" if unmapped else budget.status(estimate.resident),
        "decode_ceiling": decode_ceiling(info, estimate, bandwidth),
    }


def _longest_context(info: ModelInfo, estimate: Estimate, budget: MemoryBudget) -> int:
    """The most tokens of context with which `estimate`'s load still fits (0: none)."""

    def fits(tokens: int) -> bool:
        trial = estimate_peak(
            info, backend=estimate.backend, dtype=estimate.dtype,
            quantize_bits=estimate.quantize_bits, router_bits=estimate.router_bits,
            on_cpu=estimate.dtype == "float32", context=tokens,
        )  # fmt: skip
        return budget.status(trial.resident) != "does not fit"

    return largest(fits, estimate.context_tokens, low=0)


def _count(value: int) -> str:
    for size, unit in ((10**9, "B"), (10**6, "M"), (10**3, "K")):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    """`describe()`'s data as the text `athena inspect` prints."""
    config, tokenizer, memory = report["config"], report["tokenizer"], report["memory"]
    dtypes = ", ".join(f"{name} ({gib(size)})" for name, size in report["stored_dtypes"].items())
    if quant := report["quantization"]:
        dtypes += f"; mlx-quantized, {quant.get('bits')}-bit, group {quant.get('group_size')}"
    tok, vocab, max_id = "none", tokenizer["vocab"], tokenizer["max_id"]
    if tokenizer["kind"] is not None:
        tok = f"{tokenizer['kind']}, {'unknown' if vocab is None else vocab} ids"
        tok += "" if max_id is None else f" (max id {max_id})"
    shape = (
        f"{config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
        f"{config['num_experts']} experts ({config['num_experts_per_tok']} per token), "
        f"vocabulary {config['vocab_size']}"
    )
    agreement = "agrees with the weights" if report["config_agrees"] else "DISAGREES"
    none = "none installed (uv sync; on Linux --group mlx-cpu or --group torch)"
    backend = report["backend"] or none
    if backend == "mlx":
        backend += " (CPU: MoE experts run in float32)" if report["mlx_on_cpu"] else " (Metal)"
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
        f"({memory['recommended_source'] or f'{TIGHT_SHARE:.0%} of RAM'})",
    ]
    if memory.get("map_limit"):
        lines.append(
            f"mapping      one file at most {gib(memory['map_limit'])} "
            f"({memory['map_limit_source']}); largest here {gib(report['largest_weight_file'])}"
        )
    lines += _provenance_lines(report.get("provenance"))
    ctx = report["context"]
    said = "max_position_embeddings" if ctx["source"] == "max_position_embeddings" else "asked"
    bandwidth = report["bandwidth"]
    if bandwidth:
        lines.append(
            f"bandwidth    {bandwidth['bytes_per_second'] / 1e9:.1f} GB/s, {bandwidth['source']} "
            f"({bandwidth['detail']})"
        )
    lines += [
        "",
        f"memory of a load at {ctx['tokens']} tokens of context ({said}; docs/preflight.md):",
        "resident (weights, temporaries, runtime, KV cache + attention) decides; mapped file "
        "pages are reclaimable, shown beside",
        f"  {'option':<30} {'backend':<13} {'resident':>9} {'context':>9} {'file pages':>10} "
        f"{'tok/s max':>9}  here",
    ]
    rows = list(report["estimates"])
    this = report["this_load"]
    if this and not any(_same(row, this) for row in rows):
        rows.append(this)
    for row in rows:
        mark = " (this load)" if this and _same(row, this) else ""
        option = row["option"] + (f" ({row['router']})" if row.get("router") else "")
        ceiling = row["decode_ceiling"]["tokens_per_second"]
        lines.append(
            f"  {option:<30} {row['backend']:<13} {gib(row['resident']):>9} "
            f"{gib(row['context']):>9} {gib(row['file_pages']) if row['file_pages'] else '-':>10} "
            f"{'-' if ceiling is None else f'{ceiling:g}':>9}  {row['status']}{mark}"
        )
    if bandwidth:
        lines.append(
            f"tok/s max: decode ceiling, bandwidth / active weights read per token "
            f"({bandwidth['source']} bandwidth)"
        )
    return "\n".join(lines)


def _provenance_lines(record: dict[str, Any] | None) -> list[str]:
    """What provenance.check found, each line escaped and cut short (the file can be crafted)."""
    if record is None:
        return []
    if record["problem"]:
        return [f"provenance   {_escaped(record['problem'])}"]
    recipe, source = _mapping(record.get("recipe")), _mapping(record.get("source"))
    versions = ", ".join(f"{k} {v}" for k, v in list(_mapping(record.get("versions")).items())[:5])
    if "hub_id" in source:
        origin = f"{source['hub_id']} at commit {source.get('commit')}"
    else:
        origin = f"{source.get('folder')} ({len(_mapping(source.get('files')))} files hashed)"
    changed, files = record["changed"], len(_mapping(record.get("files")))
    state = f"{files} file(s) as written (sizes; sha256 of all but the weights)"
    if changed:
        state = f"{len(changed)} of {files} file(s) CHANGED since: {', '.join(changed[:5])}"
    made = f"{record.get('made_by')} ({versions}): {recipe.get('bits')}-bit, group "
    made += f"{recipe.get('group_size')}, router {recipe.get('router_bits')}-bit"
    return [
        f"made by      {_escaped(made)}",
        f"from         {_escaped(origin)}",
        f"files        {_escaped(state)}",
    ]


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _escaped(text: str, limit: int = 200) -> str:
    """`text` cut at `limit` characters, as printable ASCII (the rest escaped)."""
    short = text[:limit] + ("..." if len(text) > limit else "")
    return short.encode("unicode_escape").decode("ascii")


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[key] == b[key] for key in ("backend", "dtype", "quantize_bits", "router_bits"))
