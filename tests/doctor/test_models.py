"""The doctor and the model lock (#29): each locked model's commit and state in the report and
its fingerprint, from the remembered hashes only (no weight is read), the action head's sha256,
and `--compare` on them. Real files: a tiny checkpoint in a Hugging Face cache layout, a
models.lock written by athena.modellock, and the state a real `modellock.verify` leaves."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from athena import modellock
from athena.checkpoints import write_tiny_olmoe
from athena.doctor import compare
from athena.doctor.checks import run_doctor
from athena.doctor.report import Report
from athena.doctor.sections import models_checks

from .conftest import ROOT, validate

ATHENA = Path(sys.executable).parent / "athena"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
WEIGHTS = "model.safetensors"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout (pyproject, uv.lock) whose models.lock pins org/tiny at COMMIT, the tiny
    checkpoint in the hub cache at that commit, verified once by `modellock.verify`."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = write_tiny_olmoe(cache / "models--org--tiny" / "snapshots" / COMMIT)
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", "uv.lock", ".python-version"):
        shutil.copy(ROOT / name, root / name)
    files = tuple(
        modellock.LockedFile(p.name, p.stat().st_size, sha256(p))
        for p in sorted(snapshot.iterdir())
        if p.is_file() and not p.name.startswith(".")
    )
    assert WEIGHTS in [f.path for f in files]
    model = modellock.LockedModel("org/tiny", files, revision="main", commit=COMMIT)
    modellock.write_lock(root, {"org/tiny": model})
    assert modellock.verify(root) == []
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_project(tmp_path, monkeypatch)


def weight_file(project: Path) -> Path:
    return Path(os.environ["HF_HUB_CACHE"]) / "models--org--tiny" / "snapshots" / COMMIT / WEIGHTS


def change_a_byte(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[-1] ^= 0xFF
    file.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The doctor's report on a project made as `project` is, with a 3 MiB action head."""
    tmp_path = tmp_path_factory.mktemp("report")
    head = tmp_path / "head.safetensors"
    head.write_bytes(os.urandom(3 * 2**20 + 1))
    with pytest.MonkeyPatch.context() as monkeypatch:
        root = make_project(tmp_path, monkeypatch)
        result: dict[str, Any] = json.loads(
            run_doctor(root=root, audit=False, action_head=head).to_json()
        )
    result["_head"], result["_lock"] = sha256(head), sha256(root / "models.lock")
    return result


def test_the_fingerprint_has_each_locked_model_its_state_and_the_head(
    report: dict[str, Any], tmp_path: Path
) -> None:
    fingerprint = report["fingerprint"]
    assert fingerprint["models"] == {"org/tiny": {"commit": COMMIT, "state": "verified"}}
    assert fingerprint["models_lock_sha256"] == report["_lock"]
    assert fingerprint["action_head"] == {"sha256": report["_head"]}
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["models.org/tiny"]["status"] == "pass"
    assert checks["models.org/tiny"]["detail"] == f"{COMMIT[:12]} verified"
    assert checks["models.action_head"]["status"] == "pass"
    validate(report, tmp_path)
    assert compare.check_report(report, "r") is report


def test_without_a_models_lock_the_fingerprint_has_no_models(tmp_path: Path) -> None:
    report = Report("0", {}, {}, {})
    assert models_checks(report, tmp_path, None) == ({}, None)
    assert [(c.id, c.status) for c in report.checks] == [("models.lock", "skip")]


