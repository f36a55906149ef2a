"""The committed reference runs: one per kind of machine, each linked from bench/README.md.

bench/results/ holds only `reference-<machine kind>.{json,md,png}`; every other run goes to the
ignored bench/results/runs/. Each reference's .md is what bench/report.py makes of its JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.machine import machine_kind  # noqa: E402
from bench.run import RESULTS, RUNS, main, parse_args, save_reference  # noqa: E402

REFERENCES = sorted(RESULTS.glob("reference-*.json"))
README = ROOT / "bench" / "README.md"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_results_hold_only_reference_runs() -> None:
    assert REFERENCES, "bench/results/ has no reference-*.json"
    files = [p for p in RESULTS.iterdir() if p.is_file()]
    stems = {p.with_suffix("").name for p in REFERENCES}
    strays = [p.name for p in files if p.with_suffix("").name not in stems]
    assert strays == [], "runs go to bench/results/runs/; keep one reference per machine kind"


@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.name)
def test_a_reference_is_a_full_run_named_for_its_machine(path: Path) -> None:
    run = load(path)
    assert run["mode"] == "full"
    assert path.name == f"reference-{machine_kind(run['machine'])}.json"
    assert path.with_suffix(".md").read_text() == report.markdown(run)
    assert path.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_links_every_reference() -> None:
    links = set(re.findall(r"\(results/(reference-[^)]+)\.md\)", README.read_text()))
    assert links == {p.stem for p in REFERENCES}


def test_new_runs_go_to_an_ignored_folder() -> None:
    assert parse_args([]).out == RUNS
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    probe = RUNS / "20990101T000000Z-host.json"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(probe)], cwd=ROOT, check=False, capture_output=True
    )
    assert ignored.returncode == 0, "bench/results/runs/ must be in .gitignore"


def test_save_reference_replaces_the_one_for_its_machine(tmp_path: Path) -> None:
    run = load(REFERENCES[0])
    run["machine"].update(system="Darwin", arch="arm64", cpu_model="Apple M2 Pro", cores_logical=12)
    run_json = tmp_path / "runs" / "20990101T000000Z-mac.json"
    run_json.parent.mkdir()
    run_json.write_text(json.dumps(run))
    run_json.with_suffix(".md").write_text(report.markdown(run))
    results = tmp_path / "results"
    results.mkdir()
    name = "reference-macos-arm64-apple-m2-pro-12core.json"
    (results / name).write_text("{}")  # the previous reference of this kind, replaced

    saved = save_reference(run_json, results=results)

    assert saved == results / name
    assert load(saved) == run
    assert saved.with_suffix(".md").read_text() == report.markdown(run)
    assert not saved.with_suffix(".png").exists()  # the run had none


def test_save_reference_refuses_a_partial_run(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in (["--quick"], ["--only", "import"]):
        assert main([*flags, "--save-reference"]) == 2
        assert "--save-reference needs a full run" in capsys.readouterr().err
