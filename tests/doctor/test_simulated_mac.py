"""The Mac report, simulated through the one seam (athena.host.Host): platform, macOS
version, Rosetta, sysctl and Metal are made up; the packages, imports and MLX checks are real
(this venv's Python, or the base interpreter that has no mlx)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from athena.doctor.checks import run_doctor
from athena.host import Host, Metal

from .conftest import require_mlx, validate

GIB = 1024**3
M2_MAX = Metal(
    available=True,
    device_info={
        "device_name": "Apple M2 Max",
        "architecture": "applegpu_g14s",
        "memory_size": 32 * GIB,
        "max_recommended_working_set_size": 22_906_503_168,
    },
)


def mac(**changes: object) -> Host:
    fields: dict[str, object] = {
        "system": "Darwin",
        "machine": "arm64",
        "os_version": "15.3.1",
        "total_memory": 32 * GIB,
        "rosetta": False,
        "sysctl": {"iogpu.wired_limit_mb": "0", "sysctl.proc_translated": "0"},
        "metal": M2_MAX,
    }
    fields.update(changes)
    return Host(**fields)  # type: ignore[arg-type]


@pytest.mark.mlx
@pytest.mark.linux("a Linux venv has mlx-cpu, not the mlx-metal the simulated Mac requires")
def test_simulated_mac_report_with_working_mlx() -> None:
    """Every required check passes except mlx-metal, which a Linux venv cannot have."""
    require_mlx()
    report = run_doctor(host=mac(), audit=False)
    checks = {c.id: c for c in report.checks}
    assert report.host["target"] == "darwin-arm64"
    assert checks["system.os"].status == "pass" and checks["system.os"].detail == "macOS 15.3.1"
    assert checks["system.rosetta"].status == "pass" and checks["system.rosetta"].required
    assert checks["mlx.metal"].status == "pass" and "Apple M2 Max" in checks["mlx.metal"].detail
    assert checks["memory.working_set"].detail.startswith("21.3 GiB")
    assert "supported (macOS 15+)" in checks["memory.wired_limit"].detail
    assert "iogpu.wired_limit_mb = 0" in checks["memory.wired_limit"].detail
    for check_id in ("imports.mlx", "imports.mlx_lm_load_generate", "mlx.lazy", "mlx.quantize"):
        assert checks[check_id].status == "pass" and checks[check_id].required
    # Real mlx on Linux runs on the CPU although the simulated Mac has Metal: a warning.
    assert checks["mlx.default_device"].status == "warn"
    assert [c.id for c in report.failed_required] == ["packages.mlx-metal"]
    assert report.exit_code == 1
    text = report.render()
    assert "darwin-arm64 15.3.1" in text and "FAILED: packages.mlx-metal" in text


def test_simulated_mac_without_mlx_fails(base_python: str, tmp_path: Path) -> None:
    """On a Mac mlx is required: the base interpreter (no mlx) fails the imports for real."""
    report = run_doctor(host=mac(), python=base_python, audit=False)
    checks = {c.id: c for c in report.checks}
    failed = {c.id for c in report.failed_required}
    assert {"imports.mlx", "imports.mlx_core", "imports.mlx_lm", "packages.mlx"} <= failed
    assert "No module named 'mlx'" in checks["imports.mlx"].detail
    assert "uv sync --locked" in (checks["imports.mlx"].hint or "")
    assert checks["mlx.lazy"].status == "fail"
    assert "not run" in checks["mlx.lazy"].detail
    assert report.exit_code == 1
    assert "FAILED:" in report.render()
    assert all(c.hint for c in report.checks if c.status in ("fail", "warn"))
    validate(json.loads(report.to_json()), tmp_path)


@pytest.mark.linux("off a Mac the doctor skips mlx; on a Mac it requires it")
def test_linux_without_mlx_is_skipped_not_failed(base_python: str) -> None:
    """The same interpreter on the real Linux host: mlx is skipped with a reason."""
    report = run_doctor(python=base_python, audit=False)
    checks = {c.id: c for c in report.checks}
    assert checks["imports.mlx"].status == "skip" and "mlx-cpu" in checks["imports.mlx"].detail
    assert report.exit_code == 0, [c.id for c in report.failed_required]


def test_simulated_old_macos_fails(base_python: str) -> None:
    report = run_doctor(host=mac(os_version="13.6.1"), python=base_python, audit=False)
    check = next(c for c in report.checks if c.id == "system.os")
    assert check.status == "fail" and check.required
    assert "macOS 14" in (check.hint or "")
    wired = next(c for c in report.checks if c.id == "memory.wired_limit")
    assert "not supported before macOS 15" in wired.detail


def test_simulated_rosetta_fails(base_python: str) -> None:
    host = mac(machine="x86_64", rosetta=True, metal=None)
    report = run_doctor(host=host, python=base_python, audit=False)
    check = next(c for c in report.checks if c.id == "system.rosetta")
    assert check.status == "fail" and check.required
    assert "arm64" in (check.hint or "")
    # Still an Apple Silicon Mac: mlx is required, and fails under this x86_64 Python.
    assert next(c for c in report.checks if c.id == "imports.mlx").required


def test_simulated_intel_mac_fails_and_skips_mlx(base_python: str) -> None:
    host = mac(machine="x86_64", rosetta=False, metal=None)
    report = run_doctor(host=host, python=base_python, audit=False)
    checks = {c.id: c for c in report.checks}
    assert checks["system.machine"].status == "fail" and checks["system.machine"].required
    assert checks["imports.mlx"].status == "skip"
    assert "Apple Silicon" in checks["imports.mlx"].detail


def test_simulated_mac_vm_without_metal_warns(base_python: str) -> None:
    """GitHub's hosted macOS runners: mlx works, Metal does not; a warning, not a failure."""
    report = run_doctor(host=mac(metal=Metal(False, {})), python=base_python, audit=False)
    check = next(c for c in report.checks if c.id == "mlx.metal")
    assert check.status == "warn" and not check.required
    assert "VM" in (check.hint or "")
