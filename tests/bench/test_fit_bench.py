"""bench/fit.py on a shape like OLMoE-1B-7B's (64 experts, 8 per token, its vocabulary, six
sparse shards) but small: the real-shape group's machinery, end to end, without 28 GB.

The memory figures are asserted (they are what the preflight promises, and no clock is
involved): the resident estimate within 0.8-1.25x of the child's peak RssAnon. The child's
memory cap is checked by giving it one it must pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import fit  # noqa: E402
from bench.common import Results, WorkerError  # noqa: E402

pytestmark = [pytest.mark.mlx, pytest.mark.slow]


@pytest.fixture(scope="module")
def like(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Results, dict, Path]]:
    pytest.importorskip("mlx_lm")
    results, work = Results(), tmp_path_factory.mktemp("fit")
    with pytest.MonkeyPatch.context() as patch:
        # This module's own cached bandwidth: a test in another xdist worker that measures it
        # at the same time would otherwise replace the file between measure and inspect.
        patch.setenv("ATHENA_CACHE_DIR", str(work / "cache"))
        out = fit.measure(results, work, shape="like", only=["mlx-q4", "mlx-float32"])
        yield results, out, work / "olmoe-like-shape"


def test_like_shape_estimates_match_the_measured_anonymous_peak(
    like: tuple[Results, dict, Path],
) -> None:
    results, out, _ = like
    assert set(out["options"]) == {"mlx-q4", "mlx-float32"}
    for name, row in out["options"].items():
        measured = row["measured"]
        ratio = row["estimate"]["resident"] / measured["max_rss_anon"]
        assert 0.8 <= ratio <= 1.25, (name, row)
        assert measured["vm_hwm"] >= measured["max_rss_anon"]
        assert measured["decode_tokens_per_s"] > 0
        assert row["decode_ceiling"]["source"] in ("measured", "estimated")
        figure = results.get(f"fit.like.{name}.off_by")
        assert figure is not None and figure["passed"] is True


@pytest.mark.parametrize(
    ("name", "bits"), [("mlx-q4", ["--quantize-bits", "4"]), ("mlx-float32", [])]
)
def test_decode_share_is_of_the_ceiling_athena_inspect_prints(
    like: tuple[Results, dict, Path], name: str, bits: list[str]
) -> None:
    """The share's ceiling is the one `athena inspect --json` reports for that option here
    (the child shares this run's ATHENA_CACHE_DIR, so the same cached bandwidth)."""
    results, out, folder = like
    athena = str(Path(sys.executable).parent / "athena")
    command = [athena, "inspect", str(folder), "--json", "--backend", "mlx", *bits]
    printed = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    ceiling = json.loads(printed.stdout)["this_load"]["decode_ceiling"]
    share = results.get(f"fit.like.{name}.decode_share_of_ceiling")
    assert (
        share is not None and share["label"] == f"decode / inspect's ceiling, {name} (like shape)"
    )
    assert share["context"]["ceiling_tokens_per_s"] == ceiling["tokens_per_second"]
    assert share["context"]["bytes_per_token"] == ceiling["bytes_per_token"]
    rate = out["options"][name]["measured"]["decode_tokens_per_s"]
    assert share["values"] == [pytest.approx(rate / ceiling["tokens_per_second"])]
    assert share["median"] > 0  # not < 1: mlx-float32 decodes near its ceiling on some CPUs


def test_a_child_past_its_memory_cap_is_killed(tmp_path: Path) -> None:
    pytest.importorskip("mlx_lm")
    from athena.checkpoints import write_sparse_olmoe

    folder = write_sparse_olmoe(tmp_path / "like", fit.LIKE_SHAPE, shards=6)
    spec = {"model": str(folder), "backend": "mlx", "dtype": "float32", "quantize_bits": None}
    with pytest.raises(WorkerError, match=r"killed: anonymous memory .* passed the cap"):
        fit.run_capped(spec, cap=64 * 2**20)
