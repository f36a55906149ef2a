"""Tiny OLMoE checkpoints made locally, for tests, guides and benchmarks (no hub, no torch).

`write_tiny_olmoe(out_dir)` writes a deterministic OLMoE folder that both `mlx_lm.load` and
transformers' `AutoModelForCausalLM.from_pretrained` load:

- config.json: `model_type` "olmoe" with the fields mlx_lm/models/olmoe.py and transformers'
  OlmoeConfig read (untied embeddings, no explicit head_dim, so both agree on the q/k norms);
- model.safetensors: weights in Hugging Face naming, one tensor per expert
  (`model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight`; mlx-lm's `sanitize()` stacks
  them, transformers' conversion mapping packs them);
- tokenizer.json, tokenizer_config.json, special_tokens_map.json: a byte-level BPE shaped like
  the GPT-NeoX/OLMo one: `<|endoftext|>` (id 0, eos), `<|padding|>` (id 1, pad), the 256
  bytes, then merges learnt from a fixed built-in corpus (`Ġthe`, `Ġmemory`, ...: word tokens
  that start with a space, like the real vocabulary). Every text encodes, and decodes back
  exactly; mlx-lm picks its BPE streaming detokenizer for it, as for real OLMoE.
- generation_config.json.

The folder is written atomically (see `write_tiny_olmoe`): a folder with files in it is
refused unless overwrite=True, which replaces these six files only and never touches others.

Only numpy and `tokenizers` are imported. Weights are scaled so activations stay O(1) and
logits are well separated, so greedy decoding is not decided by rounding noise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = (EOS_TOKEN, PAD_TOKEN)
# 62 merges make 320 tokens (a multiple of 64, as real vocabularies are padded): each token
# costs 2 * hidden parameters (embedding + lm_head), so tiny (hidden 64) grows by 3%.
NUM_MERGES = 62
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256 + NUM_MERGES

# The text the merges are learnt from (plain ASCII English, so every merged token is printable
# and accented letters or emoji stay split across byte tokens, as rare characters are in real
# vocabularies). Changing it changes every generated checkpoint.
CORPUS = """\
The quick brown fox jumps over the lazy dog. Once upon a time, in a small town by the sea,
there lived a model that could remember what it had read. It was made of many experts, and
each expert knew a little about the world. When a word came in, the router sent it to the
experts that knew it best, and they wrote what they thought into the memory. The memory was
not large, so the model had to learn what to keep and what to forget. Some days it kept the
names of the ships in the harbour; other days it kept the weather, the price of bread, or the
way the light fell on the water in the evening. The people of the town came to ask it
questions, and it answered them as well as it could. This is a story about memory and about
the mixture of experts that made it.
"""

# The files write_tiny_olmoe writes, in the order they are put in place: config.json last, so
# a folder is only ever loadable once everything else is there.
FILES = (
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "config.json",
)

# Presets: the architecture knobs of an OLMoE. Parameter counts (float32 bytes = 4x):
# tiny ~0.3 M (tests), small ~4 M, medium ~330 M (benchmarks; 1.3 GB in float32).
SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "num_experts": 8,
        "num_experts_per_tok": 2,
    },
    "small": {
        "hidden_size": 256,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_key_value_heads": 8,
        "num_experts": 16,
        "num_experts_per_tok": 4,
    },
    "medium": {
        "hidden_size": 1024,
        "intermediate_size": 256,
        "num_hidden_layers": 6,
        "num_attention_heads": 16,
        "num_key_value_heads": 16,
        "num_experts": 64,
        "num_experts_per_tok": 8,
    },
}

DTYPES = ("float32", "float16", "bfloat16")
_SAFETENSORS_DTYPE = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}


def count_parameters(size: str = "tiny") -> int:
    """The number of parameters of a preset (what `write_tiny_olmoe` writes for it)."""
    s = _preset(size)
    h, i, e = s["hidden_size"], s["intermediate_size"], s["num_experts"]
    head_dim = h // s["num_attention_heads"]
    kv = s["num_key_value_heads"] * head_dim
    attention = h * h * 2 + h * kv * 2 + h + kv  # q, o, k, v, q_norm, k_norm
    moe = e * h + e * 3 * h * i  # router, experts
    layer = attention + moe + 2 * h  # + the two layer norms
    return 2 * VOCAB_SIZE * h + s["num_hidden_layers"] * layer + h


class FolderNotEmpty(FileExistsError):
    """The target folder already has files and overwrite was not asked for."""

    def __init__(self, folder: Path, entries: list[str]) -> None:
        self.folder, self.entries = folder, entries
        super().__init__(self.sentence("overwrite=True"))

    def sentence(self, flag: str) -> str:
        """One sentence naming the folder, what is in it, and `flag`, the way to overwrite."""
        count = len(self.entries)
        shown = ", ".join(self.entries[:3]) + (", ..." if count > 3 else "")
        return (
            f"{self.folder} is not empty ({count} {'entry' if count == 1 else 'entries'}: "
            f"{shown}); choose a new or empty folder, or pass {flag} to replace only the "
            "tiny checkpoint's own files in it"
        )


class FolderBusy(BlockingIOError):
    """Another process is writing a checkpoint into the same folder right now."""


# For tests: called with "temp:NAME" after NAME is written into the temporary folder,
# "target:NAME" after NAME is put in place (or "target:folder" after the one rename). None
# in normal use.
_on_step: Callable[[str], None] | None = None


def write_tiny_olmoe(
    out_dir: str | Path,
    *,
    size: str = "tiny",
    seed: int = 0,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Write a deterministic OLMoE checkpoint folder to `out_dir` and return its path.

    The same (size, seed, dtype) always gives the same bytes. A folder that exists and is not
    empty is refused (`FolderNotEmpty`) unless `overwrite=True`, which replaces only the files
    this function writes (`FILES`) and leaves every other file in the folder alone.

    The files are written into a temporary folder beside `out_dir` (`.NAME.athena-tmp-XXXX`),
    then moved into place, with a lock (`.NAME.athena-lock`, removed after) so that two
    writers of one folder never mix: the second gets `FolderBusy`. A new or empty `out_dir`
    appears in one rename, complete or not at all. With `overwrite=True` into a folder that
    has files, they are replaced one by one, config.json removed first and put back last, so
    an interrupted overwrite leaves a folder without config.json (no loader accepts it; write
    again to complete it), never a loadable mix. An exception (Ctrl-C, a full disk) removes the
    temporary folder; a killed process may leave it, and the next write of `out_dir` removes it.
    """
    preset = _preset(size)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    out = Path(out_dir)
    target = out.resolve()  # one folder, one lock, whichever path (relative, symlink) names it
    if target.exists() and not target.is_dir():
        raise ValueError(f"{out} exists and is not a folder; pass a folder path for the model")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _writer_lock(target, out):
        _remove_leftovers(target)
        entries = sorted(p.name for p in target.iterdir()) if target.exists() else []
        if entries and not overwrite:
            raise FolderNotEmpty(out, entries)
        temp = target.parent / f".{target.name}.athena-tmp-{secrets.token_hex(4)}"
        temp.mkdir()
        try:
            try:
                _write_files(temp, size, preset, seed, dtype)
            except OSError as error:  # e.g. a full disk
                raise OSError(
                    f"could not write the checkpoint for {out} ({_reason(error)}); "
                    f"{'nothing in it was changed' if entries else 'it was not created'}"
                ) from error
            if not entries:
                _rename_folder(temp, target, out)
                return out
            try:
                _replace_files(temp, target)
            except OSError as error:
                raise OSError(
                    f"could not replace the checkpoint files in {out} ({_reason(error)}); it "
                    "has no config.json now (so it does not load half-written): write it again "
                    "to complete it"
                ) from error
        finally:
            shutil.rmtree(temp, ignore_errors=True)
    return out


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _step(name: str) -> None:
    if _on_step is not None:
        _on_step(name)


