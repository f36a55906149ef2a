"""Know that a model folder is whole, consistent and fits before any backend builds it.

    from athena import preflight

    info = preflight.inspect_model("models/olmoe-tiny")   # SourceError: one sentence
    info.parameters, info.stored_dtypes, info.disk_bytes, info.tokenizer.kind
    info.problems                                           # [] when it can be loaded
    preflight.estimate_peak(info, backend="mlx", quantize_bits=4).peak  # bytes

Everything comes from config.json, the safetensors headers (8-byte length + JSON:
dtype, shape, data_offsets per tensor), model.safetensors.index.json and the tokenizer
files: no weight is read, nothing but the standard library is imported, so this runs in
milliseconds even for a 28 GB checkpoint. `OLMoEModel.load()` calls `check_load` on both
backends and `athena inspect` prints what `inspect_model` found.

The peak-memory estimate is the process's peak resident memory while loading, modelled per
backend from the bytes of the weights (see docs/preflight.md and `nox -s bench -- --only
preflight`, which measures it against the real peak RSS of a child process):

- mlx (athena's lazy `mlx_lm.load` + one `mx.eval` per array): the final arrays (in the
  dtype they end in, quantized where `quantize_bits` applies) plus the largest single
  evaluation's temporaries (the per-expert source arrays of one stacked expert tensor, and
  the stacked copy when it is then cast or quantized), plus the runtime.
- transformers (`from_pretrained`, safetensors memory-mapped): every page of the files is
  read (it counts in RSS), plus copies of what cannot stay a view of the file (the fused
  expert tensors always, everything when the dtype changes), plus the conversion's
  temporaries, plus the runtime.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from athena.backends import LoadError, SourceError, source

logger = logging.getLogger("athena.models.olmoe")

MiB = 1024**2
GiB = 1024**3
# What the process holds before the first weight: the interpreter plus the backend's imports
# (mlx-lm imports transformers; the other path is torch + transformers). Measured on Linux
# (bench/preflight.py); a fixed cost, independent of the model.
RUNTIME_BYTES = {"mlx": 600 * MiB, "transformers": 750 * MiB}
# Without Metal's recommended working set (Linux), "tight" starts at this share of RAM.
TIGHT_SHARE = 0.9
MLX_PREFILL_CHUNK = 2048  # mlx-lm's generate prefills the prompt in chunks of this many tokens

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
FLOAT_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
DTYPE_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
CONFIG_SIZES = (
    "num_hidden_layers",
    "hidden_size",
    "num_experts",
    "vocab_size",
    "intermediate_size",
    "num_attention_heads",
    "num_experts_per_tok",
)
TOKENIZER_KINDS = (
    ("tokenizer.json", ("tokenizer.json",)),
    ("vocab.json + merges.txt", ("vocab.json", "merges.txt")),
    ("tokenizer.model", ("tokenizer.model",)),
)
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_EXPERT = re.compile(r"^(.*\.experts)\.(\d+)\.(\w+)\.weight$")


class OversizeError(LoadError):
    """The load's estimated peak memory is above this machine's memory. Not a SourceError:
    the other backend may need less (e.g. transformers keeps bf16 where mlx's CPU upcasts);
    `fallback_fits` says whether transformers' load would fit (mlx path only)."""

    def __init__(self, message: str, *, fallback_fits: bool = False) -> None:
        super().__init__(message)
        self.fallback_fits = fallback_fits


# --- what a folder holds -------------------------------------------------------------------


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # the safetensors name: "F32", "BF16", "U32", ...
    shape: tuple[int, ...]
    nbytes: int

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


@dataclass(frozen=True)
class TokenizerInfo:
    kind: str | None  # "tokenizer.json", "vocab.json + merges.txt", "tokenizer.model" or None
    vocab: int | None = None  # number of distinct ids (None: not known without loading it)
    max_id: int | None = None


@dataclass
class ModelInfo:
    """What `inspect_model` found. `problems` holds the sentences that stop a load (first is
    the one `check_load` raises); empty when the folder can be loaded."""

    name: str
    path: Path
    config: dict[str, Any]
    tensors: list[Tensor]
    disk_bytes: int  # the .safetensors files' sizes
    tokenizer: TokenizerInfo
    quantization: dict[str, Any] | None = None  # mlx-lm's config.json "quantization"
    problems: list[str] = field(default_factory=list)
    config_problem: str | None = None  # the first of `problems` about config.json
    tokenizer_problem: str | None = None  # the first about the tokenizer

    @property
    def weight_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def parameters(self) -> int:
        """Parameters of the model: packed (U32) weights counted unpacked, their quantization
        scales and biases not counted."""
        names = {t.name for t in self.tensors}
        total = 0
        for tensor in self.tensors:
            base = tensor.name.rsplit(".", 1)[0]
            if tensor.name.endswith((".scales", ".biases")) and f"{base}.weight" in names:
                continue
            packed = self._packed(tensor)
            total += tensor.elements * 32 // self._bits(tensor) if packed else tensor.elements
        return total

    @property
    def stored_dtypes(self) -> dict[str, int]:
        """Bytes per stored dtype, largest first ("float32", "bfloat16", "uint32", ...)."""
        out: dict[str, int] = {}
        for tensor in self.tensors:
            name = FLOAT_NAMES.get(tensor.dtype) or _integer_name(tensor.dtype)
            out[name] = out.get(name, 0) + tensor.nbytes
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    @property
    def float_dtype(self) -> str:
        """The dtype most of the floating-point weights are stored in."""
        floats = [name for name in self.stored_dtypes if name in DTYPE_ITEMSIZE]
        return floats[0] if floats else "float32"

    @property
    def has_experts(self) -> bool:
        return any(".experts." in t.name or ".switch_mlp." in t.name for t in self.tensors)

    @property
    def ok(self) -> bool:
        return not self.problems

    @functools.cached_property
    def _by_name(self) -> dict[str, Tensor]:
        return {t.name: t for t in self.tensors}

    def _packed(self, tensor: Tensor) -> bool:
        return tensor.dtype == "U32" and self.quantization is not None

    def _bits(self, tensor: Tensor) -> int:
        """Bits of a packed weight, from its shape and its scales' (group size from config)."""
        base = tensor.name.rsplit(".", 1)[0]
        scales = self._by_name.get(f"{base}.scales")
        quant = self.quantization or {}
        override = quant.get(base.removeprefix("model.")) or quant.get(base)
        group = int((override if isinstance(override, dict) else quant).get("group_size", 64))
        if scales is None or not scales.shape:
            return int(quant.get("bits", 4))
        return max(1, round(tensor.shape[-1] * 32 / (scales.shape[-1] * group)))

    def logical_shape(self, tensor: Tensor) -> tuple[int, ...]:
        if not self._packed(tensor):
            return tensor.shape
        return (*tensor.shape[:-1], tensor.shape[-1] * 32 // self._bits(tensor))


def _integer_name(dtype: str) -> str:
    """ "U32" -> "uint32", "I64" -> "int64", "BOOL" -> "bool"."""
    kind = {"U": "uint", "I": "int"}.get(dtype[:1])
    return kind + dtype[1:] if kind and dtype[1:].isdigit() else dtype.lower()


def resolve_folder(name: str) -> Path | None:
    """The local folder for `name`: the folder itself, or a hub id's snapshot in the local
    Hugging Face cache (huggingface_hub's layout; no network). None: a hub id not cached."""
    resolved = source.resolve_source(name)
    if resolved.kind == "folder":
        assert resolved.path is not None
        return resolved.path
    repo = Path(source._hub_cache_dir()) / ("models--" + name.replace("/", "--"))
    ref = repo / "refs" / "main"
    try:
        revision = ref.read_text().strip()
    except OSError:
        snapshots = sorted((repo / "snapshots").glob("*"))
        return snapshots[-1] if snapshots else None
    snapshot = repo / "snapshots" / revision
    return snapshot if snapshot.is_dir() else None


def inspect_model(name: str) -> ModelInfo:
    """Read what `name` (a folder, or a hub id in the local cache) holds, without reading a
    weight. Raises SourceError (one sentence) when it is not a model folder at all (the
    checks of source.check_source); problems that a person can still look at (config and
    weights disagree, no tokenizer) go to `problems`."""
    folder = resolve_folder(name)
    if folder is None:
        raise SourceError(
            f"{name!r} is not a local folder and not in the Hugging Face cache at "
            f"{source._hub_cache_dir()}; athena inspects local files only (download it "
            "once, or pass a local model folder)"
        )
    source.check_model_folder(folder)  # config.json, model_type, sound safetensors
    config = json.loads((folder / "config.json").read_text())
    files = sorted(folder.glob("model*.safetensors"))
    problems: list[str] = []
    problems += _index_problems(folder, files)
    tensors: list[Tensor] = []
    for file in files:
        tensors += _read_tensors(file)
    quantization = config.get("quantization") or None
    tokenizer, tokenizer_problem = _inspect_tokenizer(folder)
    info = ModelInfo(
        name=name,
        path=folder,
        config=config,
        tensors=tensors,
        disk_bytes=sum(f.stat().st_size for f in files),
        tokenizer=tokenizer,
        quantization=quantization if isinstance(quantization, dict) else None,
    )
    config_problem = _config_problem(info)
    if tokenizer.max_id is not None and not config_problem and not tokenizer_problem:
        vocab = int(config["vocab_size"])
        if tokenizer.max_id >= vocab:
            tokenizer_problem = (
                f"the tokenizer in {folder} has ids up to {tokenizer.max_id} but config.json's "
                f"vocab_size is {vocab}, so id {tokenizer.max_id} has no embedding row; use "
                "the tokenizer that belongs to these weights"
            )
    problems += [p for p in (config_problem, tokenizer_problem) if p]
    info.problems, info.config_problem, info.tokenizer_problem = (
        problems,
        config_problem,
        tokenizer_problem,
    )
    return info


def _read_tensors(file: Path) -> list[Tensor]:
    with file.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
    out = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        out.append(Tensor(name, str(entry["dtype"]), tuple(entry["shape"]), int(end) - int(start)))
    return out


def _index_problems(folder: Path, files: list[Path]) -> list[str]:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return []
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        listed = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError):
        return [f"model.safetensors.index.json in {folder} is damaged; re-download it"]
    present = {f.name for f in files}
    missing = [name for name in listed if name not in present]
    if missing:
        return [
            f"{folder} lacks {missing[0]} (model.safetensors.index.json lists {len(listed)} "
            "weight files); the download is incomplete, re-download the folder"
        ]
    return []


def _config_problem(info: ModelInfo) -> str | None:
    """The first disagreement of config.json with itself or with the weights, as a sentence."""
    config, where = info.config, f"config.json in {info.path}"
    for key in CONFIG_SIZES:
        value = config.get(key)
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return f"{where} has {key}={value!r}; it must be a positive integer (fix config.json)"
    if config["hidden_size"] % config["num_attention_heads"]:
        return (
            f"{where} has hidden_size {config['hidden_size']}, not a multiple of "
            f"num_attention_heads {config['num_attention_heads']} (fix config.json)"
        )
    found = _weights_shape(info)
    for key, noun in (
        ("num_hidden_layers", "layers"),
        ("hidden_size", "a hidden size of"),
        ("num_experts", "experts per layer"),
        ("vocab_size", "embedding rows (vocabulary)"),
    ):
        have = found.get(key)
        if have is not None and have != config[key]:
            said = f"{have} {noun}" if not noun.startswith("a ") else f"{noun} {have}"
            return (
                f"{where} says {key} is {config[key]} but the weights have {said}; the config "
                "does not belong to these weights (fix config.json or re-create the checkpoint)"
            )
    return None


def _weights_shape(info: ModelInfo) -> dict[str, int]:
    """num_hidden_layers, hidden_size, num_experts and vocab_size as the weights say them."""
    found: dict[str, int] = {}
    layers = {int(m.group(1)) for t in info.tensors if (m := _LAYER.search(t.name))}
    if layers:
        found["num_hidden_layers"] = max(layers) + 1
    experts: set[int] = set()
    for tensor in info.tensors:
        shape = info.logical_shape(tensor)
        if tensor.name.endswith("embed_tokens.weight") and len(shape) == 2:
            found["vocab_size"], found["hidden_size"] = shape
        elif (m := _EXPERT.match(tensor.name)) is not None:
            experts.add(int(m.group(2)))
        elif ".switch_mlp." in tensor.name and tensor.name.endswith(".weight") and shape:
            found.setdefault("num_experts", shape[0])
    if experts:
        found["num_experts"] = max(experts) + 1
    return found


def _inspect_tokenizer(folder: Path) -> tuple[TokenizerInfo, str | None]:
    kind = next(
        (k for k, names in TOKENIZER_KINDS if all((folder / n).is_file() for n in names)), None
    )
    if kind is None:
        return TokenizerInfo(None), (
            f"{folder} has no tokenizer (none of tokenizer.json, vocab.json + merges.txt, "
            "tokenizer.model); the download is incomplete: re-download the folder or copy "
            "the tokenizer files next to config.json"
        )
    ids: list[int] = []
    broken = f"the {kind} in {folder} does not load"
    if kind == "tokenizer.model":  # sentencepiece protobuf: its size is known once loaded
        return TokenizerInfo(kind), None
    try:
        if kind == "tokenizer.json":
            data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
            model = data["model"]
            vocab = model["vocab"]
            if model.get("type") == "Unigram" or isinstance(vocab, list):
                ids = list(range(len(vocab)))
            else:
                ids = [int(v) for v in vocab.values()]
            ids += [int(token["id"]) for token in data.get("added_tokens") or ()]
        else:
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            ids = [int(v) for v in vocab.values()]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        reason = "not valid JSON" if isinstance(error, ValueError) else "not a tokenizer's JSON"
        return TokenizerInfo(kind), f"{broken} ({reason}); re-download or re-create it"
    ids += _added_token_ids(folder)
    if not ids:
        return TokenizerInfo(kind, 0), f"{broken} (its vocabulary is empty); re-create it"
    return TokenizerInfo(kind, len(set(ids)), max(ids)), None


def _added_token_ids(folder: Path) -> list[int]:
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        return [int(key) for key in (config.get("added_tokens_decoder") or {})]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


# --- memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryBudget:
    """This machine's memory: physical RAM and, on a Mac, Metal's recommended working set."""

    physical: int | None
    recommended: int | None = None
    recommended_source: str | None = None  # where `recommended` came from

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


def machine_budget(host: Any = None) -> MemoryBudget:
    """The budget of this machine (or of `host`, a doctor `Host`: the seam tests simulate).

    On a Mac the recommended working set is Metal's (`mx.device_info()`, when the doctor's
    probe has it), else `sysctl iogpu.wired_limit_mb` when set, else macOS's default share
    of RAM (2/3, and 3/4 above 36 GiB): importing mlx to ask would cost a backend import."""
    if host is None:
        from athena.doctor.host import probe_host

        host = probe_host()
    physical = host.total_memory
    if not host.is_apple_silicon or physical is None:
        return MemoryBudget(physical)
    info = dict(host.metal.device_info) if host.metal is not None else {}
    if info.get("max_recommended_working_set_size"):
        return MemoryBudget(
            physical, int(info["max_recommended_working_set_size"]), "mx.device_info"
        )
    wired = str(host.sysctl.get("iogpu.wired_limit_mb") or "0")
    if wired.isdigit() and int(wired) > 0:
        return MemoryBudget(physical, int(wired) * MiB, "sysctl iogpu.wired_limit_mb")
    share = 0.75 if physical > 36 * GiB else 2 / 3
    return MemoryBudget(physical, int(physical * share), "macOS default share of RAM")


def mlx_on_cpu(host: Any = None) -> bool:
    """Whether mlx would compute on the CPU here (Linux; a Mac with ATHENA_MLX_DEVICE=cpu)."""
    if host is None:
        import platform

        is_mac = platform.system() == "Darwin"
    else:
        is_mac = host.is_mac
    return not is_mac or os.environ.get("ATHENA_MLX_DEVICE", "").strip().lower() == "cpu"


@dataclass(frozen=True)
class Estimate:
    """The estimated peak resident memory of one load, and what it is made of (bytes)."""

    backend: str
    dtype: str  # the dtype the weights end in
    quantize_bits: int | None
    model: int  # the loaded model's arrays
    transient: int  # temporaries of loading/converting, at their largest
    file_pages: int  # memory-mapped file pages read (transformers)
    runtime: int

    @property
    def peak(self) -> int:
        return self.model + self.transient + self.file_pages + self.runtime

    def label(self) -> str:
        if self.quantize_bits:
            return f"quantize_bits={self.quantize_bits}"
        return f"dtype={self.dtype!r}"


def _quantized_bytes(elements: int, bits: int, group_size: int, itemsize: int) -> int:
    """Packed weights plus one scale and one bias per group (in the model's float dtype)."""
    return elements * bits // 8 + 2 * (elements // group_size) * itemsize


def estimate_peak(
    info: ModelInfo,
    *,
    backend: str,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    group_size: int = 64,
    on_cpu: bool | None = None,
) -> Estimate:
    """The peak resident memory of loading `info` with `backend` ("mlx" or "transformers")
    and these options, as athena's load does it."""
    if backend == "mlx":
        cpu = mlx_on_cpu() if on_cpu is None else on_cpu
        return _mlx_estimate(info, dtype, quantize_bits, group_size, cpu)
    return _transformers_estimate(info, dtype)


def _units(info: ModelInfo) -> list[tuple[str | None, list[Tensor]]]:
    """Tensors grouped as they are evaluated: (None, [tensor]) for a plain tensor, and
    ("<layer>.experts", [...]) for the per-expert tensors of one layer and projection, which
    both backends stack into one array."""
    stacked: dict[tuple[str, str], list[Tensor]] = {}
    units: list[tuple[str | None, list[Tensor]]] = []
    for tensor in info.tensors:
        if (m := _EXPERT.match(tensor.name)) is not None:
            stacked.setdefault((m.group(1), m.group(3)), []).append(tensor)
        else:
            units.append((None, [tensor]))
    for (layer, projection), tensors in stacked.items():
        units.append((f"{layer}.{'down' if projection == 'down_proj' else 'gate_up'}", tensors))
    return units


def _mlx_estimate(
    info: ModelInfo, dtype: str | None, bits: int | None, group_size: int, on_cpu: bool
) -> Estimate:
    runtime = RUNTIME_BYTES["mlx"]
    if info.quantization is not None:  # mlx_lm.convert's folder: loaded as stored
        bits = _folder_bits(info)
        return Estimate("mlx", info.float_dtype, bits, info.weight_bytes, 0, 0, runtime)
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
            model += _quantized_bytes(elements, bits, group_size, size)
        else:
            model += elements * size if floating else stored
        # While one array is evaluated: its sources as read, the stacked copy when it is not
        # the final array, the cast copy when it is then quantized.
        changed = cast or quantized
        during = stored if (stacked or changed) else 0
        during += stored if (stacked and changed) else 0
        during += elements * size if (cast and quantized) else 0
        transient = max(transient, during)
    return Estimate("mlx", compute, bits, model, transient, 0, runtime)


def _folder_bits(info: ModelInfo) -> int | None:
    quant = info.quantization or {}
    return int(quant["bits"]) if isinstance(quant.get("bits"), int) else None


def _transformers_estimate(info: ModelInfo, dtype: str | None) -> Estimate:
    configured = info.config.get("dtype") or info.config.get("torch_dtype")
    target = dtype or (configured if configured in DTYPE_ITEMSIZE else info.float_dtype)
    size = DTYPE_ITEMSIZE[target]
    converts = DTYPE_ITEMSIZE.get(info.float_dtype) != size or target != info.float_dtype
    copied = 0
    fused: dict[str, int] = {}  # transformers fuses gate and up into one tensor per layer
    for group, unit in _units(info):
        elements = sum(t.elements for t in unit)
        if group is not None or converts:  # stacked experts are copies; others are views
            copied += elements * size
        if group is not None:
            fused[group] = fused.get(group, 0) + elements * size
    largest_fused = max(fused.values(), default=0)
    transient = 2 * largest_fused if converts else 0
    runtime = RUNTIME_BYTES["transformers"]
    return Estimate("transformers", target, None, copied, transient, info.weight_bytes, runtime)


# --- the checks load() makes ----------------------------------------------------------------


def gib(value: int | None) -> str:
    """Bytes for a person: "27.7 GiB", "924 MiB"."""
    if value is None:
        return "unknown"
    return f"{value / GiB:.1f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"


def load_options(
    info: ModelInfo, *, mlx: bool, on_cpu: bool | None = None, group_size: int = 64
) -> list[Estimate]:
    """The estimates of every way to load `info` here: float32, bfloat16, 8-bit, 4-bit."""
    cpu = mlx_on_cpu() if on_cpu is None else on_cpu
    if info.quantization is not None:  # already quantized: loads as stored, on mlx only
        return [estimate_peak(info, backend="mlx", on_cpu=cpu)] if mlx else []
    out = []
    for dtype, bits in (("float32", None), ("bfloat16", None), (None, 8), (None, 4)):
        if mlx and not (dtype == "bfloat16" and cpu and info.has_experts):
            out.append(estimate_peak(info, backend="mlx", dtype=dtype, quantize_bits=bits,
                                     group_size=group_size, on_cpu=cpu))  # fmt: skip
        elif bits is None:
            out.append(estimate_peak(info, backend="transformers", dtype=dtype))
    return out


@dataclass(frozen=True)
class Preflight:
    """What `check_load` found for one load: the folder, this load's estimate, the budget."""

    info: ModelInfo
    estimate: Estimate
    budget: MemoryBudget

    def check_input(
        self, tokens: int, *, what: str = "the prompt", new_tokens: int = 0, chunked: bool = False
    ) -> None:
        """`check_sequence` for this model next to its loaded weights; `chunked`: mlx-lm's
        generate prefills MLX_PREFILL_CHUNK tokens at a time (encode does not)."""
        oversize = self.budget.status(self.estimate.peak) == "does not fit"
        check_sequence(
            self.info.config,
            tokens,
            what=what,
            new_tokens=new_tokens,
            loaded_bytes=self.estimate.model + self.estimate.runtime,
            # Loaded with allow_oversize: no memory is left to judge by; positions only.
            budget=MemoryBudget(None) if oversize else self.budget,
            query_chunk=MLX_PREFILL_CHUNK if chunked else None,
        )


def check_load(
    name: str,
    *,
    backend: str,
    dtype: str | None = None,
    quantize_bits: int | None = None,
    group_size: int = 64,
    allow_oversize: bool = False,
    mlx_available: bool = True,
    budget: MemoryBudget | None = None,
) -> Preflight | None:
    """Before `backend` builds `name`: check the source (source.check_source), the folder's
    agreement with itself and its tokenizer, and that the estimated peak fits this machine.

    Raises SourceError for a folder no backend can load, OversizeError for one that does
    not fit (unless `allow_oversize`); logs a warning for a tight fit. Returns None for a
    hub id that is not (or only partly) in the local cache while online: the backend
    downloads it, so there is nothing whole to read yet."""
    resolved = source.check_source(name)
    if resolved.kind == "hub" and resolve_folder(name) is None:
        return None
    try:
        info = inspect_model(name)
    except SourceError:
        if resolved.kind == "hub" and not source.hub_offline():
            return None  # a partial snapshot in the cache: the backend completes it
        raise
    if info.problems:
        if resolved.kind == "hub" and not source.hub_offline():
            return None
        raise SourceError(info.problems[0])
    if backend == "transformers" and info.quantization is not None:
        raise LoadError(
            f"{name} holds mlx-quantized weights (config.json 'quantization'), which only "
            "the mlx backend loads; use the mlx backend or the unquantized checkpoint"
        )
    bits = quantize_bits if backend == "mlx" else None  # transformers skips it (no CUDA)
    estimate = estimate_peak(
        info, backend=backend, dtype=dtype, quantize_bits=bits, group_size=group_size
    )
    budget = budget or machine_budget()
    status = budget.status(estimate.peak)
    if status == "does not fit" and not allow_oversize:
        fallback = estimate_peak(info, backend="transformers", dtype=dtype)
        raise OversizeError(
            _oversize_sentence(info, estimate, budget, mlx_available, group_size),
            fallback_fits=backend == "mlx" and budget.status(fallback.peak) != "does not fit",
        )
    if status == "does not fit":
        logger.warning(
            "%s needs about %s to load, more than this machine's %s; loading anyway "
            "(allow_oversize=True)", name, gib(estimate.peak), gib(budget.physical),
        )  # fmt: skip
    elif status == "tight":
        logger.warning(
            "%s needs about %s to load with %s (%s), above %s (%s): it loads, but other "
            "programs may be pushed to swap",
            name, gib(estimate.peak), backend, estimate.label(), gib(budget.tight_above),
            budget.recommended_source or f"{TIGHT_SHARE:.0%} of RAM",
        )  # fmt: skip
    return Preflight(info, estimate, budget)


def _oversize_sentence(
    info: ModelInfo,
    estimate: Estimate,
    budget: MemoryBudget,
    mlx: bool,
    group_size: int = 64,
    on_cpu: bool | None = None,
) -> str:
    fitting = []
    for option in load_options(info, mlx=mlx, group_size=group_size, on_cpu=on_cpu):
        if budget.status(option.peak) == "does not fit" or option.peak >= estimate.peak:
            continue
        where = "" if option.backend == estimate.backend else f" with {option.backend}"
        fitting.append(f"{option.label()}{where} ({gib(option.peak)})")
    advice = (
        "options that fit: " + ", ".join(fitting)
        if fitting
        else "no dtype or quantization of it fits here"
    )
    return (
        f"{info.name} needs about {gib(estimate.peak)} to load with {estimate.backend} "
        f"({estimate.label()}), more than this machine's {gib(budget.physical)} of memory; "
        f"{advice}; or pass allow_oversize=True (--allow-oversize) to load it anyway"
    )


def sequence_memory(config: dict[str, Any], tokens: int, *, query_chunk: int | None = None) -> int:
    """Working memory of one forward pass over `tokens` tokens (bytes, float32): attention
    scores of one layer (all heads, `query_chunk` queries at a time if chunked), the key/value
    cache of every layer, and the per-token activations of one layer (top-k experts)."""
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config.get("hidden_size") or 1)
    head_dim = int(config.get("head_dim") or hidden // heads)
    layers = int(config.get("num_hidden_layers") or 1)
    top_k = int(config.get("num_experts_per_tok") or 1)
    inter = int(config.get("intermediate_size") or hidden)
    queries = min(tokens, query_chunk) if query_chunk else tokens
    scores = heads * queries * tokens * 4
    cache = 2 * layers * tokens * kv_heads * head_dim * 4
    activations = queries * (4 * hidden + 3 * top_k * inter) * 4
    return scores + cache + activations


def check_sequence(
    config: dict[str, Any],
    tokens: int,
    *,
    what: str = "the prompt",
    new_tokens: int = 0,
    loaded_bytes: int = 0,
    budget: MemoryBudget | None = None,
    query_chunk: int | None = None,
) -> None:
    """Raise ValueError (one sentence) when `tokens` tokens are beyond the model's
    max_position_embeddings, or when running the model over them (and `new_tokens` more,
    generated) would not fit in this machine's memory next to the loaded model
    (`loaded_bytes`)."""
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and tokens > limit:
        raise ValueError(
            f"{what} is {tokens} tokens, beyond the model's max_position_embeddings "
            f"({limit}); shorten it to at most {limit} tokens"
        )
    budget = budget or machine_budget()
    if budget.physical is None:
        return
    free = budget.physical - loaded_bytes
    need = sequence_memory(config, tokens + new_tokens, query_chunk=query_chunk)
    if need <= free:
        return
    low, high = 1, tokens  # the longest input that fits
    while low < high:
        middle = (low + high + 1) // 2
        if sequence_memory(config, middle + new_tokens, query_chunk=query_chunk) <= free:
            low = middle
        else:
            high = middle - 1
    raise ValueError(
        f"{what} is {tokens} tokens; running the model over it needs about {gib(need)} of "
        f"working memory, more than the {gib(max(free, 0))} this machine has beside the model; "
        f"shorten it to at most {low} tokens"
    )


# --- what `athena inspect` and `athena doctor --model` show ----------------------------------


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
    budget = budget or machine_budget()
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