def test_a_changed_weight_file_is_unverified_and_the_doctor_never_reads_it(
    project: Path, base_python: str
) -> None:
    """The doctor runs in a child that records every file it opens (an audit hook); then, in
    the same child, `modellock.verify` shows that the hook sees the weight file being read.
    It checks the base Python (no mlx: no mlx probe, a child the hook never saw anyway)."""
    weights = weight_file(project)
    change_a_byte(weights)
    child = f"""
import json, os, sys
from pathlib import Path
opened = []
sys.addaudithook(lambda event, args: event == "open" and isinstance(args[0], (str, bytes))
                 and opened.append(os.path.realpath(os.fsdecode(args[0]))))
from athena import modellock
from athena.doctor.checks import run_doctor
report = run_doctor(python={base_python!r}, root=Path({str(project)!r}), audit=False)
read_by_doctor = {str(weights.resolve())!r} in opened
problems = modellock.verify(Path({str(project)!r}))
print(json.dumps({{"report": report.to_dict(), "text": report.render(),
    "read_by_doctor": read_by_doctor, "read_by_verify": {str(weights.resolve())!r} in opened,
    "problems": problems}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["report"]["fingerprint"]["models"]["org/tiny"]["state"] == "unverified"
    assert out["read_by_doctor"] is False
    assert out["read_by_verify"] is True and "sha256 other than the lock's" in out["problems"][0]
    assert "MODELS" in out["text"]
    line = next(n for n in out["text"].splitlines() if "model org/tiny" in n)
    assert f"{COMMIT[:12]} unverified" in line
    assert "-> run `athena models verify`" in out["text"]


def test_a_missing_file_asks_for_a_sync(project: Path) -> None:
    weight_file(project).unlink()
    report = Report("0", {}, {}, {})
    models, _ = models_checks(report, project, None)
    assert models == {"org/tiny": {"commit": COMMIT, "state": "missing"}}
    check = report.get("models.org/tiny")
    assert check is not None and check.status == "warn"
    assert check.hint == "run `athena models sync`"


def test_a_damaged_models_lock_is_a_failed_check_with_one_sentence(project: Path) -> None:
    (project / "models.lock").write_text("[[model]]\nname = 'org/tiny'\n")
    report = Report("0", {}, {}, {})
    assert models_checks(report, project, None) == ({}, None)
    check = report.get("models.lock")
    assert check is not None and check.status == "fail" and "models.lock" in check.detail
    assert check.hint and "athena models lock --upgrade" in check.hint


def test_an_unreadable_action_head_fails_the_doctor_without_a_traceback(
    tmp_path: Path, base_python: str
) -> None:
    """On the base Python (no mlx: no mlx probe keeps the run short; the head is the point)."""
    missing = tmp_path / "no-head.safetensors"
    fast = ("--no-audit", "--python", base_python)
    result = subprocess.run(
        [str(ATHENA), "doctor", *fast, "--action-head", str(missing)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    line = next(n for n in result.stdout.splitlines() if "action head" in n)
    assert f"{missing} cannot be read (No such file or directory)" in line
    assert "models.action_head" in result.stdout.splitlines()[-1]


# ---------------------------------------------------------------------------- --compare


def write(path: Path, report: dict[str, Any]) -> Path:
    path.write_text(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}))
    return path


def breaking(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str | None]:
    return {d.what: d.fix for d in compare.compare(a, b)[0]}


def test_another_commit_breaks_reproducibility_with_the_fix(
    report: dict[str, Any], tmp_path: Path
) -> None:
    other = copy.deepcopy(report)
    other["fingerprint"]["models"]["org/tiny"]["commit"] = "f" * 40
    other["fingerprint"]["models_lock_sha256"] = "0" * 64
    a, b = write(tmp_path / "a.json", report), write(tmp_path / "b.json", other)
    result = subprocess.run(
        [str(ATHENA), "doctor", "--compare", str(a), str(b)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Breaks reproducibility (2):" in result.stdout
    assert "-> check out the same models.lock on both, then `athena models sync`" in result.stdout
    assert "-> `athena models sync` on both after aligning models.lock" in result.stdout
    line = next(n for n in result.stdout.splitlines() if "model org/tiny" in n)
    assert line.split()[2:] == [COMMIT, "|", "f" * 40]

    del other["fingerprint"]["models"]["org/tiny"]
    assert breaking(report, other)["model org/tiny"] == (
        "`athena models sync` on both after aligning models.lock"
    )
    assert compare.compare(report, copy.deepcopy(report)) == ([], [])


def test_unverified_or_missing_files_on_a_side_break_reproducibility(
    report: dict[str, Any],
) -> None:
    other = copy.deepcopy(report)
    other["fingerprint"]["models"]["org/tiny"]["state"] = "unverified"
    assert breaking(report, other) == {"model org/tiny files": "`athena models verify` on B"}
    assert breaking(other, report) == {"model org/tiny files": "`athena models verify` on A"}
    missing = copy.deepcopy(report)
    missing["fingerprint"]["models"]["org/tiny"]["state"] = "missing"
    assert breaking(other, missing) == {
        "model org/tiny files": "`athena models verify` on A; `athena models sync` on B"
    }


def test_another_action_head_breaks_reproducibility(report: dict[str, Any]) -> None:
    fix = "copy the same action head file to both (the one OLMoEConfig.action_head_path names)"
    other = copy.deepcopy(report)
    other["fingerprint"]["action_head"] = {"sha256": "0" * 64}
    assert breaking(report, other) == {"action head sha256": fix}
    other["fingerprint"]["action_head"] = None
    assert breaking(report, other) == {"action head sha256": fix}


def test_crafted_model_names_are_shown_escaped_and_never_in_a_command(
    report: dict[str, Any], tmp_path: Path
) -> None:
    crafted = "\x1b[2J\x1b[31morg/x; rm -rf ~ $(reboot)"
    other = copy.deepcopy(report)
    other["fingerprint"]["models"][crafted] = {"commit": "e" * 40, "state": "unverified"}
    report = copy.deepcopy(report)
    report["fingerprint"]["models"][crafted] = {"commit": "e" * 40, "state": "verified"}
    rows, _ = compare.compare(report, other)
    text = compare.render(("a", "b"), rows, [])
    assert "\x1b" not in text and "\\x1b[2J\\x1b[31morg/x; rm -rf ~ $(reboot) files" in text
    assert [d.fix for d in rows] == ["`athena models verify` on B"]
    assert not any("rm -rf" in (d.fix or "") or "reboot" in (d.fix or "") for d in rows)
    report["fingerprint"]["models"].pop(crafted)
    rows, _ = compare.compare(report, other)
    assert rows[0].fix == "`athena models sync` on both after aligning models.lock"
    assert "\x1b" not in json.dumps(compare.to_dict(("a", "b"), rows, []), ensure_ascii=False)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("models", {"org/tiny": {"commit": COMMIT, "state": "fine"}}, "state"),
        ("models", {"org/tiny": {"commit": 7, "state": "verified"}}, "commit"),
        ("models", {"org/tiny": {"commit": COMMIT}}, "has no state"),
        ("models", {"org/tiny": {"commit": COMMIT, "state": "verified", "x": 1}}, "has x"),
        ("models", None, "fingerprint.models is null"),
        ("action_head", {"sha256": "abc"}, "sha256"),
        ("models_lock_sha256", "nope", "models_lock_sha256"),
    ],
)
def test_compare_refuses_a_report_with_bad_model_fields(
    report: dict[str, Any], field: str, value: Any, says: str
) -> None:
    bad = copy.deepcopy(report)
    bad["fingerprint"][field] = value
    with pytest.raises(compare.CompareError, match="cannot compare") as caught:
        compare.check_report(bad, "b.json")
    assert says in str(caught.value)
