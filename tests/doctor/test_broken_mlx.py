"""A broken mlx install, for real: a package named mlx on PYTHONPATH that aborts the
interpreter or cannot load its library. The doctor reports the error text and survives."""

from __future__ import annotations

from pathlib import Path

import pytest

from athena.doctor.checks import run_doctor
from athena.doctor.probe import MLX_STEPS, run_probe

STEPS = tuple(step for step, *_ in MLX_STEPS)


def broken_mlx(tmp_path: Path, body: str) -> Path:
    """site/mlx/__init__.py with `body`, and its dist-info, so the doctor sees mlx installed."""
    site = tmp_path / "site"
    (site / "mlx").mkdir(parents=True)
    (site / "mlx" / "__init__.py").write_text(body)
    info = site / "mlx-0.32.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlx\nVersion: 0.32.4\n")
    return site


def test_an_mlx_that_aborts_the_interpreter_is_reported(
    tmp_path: Path, base_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No core file: the limit is set inside the crashing child before it aborts.
    site = broken_mlx(
        tmp_path,
        "import os, resource\nresource.setrlimit(resource.RLIMIT_CORE, (0, 0))\nos.abort()\n",
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    probe = run_probe(base_python, ("mlx",), expected_steps=STEPS)
    assert probe.returncode is not None and probe.returncode < 0
    assert probe.steps["import mlx"]["ok"] is False
    assert "SIGABRT in this step" in probe.steps["import mlx"]["error"]
    assert "not run" in probe.steps["mlx.quantize"]["error"]

    report = run_doctor(python=base_python, audit=False)  # the real Linux host
    checks = {c.id: c for c in report.checks}
    assert checks["imports.mlx"].status == "fail" and checks["imports.mlx"].required
    assert "SIGABRT" in checks["imports.mlx"].detail
    assert checks["imports.mlx"].hint
    assert report.exit_code == 1


def test_plain_mlx_on_linux_points_to_the_cpu_build(
    tmp_path: Path, base_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error plain `mlx` gives on Linux, and the hint to install the mlx-cpu group."""
    site = broken_mlx(
        tmp_path,
        'raise ImportError("libmlx.so: cannot open shared object file: No such file or '
        'directory")\n',
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    report = run_doctor(python=base_python, audit=False)
    check = next(c for c in report.checks if c.id == "imports.mlx")
    assert check.status == "fail" and "libmlx.so" in check.detail
    if report.host["system"] == "Linux":
        assert "--group mlx-cpu" in (check.hint or "")
    assert next(c for c in report.checks if c.id == "imports.mlx_lm").status == "fail"


def test_a_missing_interpreter_is_reported(tmp_path: Path) -> None:
    probe = run_probe(str(tmp_path / "no-python"), ("env",))
    assert probe.returncode == 127 and "could not run" in probe.stderr
