"""Bad values: OLMoEConfig fields, CLI options and the inputs to a loaded model, one sentence each.

The error names the field (or input), the value and what is allowed; the CLI exits 1 with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from athena.cli import main
from athena.models.olmoe import OLMoEConfig, OLMoEModel

# -- configuration values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("model_name", "", "a hub id or a local folder"),
        ("use_mlx", "yes", "True or False"),
        ("allow_fallback", 1, "True or False"),
        ("mlx_model_path", 3, "None or a folder path"),
        ("lora_path", "  ", "None or a folder path"),
        ("action_head_path", 7, "None or a file path"),
        ("dtype", "fp8", "None or one of 'float32', 'float16', 'bfloat16'"),
        ("quantize_bits", 3, "None, 4 or 8"),
        ("quantize_bits", True, "None, 4 or 8"),
        ("quantize_group_size", 48, "32, 64 or 128"),
        ("max_tokens", 0, "an integer >= 1"),
        ("max_tokens", 2.5, "an integer >= 1"),
        ("temperature", -0.1, "a number >= 0 (0 is greedy)"),
        ("temperature", float("inf"), "a number >= 0 (0 is greedy)"),
        ("top_p", 0, "a number in (0, 1]"),
        ("seed", 1.5, "an integer from 0 to 2**63 - 1"),
        ("seed", -1, "an integer from 0 to 2**63 - 1"),
        ("seed", 2**70, "an integer from 0 to 2**63 - 1"),
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
    head = OLMoEConfig(action_head_path=tmp_path / "h.safetensors")  # type: ignore[arg-type]
    assert head.action_head_path == str(tmp_path / "h.safetensors")
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
    with pytest.raises(ValueError, match=r"^texts\[1\] is empty; pass at least one character$"):
        model.encode(["ok", ""])
    with pytest.raises(ValueError, match=r"^text is empty; pass at least one character$"):
        model.encode("")
    with pytest.raises(ValueError, match=r"^encode\(\) got an empty list"):
        model.encode([])
    with pytest.raises(ValueError, match=r"^generate\(max_tokens=0\) is not allowed"):
        model.generate("Hello", max_tokens=0)
    with pytest.raises(ValueError, match=r"^stream\(temperature=-1\) is not allowed"):
        list(model.stream("Hello", temperature=-1))
    prompt = len(model.tokenize("Hello"))
    with pytest.raises(ValueError) as raised:  # before any memory estimate of 10**15 tokens
        model.generate("Hello", max_tokens=10**15)
    assert str(raised.value) == (
        f"the prompt ({prompt} tokens) plus max_tokens={10**15} is {prompt + 10**15} tokens, "
        "beyond the model's context length (max_position_embeddings 4096); ask for at most "
        f"max_tokens={4096 - prompt}"
    )


def test_cli_empty_prompt_is_one_sentence(
    tiny_olmoe: Path, torch_installed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "--model", str(tiny_olmoe), "--backend", "transformers", ""]) == 1
    assert capsys.readouterr().err == (
        "athena generate: prompt is empty; pass at least one character\n"
    )
