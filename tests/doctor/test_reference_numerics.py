"""Reference numerics (#12): the committed athena/doctor/reference/tiny.json is what
scripts/make_smoke_reference.py makes today, and `--smoke` compares real mlx (CPU build here)
and real transformers runs of the canonical tiny checkpoint with it."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from athena.doctor import numerics
from athena.doctor.numerics import smoke_checks
from athena.doctor.report import Report

from .conftest import ROOT, require_mlx

SCRIPT = ROOT / "scripts" / "make_smoke_reference.py"


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return numerics.load_reference()


@pytest.fixture(scope="module")
def script() -> Any:
    """scripts/make_smoke_reference.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("make_smoke_reference", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.torch
@pytest.mark.slow
def test_the_committed_reference_is_what_the_script_makes_today(
    script: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regenerates it; after a change to the tiny checkpoint this fails until the one command
    (numerics.REGENERATE) is run and its output committed."""
    pytest.importorskip("torch", reason="the torch group: uv sync --group torch")
    check = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=600
    )
    assert check.returncode == 0, check.stderr
    # The same script, in this process, on a stale copy: exit 1 and the command to run.
    stale = tmp_path / "stale.json"
    text = numerics.REFERENCE_PATH.read_text().replace('"greedy_tokens": 8', '"greedy_tokens": 9')
    stale.write_text(text)
    assert script.main(["--check", "--output", str(stale)]) == 1
    assert f"greedy_tokens changed): regenerate it with `{numerics.REGENERATE}`" in (
        capsys.readouterr().err
    )
    assert script.main(["--output", str(stale)]) == 0
    assert script.stale_fields(numerics.load_reference(), numerics.load_reference(stale)) == []


def test_stale_fields_allows_only_last_digit_noise(reference: dict[str, Any], script: Any) -> None:
    noisy = copy.deepcopy(reference)
    first = next(iter(noisy["logits"]))
    noisy["logits"][first][0] += 5e-6
    noisy["made_with"] = {"torch": "another build"}
    assert script.stale_fields(reference, noisy) == []
    noisy["logits"][first][0] += 5e-5
    noisy["prompt_ids"] = noisy["prompt_ids"][:-1]
    assert script.stale_fields(reference, noisy) == ["prompt_ids", "logits"]


def test_the_reference_is_for_todays_canonical_checkpoint(
    reference: dict[str, Any], script: Any, tmp_path: Path
) -> None:
    path = numerics.write_checkpoint(tmp_path)
    numerics.check_checkpoint(reference, path)  # raises when the bytes changed
    assert reference["checkpoint"] | {"sha256": None} == {**numerics.CHECKPOINT, "sha256": None}
    assert reference["prompt"] == numerics.PROMPT
    assert reference["regenerate"] == numerics.REGENERATE
    count = len(reference["prompt_ids"])
    assert [int(p) for p in reference["logits"]] == script.positions(count)
    assert 0 < len(reference["greedy_ids"]) <= reference["greedy_tokens"]
    (path / "tokenizer.json").write_text("{}")
    with pytest.raises(numerics.ReferenceError, match=r"tokenizer\.json differ") as error:
        numerics.check_checkpoint(reference, path)
    assert numerics.REGENERATE in str(error.value)


def measured_like(reference: dict[str, Any]) -> dict[str, Any]:
    """What a run that computes exactly the reference's numbers would measure."""
    count = len(reference["prompt_ids"])
    rows = [[0.0] * len(next(iter(reference["logits"].values())))] * count
    for position, row in reference["logits"].items():
        rows[int(position)] = list(row)
    return {
        "prompt_ids": list(reference["prompt_ids"]),
        "logits": rows,
        "greedy_ids": list(reference["greedy_ids"]),
    }


def test_compare_fails_beyond_the_tolerance_or_on_other_greedy_ids(
    reference: dict[str, Any],
) -> None:
    exact = measured_like(reference)
    assert numerics.compare(reference, exact) == {"max_difference": 0.0, "problems": []}

    close = copy.deepcopy(exact)
    last = int(list(reference["logits"])[-1])
    close["logits"][last][3] += 5e-5
    result = numerics.compare(reference, close)
    assert result["problems"] == [] and result["max_difference"] == pytest.approx(5e-5, rel=1e-3)

    far = copy.deepcopy(exact)
    far["logits"][0][7] -= 3e-4
    result = numerics.compare(reference, far)
    assert result["max_difference"] == pytest.approx(3e-4, rel=1e-3)
    assert result["problems"] == ["max |logit - reference| 3.00e-04 > 0.0001"]

    other = copy.deepcopy(exact)
    other["greedy_ids"][-1] += 1
    assert "greedy ids" in numerics.compare(reference, other)["problems"][0]

    retokenized = copy.deepcopy(exact)
    retokenized["prompt_ids"] = retokenized["prompt_ids"][1:]
    result = numerics.compare(reference, retokenized)
    assert result["max_difference"] is None and "tokenizes" in result["problems"][0]


@pytest.mark.mlx
@pytest.mark.slow
def test_smoke_matches_the_reference_on_mlx_and_transformers() -> None:
    require_mlx()
    report = Report("0", {}, {}, {})
    smoke_checks(report, generate=False)
    checks = {c.id: c for c in report.checks}
    mlx = checks["smoke.reference_mlx"]
    assert mlx.status == "pass" and mlx.required, mlx.detail
    assert 0 <= mlx.data["max_difference"] <= 1e-4
    assert "greedy ids match" in mlx.detail
    transformers = checks["smoke.reference_transformers"]
    try:
        import torch  # noqa: F401
    except ImportError:
        assert transformers.status == "skip" and "torch is not installed" in transformers.detail
    else:
        assert transformers.status == "pass", transformers.detail
        assert transformers.data["max_difference"] <= 1e-4


@pytest.mark.mlx
@pytest.mark.slow
def test_smoke_fails_with_the_hint_when_the_numbers_differ(
    reference: dict[str, Any], script: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference 1e-3 away (what a broken kernel or another device looks like) fails."""
    require_mlx()
    shifted = copy.deepcopy(reference)
    position = next(iter(shifted["logits"]))
    shifted["logits"][position] = [x + 1e-3 for x in shifted["logits"][position]]
    path = tmp_path / "tiny.json"
    path.write_text(script.to_json(shifted))
    monkeypatch.setattr(numerics, "REFERENCE_PATH", path)
    report = Report("0", {}, {}, {})
    smoke_checks(report, generate=False)
    mlx = report.get("smoke.reference_mlx")
    assert mlx is not None and mlx.status == "fail" and mlx.required
    assert mlx.detail.startswith("max |logit - reference| 1.00e-03 > 0.0001")
    assert "wrong mlx build" in (mlx.hint or "") and "Metal" in (mlx.hint or "")
    assert report.exit_code == 1
