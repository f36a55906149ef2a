"""This machine's memory budget and the estimated peak memory of a load, per backend (see
docs/preflight.md; `nox -s bench -- --only preflight` measures it)."""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from athena.host import Host, mlx_device_wanted, probe_host
from athena.preflight.info import DTYPE_ITEMSIZE, EXPERT, FLOAT_NAMES, ITEMSIZE, ModelInfo, Tensor
from athena.preflight.quantized import DEFAULT_ROUTER_BITS, is_router, quant_params

MiB = 1024**2
GiB = 1024**3
# What the process holds before the first weight: the interpreter plus the backend's imports
# (mlx-lm imports transformers; the other path is torch + transformers). Measured on Linux
# (bench/preflight.py); a fixed cost, independent of the model.
RUNTIME_BYTES = {"mlx": 600 * MiB, "transformers": 750 * MiB}
# Of it, anonymous memory (the interpreter's and the libraries' heaps); the rest is the
# shared libraries' mapped code and data, file pages the kernel can drop and read again.
# Measured from /proc/<pid>/status RssAnon (bench/fit.py, --fit-shape like).
RUNTIME_ANON_BYTES = {"mlx": 340 * MiB, "transformers": 450 * MiB}
# Without Metal's recommended working set (Linux), "tight" starts at this share of RAM.
TIGHT_SHARE = 0.9
MLX_PREFILL_CHUNK = 2048  # mlx-lm's generate prefills the prompt in chunks of this many tokens


@dataclass(frozen=True)
class MemoryBudget:
    """This machine's memory: physical RAM and, on a Mac, Metal's recommended working set."""

    physical: int | None
    recommended: int | None = None
    recommended_source: str | None = None  # where `recommended` came from
    # The largest private file mapping the kernel grants (Linux, vm.overcommit_memory 0 or
    # 2: RAM plus swap, or CommitLimit); None where no such rule is known (macOS, mode 1).
    map_limit: int | None = None
    map_limit_source: str | None = None

    @property
    def tight_above(self) -> int | None:
        if self.recommended is not None:
            return self.recommended
        return None if self.physical is None else int(self.physical * TIGHT_SHARE)

    def status(self, peak: int) -> str:
        """ "fits", "tight" (loads, with a warning) or "does not fit"; "unknown" without RAM."""
        if self.physical is None:
            return "unknown"
        if peak > self.physical:
            return "does not fit"
        tight = self.tight_above
        return "tight" if tight is not None and peak > tight else "fits"


def machine_budget(host: Host | None = None) -> MemoryBudget:
    """The budget of this machine (or `host`); on a Mac the recommended working set is Metal's,
    else `sysctl iogpu.wired_limit_mb`, else macOS's default share (importing mlx would cost)."""
    host = host or probe_host()
    physical = host.total_memory
    if host.is_linux and physical is not None:
        limit, said = linux_map_limit(physical)
        return MemoryBudget(physical, map_limit=limit, map_limit_source=said)
    if not host.is_apple_silicon or physical is None:
        return MemoryBudget(physical)
    info = dict(host.metal.device_info) if host.metal is not None else {}
    if working_set := info.get("max_recommended_working_set_size"):
        return MemoryBudget(physical, int(working_set), "mx.device_info")
    wired = str(host.sysctl.get("iogpu.wired_limit_mb") or "0")
    if wired.isdigit() and int(wired) > 0:
        return MemoryBudget(physical, int(wired) * MiB, "sysctl iogpu.wired_limit_mb")
    share = 0.75 if physical > 36 * GiB else 2 / 3
    return MemoryBudget(physical, int(physical * share), "macOS default share of RAM")


def linux_map_limit(
    physical: int, meminfo: str | None = None, overcommit: str | None = None
) -> tuple[int | None, str | None]:
    """The largest private file mapping Linux grants (torch maps each safetensors file), and
    why, from /proc/meminfo and vm.overcommit_memory (their texts: read if None)."""
    try:
        meminfo = meminfo if meminfo is not None else Path("/proc/meminfo").read_text()
        mode = overcommit or Path("/proc/sys/vm/overcommit_memory").read_text()
    except OSError:
        return None, None
    fields = {}
    for line in meminfo.splitlines():
        key, _, value = line.partition(":")
        number = value.strip().split(" ")[0]
        if number.isdigit():
            fields[key.strip()] = int(number) * 1024
    mode = mode.strip()
    if mode == "1":
        return None, None
    if mode == "2" and "CommitLimit" in fields:
        return fields["CommitLimit"], "vm.overcommit_memory=2: the CommitLimit"
    swap = fields.get("SwapTotal", 0)
    said = f"RAM plus {gib(swap)} of swap" if swap else "RAM, no swap"
    return physical + swap, f"vm.overcommit_memory=0: {said}"