@contextlib.contextmanager
def _writer_lock(target: Path, shown: Path) -> Iterator[None]:
    """An exclusive flock on `.NAME.athena-lock` beside the target, or FolderBusy at once.

    The lock file is removed on release; a writer that opened it before the removal finds
    that the path no longer names its file and opens it again (so two never both hold it)."""
    import fcntl

    path = target.parent / f".{target.name}.athena-lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusy(
                f"another process is writing a checkpoint into {shown} right now; wait for it "
                "to finish, then try again"
            ) from None
        try:
            same = os.path.samestat(os.stat(path), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # releases the lock


def _remove_leftovers(target: Path) -> None:
    """Temporary folders of earlier writes of `target` that were killed (we hold the lock,
    so no live writer owns them)."""
    prefix = f".{target.name}.athena-tmp-"
    for leftover in target.parent.iterdir():
        if leftover.name.startswith(prefix) and leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover)


def _write_files(folder: Path, size: str, preset: dict[str, int], seed: int, dtype: str) -> None:
    """Every file of FILES into `folder`, each flushed to disk, config.json last."""
    weights = _make_weights(preset, np.random.default_rng(seed))
    _save_safetensors(folder / "model.safetensors", weights, dtype)
    _step("temp:model.safetensors")
    del weights
    for name, content in _tokenizer_files().items():
        _write_durably(folder / name, content)
        _step(f"temp:{name}")
    generation = {"eos_token_id": 0, "pad_token_id": 1, "do_sample": False}
    _write_durably(folder / "generation_config.json", _json_bytes(generation))
    _step("temp:generation_config.json")
    _write_durably(folder / "config.json", _json_bytes(olmoe_config(size, dtype=dtype)))
    _step("temp:config.json")


