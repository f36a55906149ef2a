"""`athena doctor --model MODEL` (issue 16): the preflight's facts as doctor checks. The
machine's memory comes from the Host seam (a simulated Mac where the name says so)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from athena.checkpoints import write_sparse_olmoe, write_tiny_olmoe
from athena.doctor.report import Check, Report
from athena.doctor.sections import model_checks
from athena.host import Host, Metal

GIB = 1024**3


def simulated_mac(memory_gib: int, working_set_gib: int) -> Host:
    return Host(
        system="Darwin",
        machine="arm64",
        os_version="15.3.1",
        total_memory=memory_gib * GIB,
        metal=Metal(True, {"max_recommended_working_set_size": working_set_gib * GIB}),
    )


def linux(memory_gib: int) -> Host:
    return Host(system="Linux", machine="x86_64", os_version="6.1", total_memory=memory_gib * GIB)


def checks_for(model: Path | str, host: Host) -> dict[str, Check]:
    report = Report(athena_version="0", host={}, python={}, project={})
    model_checks(report, host, str(model))
    return {check.id: check for check in report.checks}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_olmoe(tmp_path_factory.mktemp("doctor-model") / "tiny")


def test_a_sound_tiny_folder_passes_every_model_check(tiny: Path) -> None:
    checks = checks_for(tiny, linux(24))
    assert {"model.folder", "model.config", "model.tokenizer", "model.load"} <= set(checks)
    for check_id in ("model.folder", "model.config", "model.tokenizer", "model.load"):
        check = checks[check_id]
        assert check.status == "pass" and check.required, (check_id, check.detail)
    assert checks["model.memory.q4"].status == "pass"


def test_weights_only_folder_fails_the_tokenizer_check(tiny: Path, tmp_path: Path) -> None:
    folder = Path(shutil.copytree(tiny, tmp_path / "weights-only"))
    (folder / "tokenizer.json").unlink()
    check = checks_for(folder, linux(24))["model.tokenizer"]
    assert check.status == "fail" and check.required
    assert check.detail.startswith(f"{folder} has no tokenizer")
    assert check.hint


def test_real_shape_fails_on_24_gib_linux_and_is_tight_on_a_simulated_32_gib_mac(
    tmp_path: Path,
) -> None:
    folder = write_sparse_olmoe(tmp_path / "olmoe-1b-7b")
    refused = checks_for(folder, linux(24))["model.load"]
    assert refused.status == "fail"
    assert "quantize_bits=4" in refused.hint
    # On Metal float32 stays float32 (27 GiB): above the 21 GiB working set, within RAM.
    tight = checks_for(folder, simulated_mac(32, 21))["model.load"]
    assert tight.status == "warn"
    assert checks_for(folder, simulated_mac(64, 48))["model.load"].status == "pass"


def test_missing_folder_is_one_failed_check(tmp_path: Path) -> None:
    checks = checks_for(tmp_path / "nothing", linux(24))
    assert list(checks) == ["model.folder"]
    assert checks["model.folder"].status == "fail"


@pytest.mark.slow
def test_doctor_model_option_adds_the_section_to_the_json(tiny: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "athena.cli",
            "doctor",
            "--no-audit",
            "--json",
            "--model",
            str(tiny),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(result.stdout)
    model = [check for check in report["checks"] if check["section"] == "model"]
    assert {check["id"] for check in model} >= {"model.folder", "model.load"}
    assert all(check["status"] in ("pass", "info") for check in model), model
