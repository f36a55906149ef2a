"""Issue #29 item 3: a converted folder carries its provenance (`athena-provenance.json`):
where it came from (a local folder's files' hashes, or a hub id and the commit of its cached
snapshot), the recipe, the versions and the output files' {size, sha256}; `athena inspect`
shows it, and which files changed since, escaped and bounded (the file can be crafted)."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

import pytest

from athena.cli import main

FILE = "athena-provenance.json"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hashes(folder: Path) -> dict[str, dict[str, object]]:
    """{name: {size, sha256}} of the folder's files, computed here in one read each."""
    out = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name != FILE:
            data = path.read_bytes()
            out[path.name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


@pytest.fixture(scope="module")
def converted(tiny_olmoe: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mlx_lm")
    out = tmp_path_factory.mktemp("provenance") / "olmoe-tiny-8bit"
    assert main(["convert", str(tiny_olmoe), str(out), "--bits", "8", "--group-size", "32"]) == 0
    return out


@pytest.mark.mlx
def test_convert_records_source_hashes_recipe_versions_and_output_hashes(
    converted: Path, tiny_olmoe: Path
) -> None:
    record = json.loads((converted / FILE).read_text())
    assert record["schema"] == "athena-provenance/1"
    assert record["source"] == {"folder": str(tiny_olmoe.resolve()), "files": _hashes(tiny_olmoe)}
    assert record["recipe"] == {"bits": 8, "group_size": 32, "router_bits": 8}
    assert record["versions"] == {n: metadata.version(n) for n in ("athena", "mlx", "mlx-lm")}
    assert record["files"] == _hashes(converted)
    assert "model.safetensors" in record["files"] and "config.json" in record["files"]


@pytest.mark.mlx
def test_inspect_shows_the_provenance_and_the_files_changed_since(
    converted: Path, tiny_olmoe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(converted), "--context", "0"]) == 0
    text = capsys.readouterr().out
    assert "made by      athena convert (athena " in text
    assert ": 8-bit, group 32, router 8-bit\n" in text
    assert f"from         {tiny_olmoe.resolve()} (6 files hashed)\n" in text
    files = len(_hashes(converted))
    assert f"files        {files} file(s) as written" in text

    tampered = Path(shutil.copytree(converted, tmp_path / "tampered"))
    with (tampered / "model.safetensors").open("ab") as f:
        f.write(b"\0" * 8)  # still a loadable file: only its size tells
    config = (tampered / "config.json").read_bytes()
    (tampered / "config.json").write_bytes(config.replace(b'"vocab_size"', b'"vocab_sizE"', 1))
    (tampered / "tokenizer.json").unlink()
    main(["inspect", str(tampered), "--json", "--context", "0"])
    data = json.loads(capsys.readouterr().out)
    assert data["provenance"]["changed"] == [
        "config.json (sha256)",
        "model.safetensors (size)",
        "tokenizer.json (missing)",
    ]
    assert data["provenance"]["recipe"]["bits"] == 8
    main(["inspect", str(tampered), "--context", "0"])
    assert f"files        3 of {files} file(s) CHANGED since: config.json (sha256), " in (
        capsys.readouterr().out
    )


@pytest.mark.mlx
def test_a_hub_source_records_the_commit_of_its_cached_snapshot(
    tiny_olmoe: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("mlx_lm")
    repo = tmp_path / "hub" / "models--org--olmoe-tiny"
    shutil.copytree(tiny_olmoe, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "converted"
    assert main(["convert", "org/olmoe-tiny", str(out)]) == 0
    record = json.loads((out / FILE).read_text())
    assert record["source"] == {"hub_id": "org/olmoe-tiny", "commit": COMMIT}
    assert record["files"] == _hashes(out)
    capsys.readouterr()
    assert main(["inspect", str(out), "--context", "0"]) == 0
    assert f"from         org/olmoe-tiny at commit {COMMIT}\n" in capsys.readouterr().out


def test_a_crafted_provenance_is_shown_escaped_and_bounded(
    tiny_olmoe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path(shutil.copytree(tiny_olmoe, tmp_path / "crafted"))
    (tmp_path / "outside.txt").write_text("secret")
    crafted = {
        "schema": "athena-provenance/1",
        "made_by": "\x1b[2Jathena convert",
        "source": {"hub_id": "org/x\nFAKE line", "commit": "c" * 500},
        "recipe": {"bits": 4, "group_size": 64, "router_bits": 8},
        "versions": {"athena": "\x07"},
        "files": {"../outside.txt": {"size": 6}, "config.json": "x", "a\0b": {}, "n" * 5000: {}},
    }
    (folder / FILE).write_text(json.dumps(crafted))
    assert main(["inspect", str(folder), "--context", "0"]) == 0
    text = capsys.readouterr().out
    assert "\x1b" not in text and "\x07" not in text and "\nFAKE" not in text
    assert "made by      \\x1b[2Jathena convert (athena \\x07)" in text
    assert f"from         org/x\\nFAKE line at commit {'c' * 174}...\n" in text  # cut at 200
    assert "../outside.txt (not a file of this folder), config.json (not a file" in text
    main(["inspect", str(folder), "--json", "--context", "0"])
    changed = json.loads(capsys.readouterr().out)["provenance"]["changed"]
    assert changed == [f"{name} (not a file of this folder)" for name in crafted["files"]]

    (folder / FILE).write_bytes(b"{" + b" " * (1 << 20) + b"}")
    assert main(["inspect", str(folder), "--context", "0"]) == 0
    assert (
        f"provenance   {FILE} is unreadable (larger than 1048576 bytes)\n"
        in capsys.readouterr().out
    )
    (folder / FILE).write_bytes(b"[" * 100_000)  # json.loads would raise RecursionError
    assert main(["inspect", str(folder), "--context", "0"]) == 0
    assert f"{FILE} is unreadable (is nested too deeply to read)" in capsys.readouterr().out
    (folder / FILE).write_bytes(b"\xff\xfe not json")
    main(["inspect", str(folder), "--json", "--context", "0"])
    problem = json.loads(capsys.readouterr().out)["provenance"]["problem"]
    assert problem.startswith(f"{FILE} is unreadable (")
