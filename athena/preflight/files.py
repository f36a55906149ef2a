"""Reading a model folder without reading a weight: the safetensors headers,
model.safetensors.index.json and the tokenizer files."""

from __future__ import annotations

from pathlib import Path

from athena import source
from athena.errors import SourceError
from athena.preflight.agreement import config_disagreement
from athena.preflight.info import ModelInfo, Tensor, TokenizerInfo
from athena.source import ModelSource

TOKENIZER_KINDS = (
    ("tokenizer.json", ("tokenizer.json",)),
    ("vocab.json + merges.txt", ("vocab.json", "merges.txt")),
    ("tokenizer.model", ("tokenizer.model",)),
)


def inspect_model(name: str | ModelSource) -> ModelInfo:
    """What `name` (a folder, cached hub id, located source) holds, no weight or network read:
    SourceError when it is no model folder; what a person can still look at goes to problems."""
    located = source.locate(name, download=False)
    folder = located.folder
    config, headers = source.check_model_folder(folder)  # model_type, sound safetensors
    try:
        problems = _index_problems(folder, list(headers))
        tokenizer, tokenizer_problem = _inspect_tokenizer(folder)
        file_sizes = {f.name: f.stat().st_size for f in headers}
    except OSError as error:
        raise source.unreadable(Path(error.filename or folder), error) from None
    tensors = [
        Tensor(key, str(entry["dtype"]), tuple(entry["shape"]), end - start)
        for header in headers.values()
        for key, entry in header.items()
        for start, end in [entry["data_offsets"]]
    ]
    quantization = config.get("quantization") or None
    info = ModelInfo(
        name=located.name,
        path=folder,
        config=config,
        tensors=tensors,
        file_sizes=file_sizes,
        tokenizer=tokenizer,
        quantization=quantization if isinstance(quantization, dict) else None,
    )
    config_problem = config_disagreement(info)
    if tokenizer.max_id is not None and not config_problem and not tokenizer_problem:
        vocab = int(config["vocab_size"])
        if tokenizer.max_id >= vocab:
            tokenizer_problem = (
                f"the tokenizer in {folder} has ids up to {tokenizer.max_id} but config.json's "
                f"vocab_size is {vocab}, so id {tokenizer.max_id} has no embedding row; use "
                "the tokenizer that belongs to these weights"
            )
    problems += [p for p in (config_problem, tokenizer_problem) if p]
    info.problems, info.config_problem = problems, config_problem
    info.tokenizer_problem = tokenizer_problem
    return info


def _index_problems(folder: Path, files: list[Path]) -> list[str]:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return []
    try:
        listed = sorted(set(source.read_json(index)["weight_map"].values()))
    except SourceError as error:
        return [str(error)]
    except (KeyError, TypeError, AttributeError):
        return [f"model.safetensors.index.json in {folder} has no weight_map; re-download it"]
    if missing := sorted(set(listed) - {f.name for f in files}):
        return [
            f"{folder} lacks {missing[0]} (model.safetensors.index.json lists {len(listed)} "
            "weight files); the download is incomplete, re-download the folder"
        ]
    if extra := sorted({f.name for f in files} - set(listed)):  # mlx-lm would load it too
        return [
            f"{folder} has {extra[0]}, which model.safetensors.index.json does not list (a "
            "leftover of another download or conversion?); remove it or re-download the folder"
        ]
    return []


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
    if kind == "tokenizer.model":  # sentencepiece protobuf: its size is known once loaded
        return TokenizerInfo(kind), None
    broken = f"the {kind} in {folder} does not load"
    try:
        if kind == "tokenizer.json":
            data = source.read_json(folder / "tokenizer.json", source.TOKENIZER_LIMIT)
            model, vocab = data["model"], data["model"]["vocab"]
            if model.get("type") == "Unigram" or isinstance(vocab, list):
                ids = list(range(len(vocab)))
            else:
                ids = [int(v) for v in vocab.values()]
            ids += [int(token["id"]) for token in data.get("added_tokens") or ()]
        else:
            vocab = source.read_json(folder / "vocab.json", source.TOKENIZER_LIMIT)
            ids = [int(v) for v in vocab.values()]
        if (folder / "tokenizer_config.json").is_file():
            config = source.read_json(folder / "tokenizer_config.json")
            ids += [int(key) for key in (config.get("added_tokens_decoder") or {})]
    except SourceError as error:
        return TokenizerInfo(kind), str(error)
    except (ValueError, KeyError, TypeError, AttributeError):
        why = f"{broken} (not a tokenizer's JSON); re-download or re-create it"
        return TokenizerInfo(kind), why
    if not ids:
        return TokenizerInfo(kind, 0), f"{broken} (its vocabulary is empty); re-create it"
    return TokenizerInfo(kind, len(set(ids)), max(ids)), None
