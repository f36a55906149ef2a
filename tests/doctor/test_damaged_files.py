"""Nothing the doctor reads can crash it (#21): each damaged, empty, binary, wrongly shaped or
unreadable file of a checkout gives a failed check (or, for --compare, an exit-2 sentence)
that names the file and what to do, in the table and in --json; scripts/verify_env.py too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT, VERIFY_ENV, checks_by_id, clean_env, uv_path

ATHENA = Path(sys.executable).parent / "athena"
NOBODY = 65534


def checkout(tmp_path: Path) -> Path:
    project = tmp_path / "checkout"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", ".python-version", "flake.lock", "README.md"):
        shutil.copy(ROOT / name, project / name)
    (project / "athena").mkdir()
    shutil.copy(ROOT / "athena" / "__init__.py", project / "athena" / "__init__.py")
    return project


def write(name: str, data: bytes) -> Callable[[Path], None]:
    def damage(project: Path) -> None:
        (project / name).write_bytes(data)

    return damage


def folder(name: str) -> Callable[[Path], None]:
    """A directory where the file should be: reading it fails (as a chmod 000 file would for a
    user who is not root; these tests run as root, which reads anything)."""

    def damage(project: Path) -> None:
        (project / name).unlink()
        (project / name).mkdir()

    return damage


BINARY = bytes(range(128, 256)) * 8
# (file, damage, words the check's detail must hold, status)
CASES = {
    "binary uv.lock": ("uv.lock", write("uv.lock", BINARY), "is not text", "fail"),
    "uv.lock package = 5": (
        "uv.lock",
        write("uv.lock", b"version = 1\npackage = 5\n"),
        "has `package = 5`",
        "fail",
    ),
    "uv.lock packages without names": (
        "uv.lock",
        write("uv.lock", b'version = 1\npackage = [1, "x"]\n'),
        "has a [[package]] entry (number 1) without a name",
        "fail",
    ),
    "uv.lock as a folder": ("uv.lock", folder("uv.lock"), "cannot be read", "fail"),
    "empty uv.lock": ("uv.lock", write("uv.lock", b""), "is empty", "fail"),
    "uv.lock without a version": (
        "uv.lock",
        write("uv.lock", b'[[package]]\nname = "x"\n'),
        "has no `version = N`",
        "fail",
    ),
    "unclosed table in pyproject.toml": (
        "pyproject.toml",
        write("pyproject.toml", b'[project\nname = "athena"\n'),
        "is not valid TOML",
        "fail",
    ),
    "binary pyproject.toml": (
        "pyproject.toml",
        write("pyproject.toml", BINARY),
        "is not text",
        "fail",
    ),
    "empty .python-version": (".python-version", write(".python-version", b""), "is empty", "fail"),
    "binary .python-version": (
        ".python-version",
        write(".python-version", BINARY),
        "is not text",
        "fail",
    ),
    "garbage .python-version": (
        ".python-version",
        write(".python-version", b"latest please\n"),
        "does not name a Python version",
        "fail",
    ),
    ".python-version as a folder": (
        ".python-version",
        folder(".python-version"),
        "cannot be read",
        "fail",
    ),
    "flake.lock garbage": ("flake.lock", write("flake.lock", b"{garbage"), "is not JSON", "warn"),
    "flake.lock of the wrong shape": (
        "flake.lock",
        write("flake.lock", b'{"nodes": 5}'),
        "has no nodes.nixpkgs.locked.rev",
        "warn",
    ),
}


def doctor(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ATHENA), "doctor", *args], capture_output=True, text=True, check=False, timeout=900
    )


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_file_is_a_check_that_names_it(
    case: str, tmp_path: Path, base_python: str
) -> None:
    """The base Python (no mlx: no mlx probe) keeps each run short; the files are the point."""
    name, damage, says, status = CASES[case]
    project = checkout(tmp_path)
    damage(project)
    fast = ("--no-audit", "--python", base_python, "--project", str(project))
    result = doctor("--json", *fast)
    assert "Traceback" not in result.stderr, result.stderr
    check = checks_by_id(json.loads(result.stdout))["system.project"]
    assert check["status"] == status and check["required"] == (status == "fail")
    assert f"{project / name} {says}" in check["detail"]
    assert check["hint"] and ("git checkout" in check["hint"] or "ls -ld" in check["detail"])
    assert result.returncode == (1 if status == "fail" else 0)
    table = doctor(*fast)
    assert "Traceback" not in table.stderr and f"{project / name} {says}" in table.stdout


@pytest.mark.parametrize(
    "case", ["binary uv.lock", "empty uv.lock", "unclosed table in pyproject.toml"]
)
def test_the_audit_names_the_file_uv_could_not_read(case: str, tmp_path: Path) -> None:
    name, damage, says, _ = CASES[case]
    uv_path()
    project = checkout(tmp_path)
    damage(project)
    result = subprocess.run(
        [str(ATHENA), "audit", "--lock-only", "--json", "--project", str(project)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [r["error"] for r in json.loads(result.stdout)["results"]]
    assert errors and all(f"{project / name} {says}" in error for error in errors)


def test_the_audit_names_a_uv_lock_cut_short_without_uvs_parse_dump(tmp_path: Path) -> None:
    """Cut before a [[package]]: valid TOML, so only uv can tell that it is damaged."""
    uv_path()
    project = checkout(tmp_path)
    text = (ROOT / "uv.lock").read_text()
    cut = [i for i in range(len(text)) if text.startswith("\n[[package]]", i)][20]
    (project / "uv.lock").write_text(text[: cut + 1])
    for extra in ((), ("--json",)):
        result = subprocess.run(
            [str(ATHENA), "audit", "--lock-only", *extra, "--project", str(project)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"uv cannot parse {project / 'uv.lock'} (" in result.stdout
        assert "`uv lock`" in result.stdout and "Using CPython" not in result.stdout


def test_verify_env_under_a_bare_python_survives_a_binary_uv_lock(
    base_python: str, tmp_path: Path
) -> None:
    project = checkout(tmp_path)
    write("uv.lock", BINARY)(project)
    result = subprocess.run(
        [base_python, str(VERIFY_ENV), "--json", "--no-audit", "--project", str(project)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=900,
    )
    assert "Traceback" not in result.stderr
    check = checks_by_id(json.loads(result.stdout))["system.project"]
    assert check["status"] == "fail" and f"{project / 'uv.lock'} is not text" in check["detail"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv"
)
def test_an_unreadable_uv_lock_as_another_user() -> None:
    """chmod 000 stops reads for a user who is not root (these tests run as root, which reads
    anything): verify_env.py runs as nobody, with the system's python3 (pyenv's live under
    /root, which nobody may enter), on a checkout in a folder open to everyone."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no /usr/bin/python3")
    with tempfile.TemporaryDirectory(prefix="athena-unreadable-") as tmp:
        Path(tmp).chmod(0o755)
        project = checkout(Path(tmp))
        (project / "uv.lock").chmod(0o000)
        command = [python, str(VERIFY_ENV), "--json", "--no-audit", "--project", str(project)]
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *command],
            capture_output=True,
            text=True,
            env=clean_env(HOME=tmp),
            check=False,
            timeout=900,
        )
    assert "Traceback" not in result.stderr, result.stderr
    check = checks_by_id(json.loads(result.stdout))["system.project"]
    assert check["status"] == "fail"
    assert f"{project / 'uv.lock'} cannot be read (Permission denied" in check["detail"]


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_a_bad_timeout_is_one_sentence(value: str) -> None:
    """`athena doctor` exits 1 on a usage problem (the CLI's rule), verify_env.py 2."""
    for command, code in (([str(ATHENA), "doctor"], 1), ([sys.executable, str(VERIFY_ENV)], 2)):
        result = subprocess.run(
            [*command, "--timeout", value], capture_output=True, text=True, check=False
        )
        assert result.returncode == code and result.stdout == ""
        assert f"--timeout {value} is not a number of seconds above 0" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (BINARY, "is not JSON"),
        (b"", "is not JSON"),
        (b"[" * 100_000, "is not JSON"),
        (
            b'{"schema": "athena-doctor/3", "fingerprint": {"packages": 5, "env": [1], "os": 3}}',
            "cannot compare: in",
        ),
    ],
)
def test_compare_survives_garbage_reports(tmp_path: Path, content: bytes, says: str) -> None:
    (tmp_path / "bad.json").write_bytes(content)
    result = doctor("--compare", str(tmp_path / "bad.json"), str(tmp_path / "bad.json"))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2 and says in result.stderr
    assert str(tmp_path / "bad.json") in result.stderr


def test_compare_a_folder_in_place_of_a_report(tmp_path: Path) -> None:
    (tmp_path / "report.json").mkdir()
    result = doctor("--compare", str(tmp_path / "report.json"), str(tmp_path / "report.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'report.json'} cannot be read" in result.stderr


def test_verify_env_under_python_3_9_names_a_binary_pin(tmp_path: Path) -> None:
    """The oldest python3 a Mac ships: no tomllib (the TOML files are not read: info), and
    still no traceback."""
    from .test_verify_env import find_python_39

    python = find_python_39()
    if python is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or ~/.pyenv/versions/3.9*)")
    project = checkout(tmp_path)
    write(".python-version", BINARY)(project)
    write("uv.lock", BINARY)(project)
    result = subprocess.run(
        [python, str(VERIFY_ENV), "--json", "--no-audit", "--project", str(project)],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
        timeout=900,
    )
    assert "Traceback" not in result.stderr, result.stderr
    check = checks_by_id(json.loads(result.stdout))["system.project"]
    assert check["status"] == "fail" and result.returncode == 1
    assert f"{project / '.python-version'} is not text" in check["detail"]
    assert "tomllib" in check["data"]["uv.lock"]
