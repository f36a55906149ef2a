"""Reproducible across Macs (#12): the Python pin warning, the report's fingerprint, and
`athena doctor --compare` between two reports (real doctor runs on this venv; the Mac's chip
and wired limit come from the simulated Host, and those tests say so)."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from athena.doctor import compare
from athena.doctor.checks import run_doctor
from athena.doctor.compare import ENV_NAMES, behaviour_env, fingerprint
from athena.doctor.lock import read_python_pin, wheel_tags
from athena.doctor.report import Report
from athena.doctor.sections import python_pin_check
from athena.host import SYSCTL_NAMES, Host, Metal, probe_host

from .conftest import ROOT, validate

ATHENA = Path(sys.executable).parent / "athena"
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def athena(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ATHENA), *args], capture_output=True, text=True, check=False, timeout=900, cwd=cwd
    )


def project_copy(tmp_path: Path, pin: str) -> Path:
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".python-version").write_text(pin + "\n")
    return tmp_path


@pytest.fixture(scope="module")
def here() -> dict[str, Any]:
    """This venv's report, as `--json` prints it (the audit left out: it is not compared)."""
    report: dict[str, Any] = json.loads(run_doctor(audit=False).to_json())
    return report


# --------------------------------------------------------------------------- the Python pin


def test_the_checkout_pins_the_flakes_python() -> None:
    assert read_python_pin(ROOT) == "3.12"
    assert read_python_pin(None) is None


def test_doctor_warns_when_the_python_is_not_the_pinned_one(
    tmp_path: Path, base_python: str
) -> None:
    """The base Python (this venv's, so the same minor; no mlx probe keeps the run short)."""
    report = run_doctor(python=base_python, root=project_copy(tmp_path, "3.99"), audit=False)
    check = report.get("system.python_pin")
    assert check is not None and check.data == {"pinned": "3.99", "minor": RUNNING}
    assert check.status == "warn" and not check.required
    assert f"Python {RUNNING}, but .python-version pins 3.99" in check.detail
    assert "`uv sync --locked`" in (check.hint or "") and "3.99" in (check.hint or "")
    assert report.fingerprint["python"]["pinned"] == "3.99"


def test_the_pinned_python_passes() -> None:
    report = Report("0", {}, {}, {})
    python_pin_check(report, {"version": f"{RUNNING}.0", "probe_ok": True}, RUNNING)
    assert [(c.status, c.hint) for c in report.checks] == [("pass", None)]


