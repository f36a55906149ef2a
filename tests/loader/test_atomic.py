"""athena.atomic.replacing: a file is written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from athena.atomic import replacing


def test_the_target_is_replaced_only_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "data.json"
    target.write_text("old")
    with replacing(target) as temporary:
        temporary.write_text("new")
        assert temporary.parent == tmp_path and temporary != target
        assert target.read_text() == "old", "the target changed before the block ended"
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.json"]


def test_an_error_in_the_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "head.safetensors"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), replacing(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.safetensors"]


def test_the_temporary_name_matches_no_glob_of_the_target_kind(tmp_path: Path) -> None:
    target = tmp_path / "features.safetensors"
    with replacing(target) as temporary:
        temporary.write_text("x")
        assert list(tmp_path.glob("*.safetensors")) == []
