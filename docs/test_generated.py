"""The measured numbers the guides quote are the scripts' output, and the index is complete.

- each generated table exists with its JSON (numbers + machine), and the guide quotes it
  verbatim between `<!-- generated:NAME.md -->` markers;
- docs/README.md maps every ledger item MLX-002..MLX-007 to an existing guide, and links every
  guide and reference page; every relative link in docs/ resolves; every guide links the
  official docs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))
from quotes import quoted

DOCS = Path(__file__).parent
GENERATED = DOCS / "generated"
# generated table -> the guide that quotes it
QUOTED = {
    "quantization.md": "quantization.md",
    "batch_size.md": "batch-size.md",
    "grad_checkpoint.md": "gradient-checkpointing.md",
}
LEDGER = {
    "MLX-002": "lazy-evaluation.md",
    "MLX-003": "unified-memory.md",
    "MLX-004": "quantization.md",
    "MLX-005": "batch-size.md",
    "MLX-006": "gradient-checkpointing.md",
    "MLX-007": "memory-wiring.md",
    "#13": "training-head.md",  # issue 13's guide (not a ledger item)
}
# Reference pages (no ledger item): README.md links them here.
REFERENCE = ["doctor.md", "environment.md", "preflight.md"]
GUIDES = sorted(p.name for p in DOCS.glob("*.md") if p.name not in ("README.md", *REFERENCE))
LINK = re.compile(r"\]\(([^)\s]+)\)")
OFFICIAL = ("https://ml-explore.github.io/mlx/", "https://github.com/ml-explore/mlx-lm")


@pytest.mark.parametrize("name", sorted(QUOTED))
def test_the_guide_quotes_the_generated_table_verbatim(name: str) -> None:
    table = GENERATED / name
    assert table.is_file(), f"{table} is missing: run docs/scripts/ to generate it"
    quote = quoted((DOCS / QUOTED[name]).read_text(), name)
    assert quote is not None, f"{QUOTED[name]} has no <!-- generated:{name} --> section"
    assert quote == table.read_text(), (
        f"{QUOTED[name]} quotes an old {name}: rerun the script, which refreshes the quote"
    )


@pytest.mark.parametrize("name", sorted(QUOTED))
def test_the_numbers_name_their_machine(name: str) -> None:
    data = json.loads((GENERATED / name).with_suffix(".json").read_text())
    machine = data["machine"]
    for key in ("os", "cpu", "logical_cores", "ram_gib", "python", "measured_at"):
        assert machine[key], f"{name}: machine.{key} is empty"
    assert machine["packages"]["mlx"] and machine["packages"]["mlx-lm"]
    text = (GENERATED / name).read_text()
    assert machine["cpu"] in text and "Regenerate: `python docs/scripts/" in text


def test_the_batch_size_plot_is_a_png_the_guide_shows() -> None:
    png = GENERATED / "batch_size.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](generated/batch_size.png)" in (DOCS / "batch-size.md").read_text()


def test_the_index_maps_each_ledger_item_to_its_guide() -> None:
    index = (DOCS / "README.md").read_text()
    for item, guide in LEDGER.items():
        rows = [line for line in index.splitlines() if line.startswith(f"| {item} |")]
        assert len(rows) == 1, f"{item}: expected one row in docs/README.md, found {len(rows)}"
        assert f"]({guide})" in rows[0], f"{item} should link {guide}"
        assert f"({item})" in (DOCS / guide).read_text().splitlines()[0]
    assert sorted(LEDGER.values()) == GUIDES, "a guide is missing from the ledger map"


@pytest.mark.parametrize("page", REFERENCE)
def test_the_index_links_each_reference_page(page: str) -> None:
    assert (DOCS / page).is_file()
    assert f"]({page})" in (DOCS / "README.md").read_text(), f"docs/README.md does not link {page}"


@pytest.mark.parametrize("page", ["../README.md", "README.md", *GUIDES, *REFERENCE])
def test_relative_links_resolve(page: str) -> None:
    source = DOCS / page
    for target in LINK.findall(source.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        path = (source.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"docs/{page} links {target}, which does not exist"


@pytest.mark.parametrize("page", GUIDES)
def test_each_guide_links_the_official_docs_for_depth(page: str) -> None:
    text = (DOCS / page).read_text()
    assert any(url in text for url in OFFICIAL), f"docs/{page} links no official MLX docs"