@pytest.mark.parametrize(
    ("written", "read"), [("3\n", "3"), ("3.12.7\n", "3.12"), ("cpython@3.13", "3.13")]
)
def test_a_pin_of_any_form_uv_reads_is_read(written: str, read: str, tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text(written)
    assert read_python_pin(tmp_path) == read


def test_a_pin_of_the_major_version_alone_admits_every_python_of_it() -> None:
    report = Report("0", {}, {}, {})
    python_pin_check(report, {"version": f"{RUNNING}.0", "probe_ok": True}, "3")
    python_pin_check(report, {"version": f"{RUNNING}.0", "probe_ok": True}, "4")
    assert [c.status for c in report.checks] == ["pass", "warn"]


def test_the_pin_check_skips_off_a_checkout_and_for_a_broken_python() -> None:
    report = Report("0", {}, {}, {})
    python_pin_check(report, {"version": "3.12.1", "probe_ok": True}, None)
    python_pin_check(report, {"version": None, "probe_ok": False}, "3.12")
    assert [c.status for c in report.checks] == ["skip", "skip"]


# ---------------------------------------------------------------------------- the fingerprint


def test_the_report_is_schema_3_with_a_fingerprint(here: dict[str, Any], tmp_path: Path) -> None:
    assert here["schema"] == "athena-doctor/3"
    validate(here, tmp_path)
    fingerprint = here["fingerprint"]
    assert (
        fingerprint["uv_lock_sha256"] == hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest()
    )
    numpy = fingerprint["packages"]["numpy"]
    assert numpy["installed"] == version("numpy") and numpy["matches_lock"] is True
    # the build: the WHEEL file's tags, and the locked wheel that has them
    assert numpy["tags"] and set(numpy["tags"]) <= set(wheel_tags(numpy["wheel"]["file"]))
    assert numpy["wheel"]["file"].startswith(f"numpy-{version('numpy')}-")
    assert len(numpy["wheel"]["sha256"]) == 64
    assert all(
        set(p) == {"installed", "matches_lock", "tags", "wheel"}
        for p in fingerprint["packages"].values()
    )
    assert fingerprint["python"]["minor"] == RUNNING
    assert fingerprint["python"]["implementation"] == sys.implementation.name
    assert fingerprint["os"]["target"] == here["host"]["target"]
    assert fingerprint["total_memory"] == here["host"]["total_memory"]
    assert set(fingerprint["env"]) == set(ENV_NAMES) >= {"HF_HUB_OFFLINE", "UV_INDEX_URL"}


def test_the_fingerprint_has_mlxs_device_from_the_probe(here: dict[str, Any]) -> None:
    pytest.importorskip("mlx.core", reason="install the mlx-cpu group: uv sync --group mlx-cpu")
    device = next(c for c in here["checks"] if c["id"] == "mlx.default_device")
    assert here["fingerprint"]["mlx_device"] == device["data"]["device"]


def test_behaviour_variables_are_the_listed_ones_with_paths_made_comparable() -> None:
    root = Path("/Users/alice/athena")
    environ = {
        "UV_PYTHON": "/nix/store/abc-python3-3.12.8/bin/python3.12",
        "ATHENA_MLX_DEVICE": "cpu",
        "DYLD_LIBRARY_PATH": "/Users/alice/lib",
        "VIRTUAL_ENV": "/Users/alice/athena/.venv",
        "HOME": "/Users/alice",
        "UVICORN_PORT": "8000",  # not UV_*
        "UV_CACHE_DIR": "/Users/alice/.cache/uv",  # not a behaviour
    }
    env = behaviour_env(environ, root, home="/Users/alice")
    assert tuple(env) == ENV_NAMES
    assert {name: value for name, value in env.items() if value is not None} == {
        "ATHENA_MLX_DEVICE": "cpu",
        "DYLD_LIBRARY_PATH": "~/lib",
        "UV_PYTHON": "/nix/store/abc-python3-3.12.8/bin/python3.12",
        "VIRTUAL_ENV": "$PROJECT/.venv",
    }


def test_simulated_mac_fingerprint_has_the_chip_and_the_wired_limit() -> None:
    mac = Host(
        "Darwin",
        "arm64",
        "15.3.1",
        total_memory=32 * 1024**3,
        rosetta=False,
        sysctl={"iogpu.wired_limit_mb": "0", "machdep.cpu.brand_string": "Apple M2 Max"},
        chip="Apple M2 Max",
        metal=Metal(True, {}),
    )
    python = {"version": "3.12.8", "implementation": "cpython"}
    block = fingerprint(
        host=mac, python=python, root=ROOT, lock=None, distributions=[], probe=None, pin="3.12"
    )
    assert block["chip"] == "Apple M2 Max"
    assert block["os"] == {
        "system": "Darwin",
        "target": "darwin-arm64",
        "release": "15.3.1",
        "macos_version": "15.3.1",
    }
    assert block["wired_limit"] == {"supported": True, "iogpu_wired_limit_mb": "0"}
    assert block["metal"] is True and block["mlx_device"] is None
    assert block["python"] == {
        "version": "3.12.8",
        "minor": "3.12",
        "implementation": "cpython",
        "pinned": "3.12",
    }
    older = fingerprint(
        host=replace(mac, os_version="14.6"),
        python=python,
        root=None,
        lock=None,
        distributions=[],
        probe=None,
        pin=None,
    )
    assert older["wired_limit"]["supported"] is False and older["uv_lock_sha256"] is None


def test_the_real_host_names_its_chip() -> None:
    """Linux: /proc/cpuinfo's model name (a Mac reads sysctl machdep.cpu.brand_string)."""
    assert "machdep.cpu.brand_string" in SYSCTL_NAMES
    cpuinfo = Path("/proc/cpuinfo")
    if not (cpuinfo.is_file() and "model name" in cpuinfo.read_text(errors="replace")):
        pytest.skip("no model name in /proc/cpuinfo here")
    assert probe_host().chip


# ------------------------------------------------------------------------------ --compare


def write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps(report))
    return path


