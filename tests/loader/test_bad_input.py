"""A bad model source: one clear sentence, load() is False, the CLI exits 1 without a traceback.

Each case damages a copy of the tiny checkpoint or names a folder that is not there. Hub ids are
in test_hub_ids.py; bad configuration values and inputs in test_bad_values.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from athena.cli import main
from athena.models.olmoe import OLMoEConfig, OLMoEModel

# Each case damages a copy of the tiny checkpoint (or names a source) and gives the sentence.
Damage = Callable[[Path], str]


def _missing_folder(model: Path) -> str:
    return str(model.parent / "no-such-model")


def _bare_name(model: Path) -> str:
    return "olmoe-tiny-typo"  # not a hub id (no owner): a folder that does not exist


def _a_file(model: Path) -> str:
    return str(model / "config.json")


def _no_config(model: Path) -> str:
    (model / "config.json").unlink()
    return str(model)


def _invalid_json(model: Path) -> str:
    (model / "config.json").write_text('{"model_type": "olmoe",')
    return str(model)


def _json_not_object(model: Path) -> str:
    (model / "config.json").write_text("[1, 2]")
    return str(model)


def _wrong_model_type(model: Path) -> str:
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = "llama"
    (model / "config.json").write_text(json.dumps(config))
    return str(model)


def _no_model_type(model: Path) -> str:
    config = json.loads((model / "config.json").read_text())
    del config["model_type"]
    (model / "config.json").write_text(json.dumps(config))
    return str(model)


def _missing_safetensors(model: Path) -> str:
    (model / "model.safetensors").unlink()
    return str(model)


def _pickle_only(model: Path) -> str:
    (model / "model.safetensors").rename(model / "pytorch_model.bin")
    return str(model)


def _truncated_data(model: Path) -> str:
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[: len(data) // 2])
    return str(model)


def _truncated_header(model: Path) -> str:
    data = (model / "model.safetensors").read_bytes()
    (model / "model.safetensors").write_bytes(data[:100])
    return str(model)


def _empty_safetensors(model: Path) -> str:
    (model / "model.safetensors").write_bytes(b"")
    return str(model)


def _garbage_header(model: Path) -> str:
    (model / "model.safetensors").write_bytes((16).to_bytes(8, "little") + b"not json at all!")
    return str(model)


def _weights_are_a_folder(model: Path) -> str:
    (model / "model.safetensors").unlink()
    (model / "model.safetensors").mkdir()
    return str(model)


def _config_is_a_folder(model: Path) -> str:
    (model / "config.json").unlink()
    (model / "config.json").mkdir()
    return str(model)


def _folder_link_loop(model: Path) -> str:
    loop = model.parent / "loop"
    loop.symlink_to(loop)
    return str(loop)


def _config_link_loop(model: Path) -> str:
    (model / "config.json").unlink()
    (model / "config.json").symlink_to(model / "config.json")
    return str(model)


def _weights_link_loop(model: Path) -> str:
    (model / "model.safetensors").unlink()
    (model / "model.safetensors").symlink_to(model / "model.safetensors")
    return str(model)


def _weights_link_to_nothing(model: Path) -> str:
    (model / "model.safetensors").unlink()
    (model / "model.safetensors").symlink_to(model / "gone.safetensors")
    return str(model)


def _rewrite_header(model: Path, change: Callable[[dict], None]) -> None:
    """Change the safetensors header in place, keeping its length (padded with spaces)."""
    file = model / "model.safetensors"
    data = file.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    change(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= length
    file.write_bytes(data[:8] + text.ljust(length) + data[8 + length :])


def _integer_dtype(model: Path) -> str:
    def change(header: dict) -> None:
        header["model.norm.weight"]["dtype"] = "I32"  # same item size as F32: bytes still fit

    _rewrite_header(model, change)
    return str(model)


def _unknown_dtype(model: Path) -> str:
    def change(header: dict) -> None:
        header["model.norm.weight"]["dtype"] = "F99"

    _rewrite_header(model, change)
    return str(model)


def _list_dtype(model: Path) -> str:
    def change(header: dict) -> None:
        header["model.norm.weight"]["dtype"] = ["F"]  # a list is no dict key: once a crash

    _rewrite_header(model, change)
    return str(model)


def _shape_not_the_bytes(model: Path) -> str:
    def change(header: dict) -> None:
        header["model.norm.weight"]["shape"] = [7]  # the data is 64 float32s

    _rewrite_header(model, change)
    return str(model)


def _more_experts_per_token_than_experts(model: Path) -> str:
    config = json.loads((model / "config.json").read_text())
    config["num_experts_per_tok"] = config["num_experts"] + 1
    (model / "config.json").write_text(json.dumps(config))
    return str(model)


def _huge_integer(model: Path) -> str:
    (model / "config.json").write_text('{"model_type": "olmoe", "vocab_size": 1' + "0" * 5000 + "}")
    return str(model)


def _nan(model: Path) -> str:
    config = json.loads((model / "config.json").read_text())
    config["rope_theta"] = float("nan")
    (model / "config.json").write_text(json.dumps(config))  # Python writes NaN; JSON has none
    return str(model)


def _deep_nesting(model: Path) -> str:
    (model / "config.json").write_text('{"model_type": ' + "[" * 100_000 + "]" * 100_000 + "}")
    return str(model)


def _not_utf8(model: Path) -> str:
    (model / "config.json").write_bytes(b'{"model_type": "olm\xffoe"}')
    return str(model)


def _huge_config(model: Path) -> str:
    with (model / "config.json").open("r+b") as f:  # sparse: no disk used
        f.truncate(17 * 2**20)
    return str(model)


def _huge_header(model: Path) -> str:
    """A header length of 1.5 GB in a file that long (sparse): what made inspect die of
    MemoryError before the 100 MB limit."""
    with (model / "model.safetensors").open("r+b") as f:
        f.write((1_500_000_000).to_bytes(8, "little"))
        f.truncate(2_000_000_000)
    return str(model)


def _huge_tokenizer(model: Path) -> str:
    with (model / "tokenizer.json").open("r+b") as f:
        f.truncate(65 * 2**20)
    return str(model)


def _tokenizer_huge_integer(model: Path) -> str:
    (model / "tokenizer.json").write_text('{"model": {"vocab": {"a": 1' + "0" * 5000 + "}}}")
    return str(model)


def _index_array(model: Path) -> str:
    (model / "model.safetensors.index.json").write_text("[]")
    return str(model)


JSON_CASES: dict[str, tuple[Damage, str]] = {
    "config.json with a 5,000-digit integer": (
        _huge_integer,
        "config.json in {model} holds an integer too long to read (over 4,300 digits); "
        "re-download or re-create it",
    ),
    "config.json with NaN": (
        _nan,
        "config.json in {model} is not valid JSON (NaN is not a JSON number); re-download or "
        "re-create it",
    ),
    "config.json nested 100,000 deep": (
        _deep_nesting,
        "config.json in {model} is nested too deeply to read; re-download or re-create it",
    ),
    "config.json not UTF-8": (
        _not_utf8,
        "config.json in {model} is not UTF-8 text (byte 19); re-download or re-create it",
    ),
    "config.json of 17 MiB": (
        _huge_config,
        "config.json in {model} is larger than the 16 MiB athena reads of a config.json; "
        "re-download or re-create it",
    ),
    "safetensors header claiming 1.5 GB": (
        _huge_header,
        "model.safetensors in {model} is damaged (its header claims 1,500,000,000 bytes, more "
        "than the 100,000,000 safetensors allows); re-download or re-create the checkpoint",
    ),
    "tokenizer.json of 65 MiB": (
        _huge_tokenizer,
        "tokenizer.json in {model} is larger than the 64 MiB athena reads of a tokenizer.json; "
        "re-download or re-create it",
    ),
    "tokenizer.json with a 5,000-digit integer": (
        _tokenizer_huge_integer,
        "tokenizer.json in {model} holds an integer too long to read (over 4,300 digits); "
        "re-download or re-create it",
    ),
    "index that is a JSON array": (
        _index_array,
        "model.safetensors.index.json in {model} is not a JSON object; re-download or re-create it",
    ),
}
CASES: dict[str, tuple[Damage, str]] = {
    **JSON_CASES,
    "weights file is a folder": (
        _weights_are_a_folder,
        "cannot read {model}/model.safetensors (Is a directory); it must be a file; "
        "re-download or re-create the checkpoint",
    ),
    "config.json is a folder": (
        _config_is_a_folder,
        "cannot read {model}/config.json (Is a directory); it must be a file; re-download or "
        "re-create the checkpoint",
    ),
    "model folder is a link loop": (
        _folder_link_loop,
        "cannot read {parent}/loop (Too many levels of symbolic links); fix the path (a "
        "broken or looping link?), or re-download the checkpoint",
    ),
    "config.json is a link loop": (
        _config_link_loop,
        "cannot read {model}/config.json (Too many levels of symbolic links); fix the path (a "
        "broken or looping link?), or re-download the checkpoint",
    ),
    "weights file is a link loop": (
        _weights_link_loop,
        "cannot read {model}/model.safetensors (Too many levels of symbolic links); fix the "
        "path (a broken or looping link?), or re-download the checkpoint",
    ),
    "weights file links to nothing": (
        _weights_link_to_nothing,
        "cannot read {model}/model.safetensors (No such file or directory); fix the path (a "
        "broken or looping link?), or re-download the checkpoint",
    ),
    "header declares integers for float weights": (
        _integer_dtype,
        "model.norm.weight in {model} is stored as I32, but OLMoE's weights are floating point "
        "(F32, F16 or BF16); the file's header does not describe these weights: re-download or "
        "re-create the checkpoint",
    ),
    "header declares an unknown dtype": (
        _unknown_dtype,
        "model.safetensors in {model} is damaged (tensor 'model.norm.weight': dtype 'F99' is not "
        "a safetensors dtype); re-download or re-create the checkpoint",
    ),
    "header declares a list as dtype": (
        _list_dtype,
        "model.safetensors in {model} is damaged (tensor 'model.norm.weight': dtype ['F'] is "
        "not a safetensors dtype); re-download or re-create the checkpoint",
    ),
    "header shape does not match its bytes": (
        _shape_not_the_bytes,
        "model.safetensors in {model} is damaged (tensor 'model.norm.weight': 256 bytes, but "
        "dtype F32 and shape [7] need 28; the header does not describe the data); re-download "
        "or re-create the checkpoint",
    ),
    "more experts per token than experts": (
        _more_experts_per_token_than_experts,
        "config.json in {model} has num_experts_per_tok 9, more than its num_experts 8: each "
        "token cannot pick more experts than there are (fix config.json)",
    ),
    "missing folder": (
        _missing_folder,
        "model folder not found: {parent}/no-such-model (check the path; athena does not "
        "look up a path on the Hugging Face hub)",
    ),
    "bare name": (
        _bare_name,
        "model folder not found: olmoe-tiny-typo (check the path; athena does not look up a "
        "path on the Hugging Face hub)",
    ),
    "a file, not a folder": (
        _a_file,
        "{model}/config.json is a file, not a model folder; pass the folder that holds it",
    ),
    "folder without config.json": (
        _no_config,
        "config.json not found in {model} (is this a model folder?)",
    ),
    "invalid JSON": (
        _invalid_json,
        "config.json in {model} is not valid JSON (Expecting property name enclosed in double "
        "quotes: line 1 column 24 (char 23)); re-download or re-create it",
    ),
    "JSON that is not an object": (
        _json_not_object,
        "config.json in {model} is not a JSON object; re-download or re-create it",
    ),
    "wrong model_type": (
        _wrong_model_type,
        "config.json in {model} has model_type 'llama'; athena loads OLMoE checkpoints "
        "(model_type 'olmoe')",
    ),
    "no model_type": (
        _no_model_type,
        "config.json in {model} has no model_type; athena loads OLMoE checkpoints "
        "(model_type 'olmoe')",
    ),
    "missing safetensors": (
        _missing_safetensors,
        "no model*.safetensors in {model}; the weights are missing (re-download or re-create "
        "the checkpoint)",
    ),
    "pickled weights only": (
        _pickle_only,
        "{model} has pytorch_model.bin but no model*.safetensors; athena loads safetensors "
        "only (pickled weights can run code), so convert the weights to safetensors",
    ),
    "truncated safetensors": (
        _truncated_data,
        "model.safetensors in {model} is truncated ({size} bytes of {full}); re-download or "
        "re-create the checkpoint",
    ),
    "safetensors cut inside its header": (
        _truncated_header,
        "model.safetensors in {model} is truncated (100 bytes, its header alone needs "
        "{header_end}); re-download or re-create the checkpoint",
    ),
    "empty safetensors": (
        _empty_safetensors,
        "model.safetensors in {model} is damaged (0 bytes, too short for a safetensors "
        "file); re-download or re-create the checkpoint",
    ),
    "safetensors header not JSON": (
        _garbage_header,
        "model.safetensors in {model} is damaged (its header is not valid JSON); "
        "re-download or re-create the checkpoint",
    ),
}


def _expected(template: str, model: Path, tiny_olmoe: Path) -> str:
    full = (tiny_olmoe / "model.safetensors").stat().st_size
    header_end = 8 + int.from_bytes((tiny_olmoe / "model.safetensors").read_bytes()[:8], "little")
    return template.format(
        model=model,
        parent=model.parent,
        size=full // 2,
        full=full,
        header_end=header_end,
    )


@pytest.fixture(params=sorted(CASES), ids=lambda case: case.replace(" ", "-"))
def bad_source(
    request: pytest.FixtureRequest, copy_of_tiny: Path, tiny_olmoe: Path
) -> tuple[str, str]:
    damage, template = CASES[request.param]
    name = damage(copy_of_tiny)
    return name, _expected(template, copy_of_tiny, tiny_olmoe)


@pytest.mark.parametrize("use_mlx", [True, False], ids=["default", "use_mlx-false"])
def test_bad_source_is_one_sentence_and_load_is_false(
    bad_source: tuple[str, str], use_mlx: bool, loader_log: pytest.LogCaptureFixture
) -> None:
    name, sentence = bad_source
    model = OLMoEModel(OLMoEConfig(model_name=name, use_mlx=use_mlx))
    assert model.load() is False
    assert model.is_loaded is False and model.model is None
    assert model.load_error == sentence
    errors = [
        r.getMessage()
        for r in loader_log.records
        if r.levelno >= logging.ERROR and r.name.startswith("athena")
    ]
    assert errors == [sentence]
    assert "\n" not in sentence and "Traceback" not in loader_log.text
    # A bad folder is reported before any backend is tried: no fallback warning.
    assert not [
        r
        for r in loader_log.records
        if r.levelno == logging.WARNING and r.name.startswith("athena")
    ]


@pytest.mark.parametrize("case", sorted(JSON_CASES), ids=lambda case: case.replace(" ", "-"))
def test_inspect_of_a_bad_file_is_one_sentence_without_traceback(
    case: str, copy_of_tiny: Path, tiny_olmoe: Path
) -> None:
    """The real entry point in a child: `athena inspect` exits 1 with one line on stderr."""
    damage, template = JSON_CASES[case]
    name = damage(copy_of_tiny)
    result = subprocess.run(
        [sys.executable, "-m", "athena.cli", "inspect", name],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr == f"athena inspect: {_expected(template, copy_of_tiny, tiny_olmoe)}\n"


def test_bad_source_in_the_cli_exits_1_without_traceback(
    bad_source: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    name, sentence = bad_source
    for command in (["generate", "--model", name, "Hello"], ["encode", "--model", name, "x"]):
        assert main(command) == 1
        captured = capsys.readouterr()
        assert captured.err == f"athena {command[0]}: {sentence}\n"
        assert captured.out == ""


@pytest.mark.parametrize("use_mlx", [True, False], ids=["default", "use_mlx-false"])
def test_weights_that_do_not_fit_the_config_are_one_sentence_before_any_backend(
    copy_of_tiny: Path, use_mlx: bool, loader_log: pytest.LogCaptureFixture
) -> None:
    """The preflight reads the layer count from the safetensors header: no backend is tried
    (before issue 16, mlx-lm failed with "Missing N parameters" and transformers was tried)."""
    config = json.loads((copy_of_tiny / "config.json").read_text())
    config["num_hidden_layers"] = 3  # the file has 2 layers
    (copy_of_tiny / "config.json").write_text(json.dumps(config))
    model = OLMoEModel(OLMoEConfig(model_name=str(copy_of_tiny), use_mlx=use_mlx))
    assert model.load() is False
    assert model.load_error == (
        f"config.json in {copy_of_tiny} says num_hidden_layers is 3 but the weights have 2 "
        "layers; the config does not belong to these weights (fix config.json or re-create the "
        "checkpoint)"
    )
    athena_records = [r for r in loader_log.records if r.name.startswith("athena")]
    assert [r.getMessage() for r in athena_records if r.levelno >= logging.WARNING] == [
        model.load_error
    ]
    assert "Traceback" not in loader_log.text


def test_cli_missing_folder_subprocess_has_no_traceback(tmp_path: Path) -> None:
    """The real entry point, in a fresh process: exit 1, one line on stderr."""
    missing = tmp_path / "nothing-here"
    result = subprocess.run(
        [sys.executable, "-m", "athena.cli", "generate", "--model", str(missing), "Hello"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"athena generate: model folder not found: {missing} (check the path; athena does not "
        "look up a path on the Hugging Face hub)\n"
    )