def _rename_folder(temp: Path, target: Path, shown: Path) -> None:
    """Move the finished folder to a target that does not exist or is empty (rename(2)
    replaces an empty folder, and fails if something appeared in it meanwhile)."""
    if target.is_dir():  # an empty folder: the new one takes its permissions
        os.chmod(temp, target.stat().st_mode & 0o7777)
    try:
        os.rename(temp, target)
    except OSError as error:
        if target.is_dir() and any(target.iterdir()):
            raise FolderNotEmpty(shown, sorted(p.name for p in target.iterdir())) from None
        raise error
    _fsync_folder(target.parent)
    _step("target:folder")


def _replace_files(temp: Path, target: Path) -> None:
    """Put each file of FILES from `temp` into the existing `target`, config.json removed
    first and replaced last; files of other names in `target` are left alone."""
    config = target / "config.json"
    if config.is_symlink() or config.exists():
        config.unlink()
        _fsync_folder(target)
    for name in FILES:
        os.replace(temp / name, target / name)
        _step(f"target:{name}")
    _fsync_folder(target)


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _write_durably(path: Path, content: bytes) -> None:
    with path.open("wb") as f:
        f.write(content)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable (a no-op where folders cannot be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def olmoe_config(size: str = "tiny", *, dtype: str = "float32") -> dict[str, Any]:
    """config.json of a preset: what mlx-lm's ModelArgs and transformers' OlmoeConfig read."""
    preset = _preset(size)
    return {
        "architectures": ["OlmoeForCausalLM"],
        "model_type": "olmoe",
        "vocab_size": VOCAB_SIZE,
        **preset,
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "attention_bias": False,
        "attention_dropout": 0.0,
        "clip_qkv": None,
        "norm_topk_prob": False,
        "output_router_logits": False,
        "router_aux_loss_coef": 0.01,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "use_cache": True,
        "bos_token_id": None,
        "eos_token_id": 0,
        "pad_token_id": 1,
        "dtype": dtype,
    }


def _preset(size: str) -> dict[str, int]:
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not a preset; use one of {', '.join(SIZES)}")
    return SIZES[size]


def _make_weights(preset: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """HF-named float32 weights, drawn in a fixed order from `rng`."""
    h, i = preset["hidden_size"], preset["intermediate_size"]
    head_dim = h // preset["num_attention_heads"]
    kv = preset["num_key_value_heads"] * head_dim

    def linear(out_features: int, in_features: int, gain: float = 1.0) -> np.ndarray:
        std = gain / np.sqrt(in_features)
        return (rng.standard_normal((out_features, in_features)) * std).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": rng.standard_normal((VOCAB_SIZE, h)).astype(np.float32)
    }
    for layer in range(preset["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        w[f"{p}.input_layernorm.weight"] = norm(h)
        w[f"{p}.post_attention_layernorm.weight"] = norm(h)
        w[f"{p}.self_attn.q_proj.weight"] = linear(h, h)
        w[f"{p}.self_attn.k_proj.weight"] = linear(kv, h)
        w[f"{p}.self_attn.v_proj.weight"] = linear(kv, h)
        w[f"{p}.self_attn.o_proj.weight"] = linear(h, h, gain=0.5)
        w[f"{p}.self_attn.q_norm.weight"] = norm(h)
        w[f"{p}.self_attn.k_norm.weight"] = norm(kv)
        w[f"{p}.mlp.gate.weight"] = linear(preset["num_experts"], h, gain=2.0)
        for expert in range(preset["num_experts"]):
            e = f"{p}.mlp.experts.{expert}"
            w[f"{e}.gate_proj.weight"] = linear(i, h)
            w[f"{e}.up_proj.weight"] = linear(i, h)
            w[f"{e}.down_proj.weight"] = linear(h, i, gain=0.5)
    w["model.norm.weight"] = norm(h)
    lm_head = linear(VOCAB_SIZE, h, gain=3.0)
    # Damp the rows of non-printable bytes and specials so that greedy text is mostly
    # printable ASCII (readable gibberish in guides) rather than broken UTF-8. The merged
    # tokens (ids after the bytes) are all printable: the corpus is ASCII.
    printable = np.zeros(VOCAB_SIZE, dtype=bool)
    printable[len(SPECIAL_TOKENS) + 0x20 : len(SPECIAL_TOKENS) + 0x7F] = True
    printable[len(SPECIAL_TOKENS) + 256 :] = True
    lm_head[~printable] *= 0.25
    w["lm_head.weight"] = lm_head
    return w


def _to_bfloat16_bytes(array: np.ndarray) -> bytes:
    """float32 -> bfloat16 (round to nearest even), as little-endian bytes."""
    bits = np.ascontiguousarray(array, dtype="<f4").view("<u4").astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype("<u2").tobytes()


def _save_safetensors(path: Path, weights: dict[str, np.ndarray], dtype: str) -> None:
    """The safetensors format written directly (numpy has no bfloat16): an 8-byte header
    length, a JSON header of name -> dtype/shape/offsets, then the raw little-endian data,
    one tensor at a time (so the peak is the weights plus one converted tensor)."""
    itemsize = 4 if dtype == "float32" else 2
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name in sorted(weights):
        size = weights[name].size * itemsize
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtype],
            "shape": list(weights[name].shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # align the data to 8 bytes
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for name in sorted(weights):
            if dtype == "bfloat16":
                f.write(_to_bfloat16_bytes(weights[name]))
            else:
                f.write(np.ascontiguousarray(weights[name], dtype=f"<f{itemsize}").tobytes())
        f.flush()
        os.fsync(f.fileno())


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what tokenizers' ByteLevel uses)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@functools.cache
def bpe_merges() -> tuple[tuple[str, str], ...]:
    """NUM_MERGES byte-level BPE merges learnt from CORPUS, the classic way: split the text
    as the tokenizer does (ByteLevel, GPT-2's regex, so words keep their leading space `Ġ`),
    then repeatedly merge the most frequent adjacent pair (ties: the smallest pair), a fixed
    computation with no randomness, hence the same merges everywhere."""
    from collections import Counter
    from itertools import pairwise

    from tokenizers import pre_tokenizers

    split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    text = " ".join(CORPUS.split())  # one paragraph: a word after a line break is rare
    words = Counter(word for word, _ in split.pre_tokenize_str(text))
    pieces = {word: list(word) for word in words}
    merges: list[tuple[str, str]] = []
    while len(merges) < NUM_MERGES:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            symbols = pieces[word]
            for pair in pairwise(symbols):
                pairs[pair] += count
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        for word, symbols in pieces.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            pieces[word] = merged
    return tuple(merges)


def _tokenizer_files() -> dict[str, bytes]:
    """tokenizer.json (the GPT-NeoX/OLMo layout: ByteLevel pre-tokenizer and decoder, BPE
    model), tokenizer_config.json and special_tokens_map.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for byte, char in sorted(_bytes_to_unicode().items()):
        vocab[char] = len(SPECIAL_TOKENS) + byte
    merges = list(bpe_merges())
    for left, right in merges:
        vocab[left + right] = len(vocab)
    assert len(vocab) == VOCAB_SIZE, "a merge repeated a token"
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS])

    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS_TOKEN,
        "pad_token": PAD_TOKEN,
        "bos_token": None,
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
    }
    special = {"eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    return {
        "tokenizer.json": tokenizer.to_str(pretty=True).encode(),
        "tokenizer_config.json": _json_bytes(tokenizer_config),
        "special_tokens_map.json": _json_bytes(special),
    }


# OLMoE-1B-7B-0924's shape (6.92 B parameters; 27.7 GB in float32, 13.8 GB in bfloat16).
OLMOE_1B_7B: dict[str, int] = {
    "vocab_size": 50304,
    "hidden_size": 2048,
    "intermediate_size": 1024,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_experts": 64,
    "num_experts_per_tok": 8,
}


def write_sparse_olmoe(
    out_dir: str | Path, shape: dict[str, int] | None = None, *, dtype: str = "float32"
) -> Path:
    """A structurally valid OLMoE folder of any shape (default: OLMoE-1B-7B's) whose weights
    take no disk: the safetensors header is written, then the file is extended to its full
    length as a sparse file (its data reads as zeros). For checks that read headers only
    (athena.preflight); never load it. The tokenizer is the tiny checkpoints'."""
    shape = dict(OLMOE_1B_7B if shape is None else shape)
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = shape.pop("vocab_size")
    config = {**olmoe_config("tiny", dtype=dtype), **shape, "vocab_size": vocab}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    itemsize = 4 if dtype == "float32" else 2
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, tensor_shape in sorted(_tensor_shapes(shape, vocab).items()):
        nbytes = itemsize
        for dim in tensor_shape:
            nbytes *= dim
        header[name] = {
            "dtype": _SAFETENSORS_DTYPE[dtype],
            "shape": list(tensor_shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with (out / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        f.truncate(8 + len(encoded) + offset)
    for name, content in _tokenizer_files().items():
        (out / name).write_bytes(content)
    return out


def _tensor_shapes(shape: dict[str, int], vocab: int) -> dict[str, tuple[int, ...]]:
    """Hugging Face names and shapes of an OLMoE's tensors (what `_make_weights` writes)."""
    h, i = shape["hidden_size"], shape["intermediate_size"]
    kv = shape["num_key_value_heads"] * (h // shape["num_attention_heads"])
    shapes: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, h),
        "model.norm.weight": (h,),
        "lm_head.weight": (vocab, h),
    }
    for layer in range(shape["num_hidden_layers"]):
        p = f"model.layers.{layer}"
        shapes |= {
            f"{p}.input_layernorm.weight": (h,),
            f"{p}.post_attention_layernorm.weight": (h,),
            f"{p}.self_attn.q_proj.weight": (h, h),
            f"{p}.self_attn.k_proj.weight": (kv, h),
            f"{p}.self_attn.v_proj.weight": (kv, h),
            f"{p}.self_attn.o_proj.weight": (h, h),
            f"{p}.self_attn.q_norm.weight": (h,),
            f"{p}.self_attn.k_norm.weight": (kv,),
            f"{p}.mlp.gate.weight": (shape["num_experts"], h),
        }
        for expert in range(shape["num_experts"]):
            e = f"{p}.mlp.experts.{expert}"
            shapes |= {
                f"{e}.gate_proj.weight": (i, h),
                f"{e}.up_proj.weight": (i, h),
                f"{e}.down_proj.weight": (h, i),
            }
    return shapes