def mlx_on_cpu(host: Host | None = None) -> bool:
    """Whether mlx would compute on the CPU here (Linux; a Mac with ATHENA_MLX_DEVICE=cpu)."""
    is_mac = platform.system() == "Darwin" if host is None else host.is_mac
    return not is_mac or mlx_device_wanted() == "cpu"


@dataclass(frozen=True)
class Estimate:
    """The estimated memory of one load, in bytes (docs/preflight.md): `resident` (anonymous,
    it decides the fit), `file_pages` (mapped, reclaimable, beside it) and `peak` (both)."""

    backend: str
    dtype: str  # the dtype the weights end in
    quantize_bits: int | None
    model: int  # the loaded model's arrays
    transient: int  # temporaries of loading/converting, at their largest
    file_pages: int  # mapped file pages: the weights (transformers), the libraries' code
    runtime: int  # the runtime's anonymous memory (interpreter, libraries' heaps)
    context: int = 0  # KV cache + attention's working set at `context_tokens` (0: the load)
    context_tokens: int = 0
    router_bits: int | None = None  # the router's (mlp.gate) bits when quantized

    @property
    def resident(self) -> int:
        return self.model + self.transient + self.runtime + self.context

    @property
    def peak(self) -> int:
        return self.resident + self.file_pages

    def label(self) -> str:
        if self.quantize_bits:
            return f"quantize_bits={self.quantize_bits}"
        return f"dtype={self.dtype!r}"

    def router_note(self) -> str:
        """ " (router 8-bit)" when the router's bits differ from the rest's, else ""."""
        router, bits = self.router_bits, self.quantize_bits
        return f" (router {router}-bit)" if bits and router and router != bits else ""


def estimate_peak(
    info: ModelInfo,
    *,
    backend: str,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    group_size: int = 64,
    on_cpu: bool | None = None,
    router_bits: int | None = None,
    context: int = 0,
    device: str = "cpu",
) -> Estimate:
    """The memory of loading `info` with `backend` and these options, as athena's load does
    (transformers on torch's `device`); with `context` > 0, plus the working memory of one
    sequence of that many tokens."""
    if backend == "mlx":
        cpu = mlx_on_cpu() if on_cpu is None else on_cpu
        router = (router_bits or DEFAULT_ROUTER_BITS) if quantize_bits else None
        estimate = _mlx_estimate(info, dtype, quantize_bits, group_size, cpu, router)
        chunk: int | None = MLX_PREFILL_CHUNK
    else:
        estimate = _transformers_estimate(info, dtype, device)
        chunk = None
    if context <= 0:
        return estimate
    itemsize = DTYPE_ITEMSIZE.get(estimate.dtype, 4)
    working = sequence_memory(info.config, context, query_chunk=chunk, itemsize=itemsize)
    return replace(estimate, context=working, context_tokens=context)


