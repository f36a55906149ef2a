"""The guides run through Sybil (docs/conftest.py): a broken block fails at its page's line, a
marked block is skipped with its reason, a misspelt marker or a page with nothing that runs
is caught, and README's example runs the same way."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import GUIDES, guide_pages

PYTHON_FENCE = re.compile(r"^```python$", re.MULTILINE)
COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
SKIP = re.compile(r'^ skip: next if\((NO_METAL|NOT_MACOS), reason="[^"]+"\) $')


def page_problems(text: str) -> list[str]:
    """A skip comment Sybil would not read as ours, or no block that runs everywhere."""
    problems = [
        f"unknown skip marker <!--{c}-->"
        for c in COMMENT.findall(text)
        if "skip" in c and not SKIP.match(c)
    ]
    skipped = len(re.findall(r"<!-- skip: next .*-->\s*\n```python$", text, re.MULTILINE))
    if "<!-- prose-only -->" not in text and len(PYTHON_FENCE.findall(text)) <= skipped:
        problems.append("no ```python block runs everywhere; add one, or say <!-- prose-only -->")
    return problems


@pytest.mark.parametrize("page", guide_pages(), ids=lambda p: p.name)
def test_every_page_runs_a_block_and_spells_its_markers(page: Path) -> None:
    assert page_problems(page.read_text()) == []


def test_a_misspelt_marker_and_a_page_of_shell_only_are_caught() -> None:
    typo = '<!-- skip: next if(NO_METL, reason="Metal") -->\n```python\npass\n```\n'
    assert page_problems(typo)[0].startswith("unknown skip marker")
    assert page_problems("```bash\nexit 1\n```\n") == [
        "no ```python block runs everywhere; add one, or say <!-- prose-only -->"
    ]
    assert page_problems("<!-- prose-only -->\n# An index\n") == []


PAGE = """\
# A page

```python
answer = 41
```

<!-- skip: next if(NO_METAL, reason="needs Metal (mx.gpu)") -->
```python
raise RuntimeError("a Metal block ran without Metal")
```

```python
answer += 1  # one namespace per page
from pathlib import Path
Path("written.txt").write_text("in a temporary folder")
assert answer == 43, "answer is not 43"
```
"""


def test_a_broken_block_fails_at_its_line_and_a_marked_one_skips_with_its_reason(
    tmp_path: Path,
) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "page.md").write_text(textwrap.dedent(PAGE))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:hypothesispytest\n")
    env = {"ATHENA_MLX_DEVICE": "cpu"}  # no working Metal, on a Mac too
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", "page.md"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    out = completed.stdout
    assert completed.returncode == 1, out
    assert "1 failed, 2 passed, 1 skipped" in out  # the skip marker is an item too
    assert "SKIPPED [1] page.md:8: needs Metal (mx.gpu)" in out
    assert "page.md:16: AssertionError" in out and "answer is not 43" in out  # the page's own line
    assert not (tmp_path / "written.txt").exists()


def test_the_readme_example_runs_as_the_guides_do(capsys: pytest.CaptureFixture[str]) -> None:
    """README's ```python blocks, through the guides' Sybil (what a teammate pastes first)."""
    readme = guide_pages()[-1]
    document = GUIDES.parse(readme)
    GUIDES.setup(document.namespace)
    try:
        for example in document.examples():
            example.evaluate()
    finally:
        GUIDES.teardown(document.namespace)
    namespace: dict[str, Any] = document.namespace
    assert capsys.readouterr().out.splitlines()[0] in ("mlx", "transformers")
    assert namespace["model"].is_loaded is False, "the example ends with unload()"
    assert namespace["vectors"].shape[0] == 2
