"""`athena doctor`: the console script, its usage errors, and the --smoke generation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require_mlx

ATHENA = Path(sys.executable).parent / "athena"


def athena(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ATHENA), *args], capture_output=True, text=True, check=False, timeout=900, cwd=cwd
    )


def test_doctor_checks_another_interpreter(base_python: str, tmp_path: Path) -> None:
    result = athena("doctor", "--json", "--no-audit", "--python", base_python, cwd=tmp_path)
    report = json.loads(result.stdout)
    assert Path(report["python"]["executable"]).resolve() == Path(base_python).resolve()
    assert not any(c["id"].startswith("audit.") for c in report["checks"])
    assert result.returncode == report["exit_code"]


def test_doctor_bad_project_is_one_sentence(tmp_path: Path) -> None:
    result = athena("doctor", "--project", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"athena doctor: {tmp_path} has no uv.lock: pass the athena checkout with --project"
    )


@pytest.mark.mlx
@pytest.mark.slow
def test_smoke_loads_a_tiny_olmoe_and_generates(tmp_path: Path) -> None:
    require_mlx()
    result = athena("doctor", "--smoke", "--no-audit", "--json", cwd=tmp_path)
    report = json.loads(result.stdout)
    smoke = next(c for c in report["checks"] if c["id"] == "smoke.generate")
    assert smoke["status"] == "pass", smoke["detail"]
    assert smoke["required"] and smoke["data"]["backend"] == "mlx"
    devices = ("cpu", "gpu") if sys.platform == "darwin" else ("cpu",)  # mlx's, on Linux cpu
    assert smoke["data"]["device"] in devices
    assert isinstance(smoke["data"]["text"], str) and smoke["data"]["text"]
    assert result.returncode == 0, report["failed_required"]
