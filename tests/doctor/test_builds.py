"""The same bits on every machine (#21): the fingerprint names each package's build (its
WHEEL tags and the locked wheel), `--compare` reports "same version, different build", and
`--verify-files` checks installed files against their RECORD. The two Macs are simulated
(Host and fabricated distributions); the wheel, the venv, uv and the doctor runs are real."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from athena.doctor import compare
from athena.doctor.compare import fingerprint
from athena.doctor.lock import read_lock, wheel_tags
from athena.host import Host

from .conftest import ROOT, checks_by_id, clean_env, uv_path

ATHENA = Path(sys.executable).parent / "athena"
WHEEL = "tiny_pkg-0.1-py3-none-any.whl"


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(folder: Path) -> Path:
    """A real wheel: two modules, METADATA, WHEEL (one Tag line) and RECORD."""
    files = {
        "tiny_pkg/__init__.py": b"VALUE = 1\n",
        "tiny_pkg/model.py": b"def forward(x):\n    return x\n",
        "tiny_pkg-0.1.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 0.1\n",
        "tiny_pkg-0.1.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: hand\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in files.items())
    record += "tiny_pkg-0.1.dist-info/RECORD,,\n"
    path = folder / WHEEL
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("tiny_pkg-0.1.dist-info/RECORD", record)
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, base_python: str) -> dict[str, Path]:
    """A venv with the wheel installed by uv, and a checkout whose uv.lock locks that wheel."""
    folder = tmp_path_factory.mktemp("builds")
    wheel = make_wheel(folder)
    uv = uv_path()
    env = clean_env()
    venv = folder / "venv"
    subprocess.run([uv, "venv", "-q", "--python", base_python, str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [uv, "pip", "install", "-q", "--offline", "--python", str(python), str(wheel)],
        check=True,
        env=env,
    )
    project = folder / "checkout"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    (project / "uv.lock").write_text(
        'version = 1\n\n[[package]]\nname = "tiny-pkg"\nversion = "0.1"\n'
        f'wheels = [{{ url = "https://example.invalid/{WHEEL}", hash = "sha256:{digest}" }}]\n'
    )
    site = next((venv / "lib").glob("python*/site-packages"))
    return {"python": python, "project": project, "site": site, "wheel": wheel}


def doctor(venv: dict[str, Path], *args: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run(
        [
            str(ATHENA),
            "doctor",
            "--json",
            "--no-audit",
            "--python",
            str(venv["python"]),
            "--project",
            str(venv["project"]),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_the_fingerprint_names_the_installed_wheel_from_the_lock(venv: dict[str, Path]) -> None:
    _, report = doctor(venv)
    package = report["fingerprint"]["packages"]["tiny-pkg"]
    assert package["installed"] == "0.1" and package["tags"] == ["py3-none-any"]
    digest = hashlib.sha256(venv["wheel"].read_bytes()).hexdigest()
    assert package["wheel"] == {"file": WHEEL, "sha256": digest}


def test_verify_files_passes_on_what_the_wheel_shipped(venv: dict[str, Path]) -> None:
    code, report = doctor(venv, "--verify-files")  # every locked package: tiny-pkg
    check = checks_by_id(report)["packages.files"]
    assert check["status"] == "pass", check
    assert check["data"]["packages"] == 1 and check["data"]["files"] >= 4
    assert code == 0


def test_verify_files_lists_changed_missing_and_added_files(venv: dict[str, Path]) -> None:
    package = venv["site"] / "tiny_pkg"
    original = (package / "model.py").read_bytes()
    (package / "model.py").write_text("def forward(x):\n    return x * 2  # debugging\n")
    (package / "__init__.py").unlink()
    (package / "notes.py").write_text("# left behind\n")
    (package / "patches" / "deep").mkdir(parents=True)  # a new subfolder, files two deep
    (package / "patches" / "deep" / "hook.py").write_text("import os\n")
    (package / "patches" / "__pycache__").mkdir()
    (package / "patches" / "__pycache__" / "hook.cpython-312.pyc").write_bytes(b"")
    try:
        code, report = doctor(venv, "--verify-files", "Tiny_Pkg")
    finally:
        (package / "model.py").write_bytes(original)
        (package / "__init__.py").write_text("VALUE = 1\n")
        (package / "notes.py").unlink()
        shutil.rmtree(package / "patches")
    check = checks_by_id(report)["packages.files"]
    assert code == 1 and check["status"] == "fail" and check["required"]
    assert check["data"]["differences"] == {
        "tiny-pkg": {
            "changed": ["tiny_pkg/model.py"],
            "missing": ["tiny_pkg/__init__.py"],
            "added": ["tiny_pkg/notes.py", "tiny_pkg/patches/deep/hook.py"],
        }
    }
    assert "tiny-pkg: 1 changed (tiny_pkg/model.py)" in check["detail"]
    assert check["hint"].endswith("`uv sync --locked --reinstall-package tiny-pkg`")


def test_verify_files_names_a_package_that_is_not_installed(venv: dict[str, Path]) -> None:
    code, report = doctor(venv, "--verify-files", "no-such-package")
    check = checks_by_id(report)["packages.files"]
    assert code == 1 and "no-such-package: not installed here" in check["detail"]
    assert "check the names" in check["hint"]


# ------------------------------------------------- two Macs, macOS 14 and 26 (simulated)


def simulated_mac_report(os_version: str, platform_tag: str) -> dict[str, Any]:
    """What a Mac on `os_version` reports after `uv sync --locked`: mlx and mlx-metal from
    the real uv.lock, installed from the wheel uv picks for that macOS (its WHEEL tag)."""
    lock = read_lock(ROOT / "uv.lock")
    dists = []
    for name in ("mlx", "mlx-metal"):
        version = sorted(lock.versions[name])[-1]
        dists.append({"name": name, "version": version, "tags": [f"cp312-cp312-{platform_tag}"]})
    host = Host("Darwin", "arm64", os_version, total_memory=36 * 1024**3, rosetta=False)
    python = {"version": "3.12.8", "implementation": "cpython"}
    block = fingerprint(
        host=host, python=python, root=ROOT, lock=lock, distributions=dists, probe=None, pin="3.12"
    )
    return {"schema": "athena-doctor/3", "fingerprint": block}


def test_simulated_macs_on_14_and_26_have_the_same_versions_but_not_the_same_build() -> None:
    mac14 = simulated_mac_report("14.6", "macosx_14_0_arm64")
    mac26 = simulated_mac_report("26.0", "macosx_26_0_arm64")
    mlx14, mlx26 = (m["fingerprint"]["packages"]["mlx"] for m in (mac14, mac26))
    assert mlx14["installed"] == mlx26["installed"] and mlx14["matches_lock"]
    assert mlx14["wheel"]["file"].endswith("-cp312-cp312-macosx_14_0_arm64.whl")
    assert mlx26["wheel"]["file"].endswith("-cp312-cp312-macosx_26_0_arm64.whl")
    assert mlx14["wheel"]["sha256"] != mlx26["wheel"]["sha256"]
    assert wheel_tags(mlx26["wheel"]["file"]) == ["cp312-cp312-macosx_26_0_arm64"]

    breaking, expected = compare.compare(mac14, mac26)
    builds = {d.what: d for d in breaking if d.what.endswith(" build")}
    assert set(builds) == {"package mlx build", "package mlx-metal build"}
    mlx = builds["package mlx build"]
    assert mlx.a == "cp312-cp312-macosx_14_0_arm64 on 14.6"
    assert mlx.b == "cp312-cp312-macosx_26_0_arm64 on 26.0"
    assert mlx.severity == compare.BREAKS and "same macOS major release" in (mlx.fix or "")
    assert [d.what for d in expected if d.severity == compare.NUMERICS] == ["OS release"]

    names = ("mac14.json", "mac26.json")
    text = compare.render(names, breaking, expected)
    assert "Breaks reproducibility (2):" in text and "macosx_26_0_arm64 on 26.0" in text
    assert "-> uv installs the wheel for the newest OS" in text
    rows = compare.to_dict(names, breaking, expected)
    assert rows["reproducible"] is False
    assert {r["what"]: r["severity"] for r in rows["breaking"]} == {
        "package mlx build": "breaks reproducibility",
        "package mlx-metal build": "breaks reproducibility",
    }
    assert all(row["fix"] and row["fix"] in text for row in rows["breaking"])


def test_simulated_mac_with_a_build_not_from_the_lock() -> None:
    mac = simulated_mac_report("15.3", "macosx_15_0_arm64")
    local = simulated_mac_report("15.3", "macosx_15_0_arm64")
    local["fingerprint"]["packages"]["mlx"]["tags"] = ["cp312-cp312-macosx_15_0_arm64_local"]
    local["fingerprint"]["packages"]["mlx"]["wheel"] = None
    breaking, _ = compare.compare(mac, local)
    (build,) = breaking
    assert build.b.endswith("(not from the lock)")
    assert build.fix == (
        "`uv sync --locked --reinstall-package mlx` on the side whose build is not from the lock"
    )
