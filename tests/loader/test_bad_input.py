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


CASES: dict[str, tuple[Damage, str]] = {
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
    assert model._is_loaded is False and model.model is None
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
