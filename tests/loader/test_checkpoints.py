"""athena.checkpoints: deterministic, well-formed OLMoE folders (numpy + tokenizers only)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from athena.checkpoints import (
    FILES,
    SIZES,
    VOCAB_SIZE,
    bpe_merges,
    count_parameters,
    write_tiny_olmoe,
)
from athena.checkpoints.weights import to_bfloat16_bytes


def _header(path: Path) -> dict:
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))


def test_tiny_folder_has_config_weights_and_tokenizer(tiny_olmoe: Path) -> None:
    names = {p.name for p in tiny_olmoe.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((tiny_olmoe / "config.json").read_text())
    assert config["model_type"] == "olmoe"
    assert config["tie_word_embeddings"] is False
    assert config["vocab_size"] == VOCAB_SIZE
    for key, value in SIZES["tiny"].items():
        assert config[key] == value


def test_weights_are_per_expert_in_hf_naming_and_count_matches(tiny_olmoe: Path) -> None:
    header = _header(tiny_olmoe / "model.safetensors")
    header.pop("__metadata__")
    assert "model.layers.0.mlp.experts.7.down_proj.weight" in header
    assert "model.layers.1.mlp.gate.weight" in header
    assert "lm_head.weight" in header
    total = sum(int(np.prod(t["shape"])) for t in header.values())
    assert total == count_parameters("tiny")
    assert {t["dtype"] for t in header.values()} == {"F32"}


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path, tiny_olmoe: Path) -> None:
    again = write_tiny_olmoe(tmp_path / "again")
    other = write_tiny_olmoe(tmp_path / "other", seed=1)
    original = (tiny_olmoe / "model.safetensors").read_bytes()
    assert (again / "model.safetensors").read_bytes() == original
    assert (other / "model.safetensors").read_bytes() != original
    assert (again / "tokenizer.json").read_bytes() == (tiny_olmoe / "tokenizer.json").read_bytes()


def test_the_bytes_do_not_depend_on_the_process(tmp_path: Path, tiny_olmoe: Path) -> None:
    """Another process with another hash seed writes the same files (the merges are computed
    with fixed tie-breaking, not from dict or set order)."""
    import os
    import subprocess
    import sys

    script = "import sys; from athena.checkpoints import write_tiny_olmoe as w; w(sys.argv[1])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "other")], env=env, check=True)
    for name in FILES:
        assert (tmp_path / "other" / name).read_bytes() == (tiny_olmoe / name).read_bytes(), name


def test_presets_keep_their_sizes() -> None:
    """The 62 merged tokens cost 2 x hidden parameters each: tiny grew by 3.0% (264,000 before
    the merges), small by 0.8% (3,812,608), medium by 0.04% (328,102,912)."""
    assert count_parameters("tiny") == 271_936
    assert count_parameters("small") == 3_844_352
    assert count_parameters("medium") == 328_229_888


def test_presets_grow_from_tiny_to_medium() -> None:
    tiny, small, medium = (count_parameters(s) for s in ("tiny", "small", "medium"))
    assert 100_000 < tiny < 1_000_000
    assert 1_000_000 < small < 10_000_000
    assert 100_000_000 < medium < 1_000_000_000


def test_tokenizer_round_trips_any_text(tiny_olmoe: Path) -> None:
    tokenizer = Tokenizer.from_file(str(tiny_olmoe / "tokenizer.json"))
    text = "Hello, Wörld! 日本 <|endoftext|>"
    ids = tokenizer.encode(text).ids
    assert max(ids) < VOCAB_SIZE
    assert ids[-1] == 0  # the eos special token is one token
    assert tokenizer.decode(ids, skip_special_tokens=False) == text


def test_tokenizer_is_a_byte_level_bpe_with_space_led_words(tiny_olmoe: Path) -> None:
    """Shaped like GPT-NeoX/OLMo's: ByteLevel pre-tokenizer and decoder, BPE with merges, the
    specials first, then the 256 bytes, then the merged tokens."""
    spec = json.loads((tiny_olmoe / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE"
    assert spec["pre_tokenizer"]["type"] == spec["decoder"]["type"] == "ByteLevel"
    assert len(spec["model"]["merges"]) == len(bpe_merges()) == 62
    tokenizer = Tokenizer.from_file(str(tiny_olmoe / "tokenizer.json"))
    assert tokenizer.get_vocab_size() == VOCAB_SIZE == 320
    assert [tokenizer.id_to_token(i) for i in (0, 1, 2, 2 + 32, 257)] == [
        "<|endoftext|>",
        "<|padding|>",
        "Ā",  # byte 0
        "Ġ",  # byte 32, the space
        "ÿ",  # byte 255
    ]
    encoding = tokenizer.encode("The memory of the experts")
    assert encoding.tokens == ["The", "Ġmemory", "Ġof", "Ġthe", "Ġexperts"]
    assert tokenizer.encode("🙂").tokens == ["ð", "Ł", "Ļ", "Ĥ"]  # rare: split into bytes


def test_bfloat16_checkpoint_halves_the_weights(tmp_path: Path, tiny_olmoe: Path) -> None:
    bf16 = write_tiny_olmoe(tmp_path / "bf16", dtype="bfloat16")
    header = _header(bf16 / "model.safetensors")
    header.pop("__metadata__")
    assert {t["dtype"] for t in header.values()} == {"BF16"}
    assert json.loads((bf16 / "config.json").read_text())["dtype"] == "bfloat16"
    size32 = (tiny_olmoe / "model.safetensors").stat().st_size
    assert (bf16 / "model.safetensors").stat().st_size < 0.55 * size32


def test_bfloat16_rounds_to_nearest_even() -> None:
    values = np.array([1.0, -2.5, 1.00390625, 1.01171875, 3.0e38], dtype=np.float32)
    halves = np.frombuffer(to_bfloat16_bytes(values), dtype="<u2").astype(np.uint32)
    back = (halves << 16).view(np.float32)
    # 1 + 2^-8 is a tie and rounds to the even 1.0; 1 + 3*2^-8 rounds up to 1 + 2^-6.
    assert back.tolist()[:4] == [1.0, -2.5, 1.0, 1.015625]
    assert abs(back[4] / values[4] - 1) < 2**-8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": "huge"}, "size 'huge' is not a preset; use one of tiny, small, medium"),
        ({"dtype": "int8"}, "dtype 'int8' is not supported; use one of float32"),
    ],
)
def test_bad_arguments_name_the_value(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_tiny_olmoe(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(ValueError, match="exists and is not a folder"):
        write_tiny_olmoe(target)


def test_cli_tiny_model_writes_the_same_checkpoint(
    tmp_path: Path, tiny_olmoe: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from athena.cli import main

    assert main(["tiny-model", str(tmp_path / "cli")]) == 0
    assert "271,936 parameters" in capsys.readouterr().out
    written = (tmp_path / "cli" / "model.safetensors").read_bytes()
    assert written == (tiny_olmoe / "model.safetensors").read_bytes()


def test_cli_tiny_model_bad_size_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from athena.cli import main

    assert main(["tiny-model", str(tmp_path / "x"), "--size", "huge"]) == 1
    err = capsys.readouterr().err
    assert err == "athena tiny-model: size 'huge' is not a preset; use one of tiny, small, medium\n"
