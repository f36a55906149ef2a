"""The guide collector (docs/conftest.py) fails on a broken block and never skips silently.

Each test copies the collector into a temporary folder with a few Markdown pages and runs
pytest on them in a subprocess, then reads the outcome per block from a JUnit XML report.
The working page's run is shared by the tests that only read its outcome.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

DOCS = Path(__file__).parent

GOOD = """\
# A page that works

```python
answer = 41
```

Output is shown, not run:

```text
Traceback: this is not Python
```

```bash
exit 1
```

<!-- skip-on-linux: needs Metal (mx.gpu) -->
```python
raise RuntimeError("a Mac-only block ran on Linux")
```

```python
# requires: macos (sysctl is macOS only)
raise RuntimeError("a Mac-only block ran on Linux")
```

```python
answer += 1  # the namespace is shared with the first block
assert answer == 42
from pathlib import Path
Path("written.txt").write_text("relative paths land in a temporary folder")
```
"""

BROKEN = """\
# A page with a broken example

```python
y = 1
```

```python
z = y + 1
assert z == 3, "z is not 3"
```

```python
print("never reached")
```
"""

SYNTAX = """\
# A page with a typo

Text.

```python
def f(:
    pass
```
"""

NO_CODE = """\
# A page whose examples are all shell

```bash
mlx_lm.generate --help
```
"""

PROSE = """\
<!-- prose-only -->
# An index: no code on purpose
"""

TYPO = """\
<!-- skip-on-linx: needs Metal -->
```python
pass
```
"""


def run_pytest(folder: Path, *args: str) -> tuple[int, str, dict[str, tuple[str, str]]]:
    """pytest on `folder` in a subprocess: (exit code, output, node name -> (outcome, message))."""
    shutil.copy(DOCS / "conftest.py", folder / "conftest.py")
    # Hypothesis's plugin is most of a child pytest's start-up (~1.3 s of ~2 s) and the
    # collector does not use it.
    (folder / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider -p no:hypothesispytest\n"
    )
    report = folder / "report.xml"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--strict-markers",
            "--strict-config",
            "-rA",
            f"--junitxml={report}",
            "--rootdir",
            str(folder),
            "-c",
            str(folder / "pytest.ini"),
            *args,
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes: dict[str, tuple[str, str]] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            name = f"{case.get('classname')}::{case.get('name')}"
            outcome, message = "passed", ""
            for child in case:
                if child.tag in ("failure", "error", "skipped"):
                    outcome, message = child.tag, child.get("message") or child.text or ""
            outcomes[name] = (outcome, message)
    return completed.returncode, completed.stdout + completed.stderr, outcomes


def write_pages(folder: Path, **pages: str) -> None:
    for name, text in pages.items():
        (folder / f"{name}.md").write_text(textwrap.dedent(text))


def test_a_broken_block_fails_and_names_its_page_and_line(tmp_path: Path) -> None:
    write_pages(tmp_path, good=GOOD, broken=BROKEN, syntax=SYNTAX)
    code, output, outcomes = run_pytest(tmp_path, ".")
    assert code == 1, output
    # The failing line of the page, the first line of its block, and the error itself.
    assert "broken.md:9: the python block starting at line 8 failed" in output
    assert "AssertionError: z is not 3" in output
    assert "syntax.md:6: the python block starting at line 6 failed" in output
    assert "SyntaxError" in output
    assert outcomes["broken.md::line 4"][0] == "passed"
    assert outcomes["broken.md::line 8"][0] == "failure"
    # What follows a failed block is reported, with the block to blame, never run silently.
    outcome, message = outcomes["broken.md::line 13"]
    assert outcome == "skipped" and "broken.md:8 failed" in message, outcomes
    assert "never reached" not in output


@pytest.fixture(scope="module")
def good_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, int, str, dict[str, tuple[str, str]]]:
    """pytest on the working page and a prose-only page, run once for the tests that read it."""
    folder = tmp_path_factory.mktemp("good")
    write_pages(folder, good=GOOD, prose=PROSE)
    return (folder, *run_pytest(folder, "."))


def test_the_working_page_passes_and_shares_one_namespace(
    good_run: tuple[Path, int, str, dict[str, tuple[str, str]]],
) -> None:
    folder, code, output, outcomes = good_run
    assert code == 0, output
    assert outcomes["good.md::line 4"][0] == "passed"
    assert outcomes["good.md::line 28"][0] == "passed"
    # Only python blocks are items: the text and bash blocks are not, the prose page has none.
    assert sorted(outcomes) == [f"good.md::line {n}" for n in (19, 23, 28, 4)]
    assert not (folder / "written.txt").exists(), "blocks must run in a temporary folder"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the Linux skips")
def test_platform_blocks_are_skipped_with_their_reason_on_linux(
    good_run: tuple[Path, int, str, dict[str, tuple[str, str]]],
) -> None:
    _, code, output, outcomes = good_run
    assert code == 0, output
    assert outcomes["good.md::line 19"] == ("skipped", "skip-on-linux: needs Metal (mx.gpu)")
    assert outcomes["good.md::line 23"] == ("skipped", "requires macos: sysctl is macOS only")
    # -rA lists each skip with the page line it comes from.
    assert "SKIPPED [1] good.md:19: skip-on-linux: needs Metal (mx.gpu)" in output


def test_one_block_alone_runs_the_blocks_before_it(tmp_path: Path) -> None:
    write_pages(tmp_path, good=GOOD)
    code, output, outcomes = run_pytest(tmp_path, "good.md::line 28")
    assert code == 0, output
    assert list(outcomes) == ["good.md::line 28"]


def test_a_page_without_a_runnable_block_fails_unless_prose_only(tmp_path: Path) -> None:
    write_pages(tmp_path, no_code=NO_CODE, prose=PROSE)
    code, output, outcomes = run_pytest(tmp_path, ".")
    assert code == 1, output
    outcome, message = outcomes["no_code.md::has a runnable block"]
    assert outcome == "failure" and "no ```python block runs on every platform" in message


def test_a_misspelt_skip_marker_is_an_error_not_a_skip(tmp_path: Path) -> None:
    write_pages(tmp_path, typo=TYPO)
    code, output, _ = run_pytest(tmp_path, ".")
    assert code == 2, output  # pytest's "errors during collection"
    assert "typo.md:1: unknown marker <!-- skip-on-linx -->" in output


METAL = """\
# A page with a Metal-only block