def sequence_memory(
    config: dict[str, Any],
    tokens: int,
    *,
    query_chunk: int | None = None,
    rows: int = 1,
    itemsize: int = 4,
) -> int:
    """Working memory (bytes) of one forward pass over `rows` sequences of `tokens` tokens:
    one layer's float32 attention scores (`query_chunk` queries at a time), every layer's
    key/value cache, one layer's per-token activations (docs/preflight.md)."""
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config.get("hidden_size") or 1)
    head_dim = int(config.get("head_dim") or hidden // heads)
    layers = int(config.get("num_hidden_layers") or 1)
    top_k = int(config.get("num_experts_per_tok") or 1)
    inter = int(config.get("intermediate_size") or hidden)
    queries = min(tokens, query_chunk) if query_chunk else tokens
    scores = heads * queries * tokens * 4
    cache = 2 * layers * tokens * kv_heads * head_dim * itemsize
    activations = queries * (4 * hidden + 3 * top_k * inter) * 4
    return rows * (scores + cache + activations)


def _units(info: ModelInfo) -> list[tuple[str | None, list[Tensor]]]:
    """Tensors grouped as they are evaluated: (None, [tensor]), or (group, [...]) for the
    per-expert tensors of one layer and projection, which both backends stack."""
    stacked: dict[tuple[str, str], list[Tensor]] = {}
    units: list[tuple[str | None, list[Tensor]]] = []
    for tensor in info.tensors:
        if (m := EXPERT.match(tensor.name)) is not None:
            stacked.setdefault((m.group(1), m.group(3)), []).append(tensor)
        else:
            units.append((None, [tensor]))
    for (layer, projection), tensors in stacked.items():
        units.append((f"{layer}.{'down' if projection == 'down_proj' else 'gate_up'}", tensors))
    return units


def _mlx_estimate(
    info: ModelInfo,
    dtype: str | None,
    bits: int | None,
    group_size: int,
    on_cpu: bool,
    router_bits: int | None,
) -> Estimate:
    runtime, libraries = _runtime("mlx")
    if (quant := info.quantization) is not None:  # mlx_lm.convert's folder: loaded as stored
        bits = quant.get("bits") if isinstance(quant.get("bits"), int) else None
        routers = [t.name.removesuffix(".weight") for t in info.tensors if is_router(t.name)]
        router = quant_params(quant, routers[0])["bits"] if routers else bits
        return Estimate(
            "mlx", info.float_dtype, bits, info.weight_bytes, 0, libraries, runtime,
            router_bits=router if isinstance(router, int) else None,
        )  # fmt: skip
    compute = dtype or ("float32" if on_cpu and info.has_experts else info.float_dtype)
    size = DTYPE_ITEMSIZE[compute]
    model = transient = 0
    for group, unit in _units(info):
        stacked = group is not None
        stored = sum(t.nbytes for t in unit)
        elements = sum(t.elements for t in unit)
        floating = unit[0].dtype in FLOAT_NAMES
        shape = unit[0].shape
        quantized = bool(bits) and len(shape) >= 2 and shape[-1] % group_size == 0
        cast = floating and ITEMSIZE[unit[0].dtype] != size
        if quantized:
            assert bits is not None
            router = group is None and is_router(unit[0].name)
            unit_bits = router_bits if router and router_bits else bits
            # packed weights plus one scale and one bias per group (in the float dtype)
            model += elements * unit_bits // 8 + 2 * (elements // group_size) * size
        else:
            model += elements * size if floating else stored
        # While one array is evaluated: its sources as read, the stacked copy when it is not
        # the final array, the cast copy when it is then quantized.
        changed = cast or quantized
        during = stored if (stacked or changed) else 0
        during += stored if (stacked and changed) else 0
        during += elements * size if (cast and quantized) else 0
        transient = max(transient, during)
    return Estimate(
        "mlx", compute, bits, model, transient, libraries, runtime, router_bits=router_bits
    )


def _transformers_estimate(info: ModelInfo, dtype: str | None, device: str) -> Estimate:
    configured = info.config.get("dtype") or info.config.get("torch_dtype")
    target = dtype or (configured if configured in DTYPE_ITEMSIZE else info.float_dtype)
    size = DTYPE_ITEMSIZE[target]
    converts = DTYPE_ITEMSIZE.get(info.float_dtype) != size or target != info.float_dtype
    # On the Mac's GPU (mps) every weight is a copy in unified memory, counted once; on the
    # CPU the unconverted weights stay views of the mapped file (file pages).
    converts = converts or device != "cpu"
    copied = 0
    for group, unit in _units(info):  # athena copies each expert into its fused tensor once,
        if group is not None or converts:  # in the dtype it ends in (no temporaries)
            copied += sum(t.elements for t in unit) * size
    runtime, libraries = _runtime("transformers")
    pages = info.weight_bytes + libraries
    return Estimate("transformers", target, None, copied, 0, pages, runtime)


def _runtime(backend: str) -> tuple[int, int]:
    """The runtime's (anonymous, file pages) bytes."""
    total = RUNTIME_BYTES[backend]
    anonymous = min(total, RUNTIME_ANON_BYTES[backend])
    return anonymous, total - anonymous


def gib(value: int | None) -> str:
    """Bytes for a person: "27.7 GiB", "924 MiB"."""
    if value is None:
        return "unknown"
    return f"{value / GiB:.1f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"


def load_options(
    info: ModelInfo,
    *,
    mlx: bool,
    on_cpu: bool | None = None,
    group_size: int = 64,
    router_bits: int | None = None,
    context: int = 0,
) -> list[Estimate]:
    """The estimates of every way to load `info` here: float32, bfloat16, 8-bit, 4-bit."""
    cpu = mlx_on_cpu() if on_cpu is None else on_cpu
    if info.quantization is not None:  # already quantized: loads as stored, on mlx only
        return [estimate_peak(info, backend="mlx", on_cpu=cpu, context=context)] if mlx else []
    out = []
    for dtype, bits in (("float32", None), ("bfloat16", None), (None, 8), (None, 4)):
        if mlx and not (dtype == "bfloat16" and cpu and info.has_experts):
            out.append(estimate_peak(info, backend="mlx", dtype=dtype, quantize_bits=bits,
                                     group_size=group_size, on_cpu=cpu, router_bits=router_bits,
                                     context=context))  # fmt: skip
        elif bits is None:
            out.append(estimate_peak(info, backend="transformers", dtype=dtype, context=context))
    return out