def test_compare_sorts_differences_into_two_groups(here: dict[str, Any]) -> None:
    other = copy.deepcopy(here)
    fingerprint = other["fingerprint"]
    fingerprint["uv_lock_sha256"] = "0" * 64
    fingerprint["packages"]["numpy"]["installed"] = "1.0.0"
    fingerprint["python"]["minor"] = "3.99"
    fingerprint["python"]["version"] = "3.99.0"
    fingerprint["mlx_device"] = "Device(gpu, 0)"
    fingerprint["env"]["UV_INDEX_URL"] = "https://example.invalid/simple"
    fingerprint["chip"] = "Apple M3 Pro"
    fingerprint["hostname"] = "bobs-mac"
    fingerprint["total_memory"] = 1
    breaking, expected = compare.compare(here, other)
    assert [d.what for d in breaking] == [
        "uv.lock sha256",
        "Python minor version",
        "mlx default device",
        "package numpy",
        "$UV_INDEX_URL",
    ]
    assert [d.what for d in expected] == ["chip", "memory (bytes)", "hostname"]
    assert compare.compare(here, copy.deepcopy(here)) == ([], [])
    patch = copy.deepcopy(here)
    patch["fingerprint"]["python"]["version"] = f"{RUNNING}.99"
    assert compare.compare(here, patch) == (
        [],
        [
            compare.Difference(
                "Python version",
                here["fingerprint"]["python"]["version"],
                f"{RUNNING}.99",
                severity=compare.INFO,
            )
        ],
    )


def test_compare_two_files_prints_only_what_differs(here: dict[str, Any], tmp_path: Path) -> None:
    other = copy.deepcopy(here)
    other["fingerprint"]["chip"] = "Apple M3 Pro"
    a, b = write(tmp_path / "a.json", here), write(tmp_path / "b.json", other)
    result = athena("doctor", "--compare", str(a), str(b))
    assert result.returncode == 0, result.stderr
    assert "Breaks reproducibility (0):" in result.stdout
    assert "May change numerics (1):" in result.stdout and "Informational (0):" in result.stdout
    assert "Apple M3 Pro" in result.stdout and "numpy" not in result.stdout

    other["fingerprint"]["packages"]["numpy"]["installed"] = "1.0.0"
    write(b, other)
    result = athena("doctor", "--compare", str(a), str(b), "--json")
    assert result.returncode == 1
    diff = json.loads(result.stdout)
    assert diff["reproducible"] is False
    assert diff["breaking"] == [
        {
            "what": "package numpy",
            "a": version("numpy"),
            "b": "1.0.0",
            "severity": "breaks reproducibility",
            "fix": "`uv sync --locked --reinstall-package numpy` on both",
        },
    ]


@pytest.mark.real_host("`athena doctor --compare` runs in a child, on the real machine")
def test_compare_this_machine_with_its_own_report(here: dict[str, Any], tmp_path: Path) -> None:
    report = write(tmp_path / "mine.json", here)
    result = athena("doctor", "--compare", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("athena doctor --compare: this machine (")
    assert "Breaks reproducibility (0):" in result.stdout


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"schema": "athena-doctor/1", "ok": true, "checks": []}', "has schema athena-doctor/1"),
        ('{"schema": "athena-doctor/9", "fingerprint": {}}', "this athena reads athena-doctor/3"),
        ('{"schema": "something-else/2"}', "has schema something-else/2"),
        ('{"hello": "world"}', "is not an athena doctor report"),
        ("[1, 2]", "is not an athena doctor report"),
        ("not json {", "is not JSON"),
    ],
)
def test_compare_refuses_what_it_cannot_compare_in_one_sentence(
    here: dict[str, Any], tmp_path: Path, content: str, says: str
) -> None:
    good = write(tmp_path / "good.json", here)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = athena("doctor", "--compare", str(good), str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert says in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_compare_a_missing_file_or_three_files(tmp_path: Path) -> None:
    result = athena("doctor", "--compare", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "cannot be read" in result.stderr
    result = athena("doctor", "--compare", "a.json", "b.json", "c.json")
    assert result.returncode == 1 and "one report" in result.stderr
    assert "Traceback" not in result.stderr
