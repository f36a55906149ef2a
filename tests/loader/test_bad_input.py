"""Bad input: one clear sentence, load() is False, the CLI exits 1 without a traceback."""

from __future__ import annotations

import json
import logging
import os
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


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("allenai/OLMoE-1B-7B-0924", "hub"),
        ("org/name.v2", "hub"),
        ("olmoe", "folder"),  # no owner: a folder, never a hub lookup
        ("./org/name", "folder"),
        ("../name", "folder"),
        ("~/models/olmoe", "folder"),
        ("/models/olmoe", "folder"),
        ("a/b/c", "folder"),
        ("org/config.json", "folder"),
        ("org/", "folder"),
        ("models/typo", "folder"),  # `models` is a local folder in this test
    ],
)
def test_a_path_is_told_from_a_hub_id(
    name: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from athena.backends.source import resolve_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert resolve_source(name).kind == kind


def test_missing_folder_under_a_local_folder_is_not_a_hub_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader_log: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # online: still no hub lookup
    model = OLMoEModel(OLMoEConfig(model_name="models/olmoe-typo"))
    assert model.load() is False
    assert model.load_error == (
        "model folder not found: models/olmoe-typo (check the path; athena does not look up "
        "a path on the Hugging Face hub)"
    )


def test_hub_id_offline_and_not_cached_is_one_sentence(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loader_log: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    model = OLMoEModel(OLMoEConfig())  # allenai/OLMoE-1B-7B-0924
    assert model.load() is False
    sentence = (
        "'allenai/OLMoE-1B-7B-0924' is not a local folder and HF_HUB_OFFLINE=1 forbids "
        "downloading it from the Hugging Face hub (it is not in the cache at "
        f"{tmp_path / 'empty-cache'}); pass a local model folder, or download it once with "
        "network access"
    )
    assert model.load_error == sentence
    assert [
        r.getMessage()
        for r in loader_log.records
        if r.levelno >= logging.ERROR and r.name.startswith("athena")
    ] == [sentence]
    assert main(["generate", "--model", "allenai/OLMoE-1B-7B-0924", "hi"]) == 1
    assert capsys.readouterr().err == f"athena generate: {sentence}\n"


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


# -- configuration values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("model_name", "", "a hub id or a local folder"),
        ("use_mlx", "yes", "True or False"),
        ("allow_fallback", 1, "True or False"),
        ("mlx_model_path", 3, "None or a folder path"),
        ("lora_path", "  ", "None or a folder path"),
        ("dtype", "fp8", "None or one of 'float32', 'float16', 'bfloat16'"),
        ("quantize_bits", 3, "None, 4 or 8"),
        ("quantize_bits", True, "None, 4 or 8"),
        ("quantize_group_size", 48, "32, 64 or 128"),
        ("max_tokens", 0, "an integer >= 1"),
        ("max_tokens", 2.5, "an integer >= 1"),
        ("temperature", -0.1, "a number >= 0 (0 is greedy)"),
        ("temperature", float("inf"), "a number >= 0 (0 is greedy)"),
        ("top_p", 0, "a number in (0, 1]"),
        ("seed", 1.5, "an integer"),
        ("num_memory_actions", 0, "an integer >= 1"),
        ("action_head_hidden", -4, "an integer >= 1"),
    ],
)
def test_config_value_error_names_field_value_and_allowed(
    field: str, value: object, allowed: str
) -> None:
    with pytest.raises(ValueError) as raised:
        OLMoEConfig(**{field: value})  # type: ignore[arg-type]
    assert str(raised.value) == f"OLMoEConfig.{field}={value!r} is not allowed; use {allowed}"