<!-- skip-without-metal: needs Metal (mx.gpu) -->
```python
raise RuntimeError("a Metal-only block ran without Metal")
```
"""


@pytest.mark.parametrize(
    ("platform", "device", "expected"),
    [
        ("linux", "", "skip-without-metal: needs Metal (mx.gpu)"),
        (
            "darwin",
            "cpu",
            "skip-without-metal: needs Metal (mx.gpu) "
            "(ATHENA_MLX_DEVICE=cpu: no working Metal here)",
        ),
        ("darwin", "", None),
    ],
    ids=["linux", "hosted-mac-simulated", "mac-with-metal-simulated"],
)
def test_metal_blocks_skip_where_metal_does_not_work(
    monkeypatch: pytest.MonkeyPatch, platform: str, device: str, expected: str | None
) -> None:
    """Simulated platforms (sys.platform and the variable CI's macOS VMs set): a real Mac with
    Metal runs the block; Linux and a hosted macOS VM skip it with the reason."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_collector", DOCS / "conftest.py")
    assert spec is not None and spec.loader is not None
    collector = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, collector)  # its dataclass looks itself up
    spec.loader.exec_module(collector)
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("ATHENA_MLX_DEVICE", device)
    (block,) = collector.parse_blocks(METAL, "metal.md")
    assert block.skip_reason == expected and block.platform_only
