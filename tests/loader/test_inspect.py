"""`athena inspect MODEL [--json]` (issue 16): what the preflight knows, for a person; exit 1
when the folder cannot be loaded; no backend imported and no weight read (only the
safetensors header): what keeps it well under a second, checked without a clock."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from athena.checkpoints import VOCAB_SIZE, count_parameters, write_sparse_olmoe
from athena.cli import main
from athena.preflight import GiB, MiB

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("weight_reads", HERE / "weight_reads.py")
assert _spec is not None and _spec.loader is not None
weight_reads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(weight_reads)

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from weight_reads import watching
import os
budget = json.loads(sys.argv[2])
if budget is not None:  # a machine of that much RAM: this child patches its own os.sysconf
    real_sysconf = os.sysconf
    os.sysconf = lambda name: (
        budget // real_sysconf("SC_PAGE_SIZE") if name == "SC_PHYS_PAGES" else real_sysconf(name)
    )
with watching() as reads:
    from athena.cli import main
    code = main(sys.argv[3:])
heavy = sorted(m for m in ("mlx", "mlx_lm", "transformers", "torch", "numpy") if m in sys.modules)
print("CHILD " + json.dumps({"code": code, "heavy": heavy, "read": reads.furthest}))
"""


def run_child(*argv: str, budget: int | None = None) -> tuple[dict, str, str]:
    """`athena ARGV` in a fresh interpreter; (its report, stdout before it, stderr)."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(HERE), json.dumps(budget), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr  # the child itself exited normally
    out, _, tail = result.stdout.rpartition("CHILD ")
    return json.loads(tail), out, result.stderr


def test_inspect_tiny_as_json_imports_no_backend_and_reads_only_the_header(
    tiny_olmoe: Path,
) -> None:
    report, out, err = run_child("inspect", str(tiny_olmoe), "--json")
    assert report["code"] == 0 and err == ""
    assert report["heavy"] == []  # no mlx, mlx_lm, transformers, torch, not even numpy
    weights = tiny_olmoe / "model.safetensors"
    assert report["read"] == {str(weights): weight_reads.header_end(weights)}  # no weight
    data = json.loads(out)
    assert data["schema"] == "athena-inspect/1" and data["ok"] is True
    assert data["parameters"] == count_parameters("tiny")
    assert data["stored_dtypes"] == {"float32": 4 * count_parameters("tiny")}
    assert data["tokenizer"] == {
        "kind": "tokenizer.json",
        "vocab": VOCAB_SIZE,
        "max_id": VOCAB_SIZE - 1,
    }
    assert data["config_agrees"] is True
    assert data["memory"]["physical"] > 0
    options = [row["option"] for row in data["estimates"]]
    assert options == ["dtype='float32'", "dtype='bfloat16'", "quantize_bits=8", "quantize_bits=4"]
    assert {row["status"] for row in data["estimates"]} == {"fits"}
    assert data["this_load"]["backend"] == data["backend"]


def test_inspect_text_shows_the_table(tiny_olmoe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_olmoe)]) == 0
    out = capsys.readouterr().out
    assert f"({count_parameters('tiny'):,})" in out
    assert f"tokenizer    tokenizer.json, {VOCAB_SIZE} ids (max id {VOCAB_SIZE - 1})" in out
    assert f"vocabulary {VOCAB_SIZE}: agrees with the weights" in out
    assert "memory of a load at 4096 tokens of context (max_position_embeddings" in out
    assert "(this load)" in out


@pytest.mark.linux("the child sets its RAM through os.sysconf, which macOS's probe does not read")
def test_inspect_real_shape_on_24_gib_exits_1_with_the_table(tmp_path: Path) -> None:
    folder = write_sparse_olmoe(tmp_path / "olmoe-1b-7b")
    report, out, err = run_child("inspect", str(folder), budget=24 * GiB)
    assert report["code"] == 1 and report["heavy"] == []
    weights = folder / "model.safetensors"
    assert report["read"] == {str(weights): weight_reads.header_end(weights)}  # of 27.7 GB
    assert "parameters   6.92 B (6,919,161,856)" in out
    assert "does not fit (this load)" in out
    q4 = next(line for line in out.splitlines() if line.strip().startswith("quantize_bits=4"))
    assert q4.rstrip().endswith("fits") or "does not fit" not in q4
    assert err.startswith(f"athena inspect: {folder} needs about ")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_inspect_weights_only_folder_exits_1(
    copy_of_tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy_of_tiny / "tokenizer.json").unlink()
    assert main(["inspect", str(copy_of_tiny)]) == 1
    captured = capsys.readouterr()
    assert "tokenizer    none" in captured.out
    assert captured.err == (
        f"athena inspect: {copy_of_tiny} has no tokenizer (none of tokenizer.json, vocab.json + "
        "merges.txt, tokenizer.model); the download is incomplete: re-download the folder or "
        "copy the tokenizer files next to config.json\n"
    )
    assert main(["inspect", str(copy_of_tiny), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and data["problems"][0].startswith(str(copy_of_tiny))


def test_inspect_missing_folder_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(tmp_path / "nothing")]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"athena inspect: model folder not found: {tmp_path / 'nothing'} (check the path; "
        "athena does not look up a path on the Hugging Face hub)\n"
    )


def test_inspect_a_hub_id_from_the_local_cache_offline(
    tiny_olmoe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """huggingface_hub's layout: models--org--name/refs/main names the snapshot folder."""
    cache = tmp_path / "hub"
    repo = cache / "models--allenai--OLMoE-tiny"
    shutil.copytree(tiny_olmoe, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["inspect", "allenai/OLMoE-tiny", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(repo / "snapshots" / "0123abcd")
    assert data["parameters"] == count_parameters("tiny")
    assert main(["inspect", "allenai/not-cached"]) == 1
    assert capsys.readouterr().err == (
        "athena inspect: 'allenai/not-cached' is not a local folder and not in the Hugging Face "
        f"cache at {cache}; athena inspects local files only (download it once, or pass a local "
        "model folder)\n"
    )


@pytest.mark.mlx
def test_generate_refuses_an_oversized_load_unless_allow_oversize(
    tiny_olmoe: Path,
    mlx_installed: None,
    machine_memory: Callable[[int], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine_memory(100 * MiB)
    argv = ["generate", "--model", str(tiny_olmoe), "--backend", "mlx", "--max-tokens", "2"]
    assert main([*argv, "Hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"athena generate: {tiny_olmoe} needs about ")
    assert "more than this machine's 100 MiB of memory" in err
    assert main([*argv, "--allow-oversize", "Hi"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() != ""
    assert "loading anyway (allow_oversize=True)" in captured.err