def test_config_accepts_paths_and_the_defaults(tmp_path: Path) -> None:
    config = OLMoEConfig(model_name=tmp_path, lora_path=tmp_path / "lora")  # type: ignore[arg-type]
    assert config.model_name == str(tmp_path) and config.lora_path == str(tmp_path / "lora")
    default = OLMoEConfig()
    assert default.model_name == "allenai/OLMoE-1B-7B-0924"
    assert (default.use_mlx, default.quantize_bits, default.temperature) == (True, None, 0.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--quantize-bits", "3"],
            "OLMoEConfig.quantize_bits=3 is not allowed; use None, 4 or 8",
        ),
        (
            ["--dtype", "fp8"],
            "OLMoEConfig.dtype='fp8' is not allowed; use None or one of 'float32', 'float16', "
            "'bfloat16'",
        ),
    ],
)
def test_cli_bad_option_values_are_one_sentence(
    tiny_olmoe: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--model", str(tiny_olmoe), *argv, "Hello"]) == 1
    assert capsys.readouterr().err == f"athena generate: {message}\n"


def test_cli_backend_mlx_without_mlx_simulated_is_one_sentence(
    tiny_olmoe: Path, no_mlx: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["encode", "--model", str(tiny_olmoe), "--backend", "mlx", "x"]) == 1
    assert capsys.readouterr().err == (
        "athena encode: --backend mlx needs mlx-lm, which is not installed (on a Mac: uv sync; "
        "on Linux: uv sync --group mlx-cpu)\n"
    )


# -- inputs to a loaded model -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_empty_and_wrong_inputs_are_clear_errors(
    backend: str, request: pytest.FixtureRequest
) -> None:
    model: OLMoEModel = request.getfixturevalue(f"{backend}_model")
    with pytest.raises(ValueError, match=r"^prompt is empty; pass at least one character$"):
        model.generate("")
    with pytest.raises(TypeError, match=r"^prompt must be a str, got int$"):
        model.generate(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^text is empty; pass at least one character$"):
        model.encode(["ok", ""])
    with pytest.raises(ValueError, match=r"^encode\(\) got an empty list"):
        model.encode([])
    with pytest.raises(ValueError, match=r"^OLMoEConfig.max_tokens=0 is not allowed"):
        model.generate("Hello", max_tokens=0)
    with pytest.raises(ValueError, match=r"^OLMoEConfig.temperature=-1 is not allowed"):
        list(model.stream("Hello", temperature=-1))


def test_cli_empty_prompt_is_one_sentence(
    tiny_olmoe: Path, torch_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--model", str(tiny_olmoe), "--backend", "transformers", ""]) == 1
    assert capsys.readouterr().err == (
        "athena generate: prompt is empty; pass at least one character\n"
    )


# -- the hub unreachable (HF_HUB_OFFLINE unset) -----------------------------------------------


@pytest.mark.mlx
@pytest.mark.slow
def test_unreachable_hub_is_one_sentence_and_no_second_attempt(
    tmp_path: Path, mlx_installed: None
) -> None:
    """mlx-lm's download fails; transformers would ask the same hub again (another ~50 s of
    retries), so load() stops there. The hub is a closed local port, never the network."""
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_HUB_CACHE": str(tmp_path / "empty-cache"),
    }
    env.pop("HF_HUB_OFFLINE", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "athena.cli",
            "generate",
            "--model",
            "allenai/OLMoE-1B-7B-0924",
            "x",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "athena generate: could not get 'allenai/OLMoE-1B-7B-0924' from the Hugging Face hub "
        "(LocalEntryNotFoundError: "
    ), last
    assert "Connection refused" in last  # errno differs: 111 on Linux, 61 on macOS
    assert last.endswith("); check the network and the id, or pass a local model folder")
    assert "falling back" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_download_failure_is_told_only_for_hub_ids() -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    from athena.backends import SourceError
    from athena.backends.source import hub_download_failed

    try:  # how transformers reports it: an OSError raised while handling the hub's error
        try:
            raise LocalEntryNotFoundError("Got: ConnectError")
        except LocalEntryNotFoundError:
            raise OSError("We couldn't connect to 'https://huggingface.co'") from None
    except OSError as error:
        wrapped: OSError = error
    told = hub_download_failed("allenai/OLMoE-1B-7B-0924", wrapped)
    assert isinstance(told, SourceError)
    assert str(told).startswith(
        "could not get 'allenai/OLMoE-1B-7B-0924' from the Hugging Face hub (OSError: We "
        "couldn't connect"
    )
    assert hub_download_failed("models/olmoe-typo.json", wrapped) is None  # a path, not a hub id
    assert (
        hub_download_failed("allenai/OLMoE-1B-7B-0924", ValueError("Missing 3 parameters")) is None
    )
