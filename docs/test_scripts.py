"""The measurement scripts of docs/scripts/ still run: each one in --quick mode, into a tmp dir.

The quick runs are in-process (mlx_lm is imported once for the whole docs session); one
subprocess per script checks that it starts as a script (`--help`).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
GENERATED = Path(__file__).parent / "generated"
NAMES = {
    "quantization_table": "quantization",
    "batch_size_curve": "batch_size",
    "grad_checkpoint": "grad_checkpoint",
}


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_script_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def quick_run(name: str, out: Path) -> dict:
    """Run `name --quick --out out`; return its JSON, after checking the common outputs."""
    committed = {p: p.read_bytes() for p in GENERATED.glob("*")} if GENERATED.exists() else {}
    assert load_script(name).main(["--quick", "--out", str(out)]) == 0
    output = NAMES[name]
    table = (out / f"{output}.md").read_text()
    assert table.count("\n|") >= 2, f"{output}.md has no table:\n{table}"
    assert f"Regenerate: `python docs/scripts/{name}.py --quick`." in table
    data = json.loads((out / f"{output}.json").read_text())
    assert data["machine"]["packages"]["mlx"]
    # A quick run into another folder leaves the committed numbers alone.
    assert {p: p.read_bytes() for p in GENERATED.glob("*")} == committed
    return data


@pytest.mark.parametrize("name", sorted(NAMES))
def test_each_script_starts_as_a_script(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "--quick" in done.stdout


def test_quantization_table_quick(tmp_path: Path) -> None:
    data = quick_run("quantization_table", tmp_path)
    rows = {row["variant"]: row for row in data["results"]["tiny"]}
    assert list(rows) == ["fp32", "8-bit", "4-bit", "4-bit, router 8-bit", "mixed_4_6"]
    assert rows["fp32"]["top1_agreement"] == 1.0 and rows["fp32"]["max_abs_logit_error"] == 0
    # Quantization shrinks the files: 8-bit ~9/32 of float32, 4-bit ~5/32.
    assert rows["4-bit"]["disk_bytes"] < rows["8-bit"]["disk_bytes"] < rows["fp32"]["disk_bytes"]
    # ...and costs agreement: 8 bits stay closer to float32 than 4 bits.
    assert rows["8-bit"]["mean_kl_nats"] < rows["4-bit"]["mean_kl_nats"]
    assert all(row["decode_tokens_per_s"] > 0 for row in rows.values())


def test_batch_size_curve_quick(tmp_path: Path) -> None:
    data = quick_run("batch_size_curve", tmp_path)
    assert (tmp_path / "batch_size.png").read_bytes()[:4] == b"\x89PNG"
    generation = data["generation"]
    assert [r["batch_size"] for r in generation] == data["settings"]["generation_batch_sizes"]
    # Every prompt of a batch was decoded: batch N generates N times the tokens of batch 1.
    assert generation[-1]["generation_tokens"] == (
        generation[-1]["batch_size"] * generation[0]["generation_tokens"]
    )
    assert [r["batch_size"] for r in data["lora"]] == data["settings"]["lora_batch_sizes"]
    assert all(r["peak_memory_bytes"] > 0 and r["tokens_per_s"] > 0 for r in data["lora"])


def test_grad_checkpoint_quick(tmp_path: Path) -> None:
    data = quick_run("grad_checkpoint", tmp_path)
    off, on = data["results"]
    assert (off["grad_checkpoint"], on["grad_checkpoint"]) == (False, True)
    # The same model, data and seed: checkpointing changes memory and time, not the loss.
    assert on["train_loss"] == pytest.approx(off["train_loss"], rel=1e-4)
    assert on["peak_memory_bytes"] > 0 and off["peak_memory_bytes"] > 0
