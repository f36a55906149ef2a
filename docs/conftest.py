"""Run the guides: every ```python block of a docs/*.md page is a pytest item.

- The blocks of one page share one namespace and run in page order, so a page reads like a
  notebook. Running one block alone (`pytest "docs/x.md::line 40"`) runs the blocks before it
  first. Blocks run with the working directory set to a fresh temporary folder per page, so
  examples may write relative paths.
- A block that cannot run here is marked on the line just before its fence:
  `<!-- skip-on-linux: REASON -->`, or with a first line `# requires: macos`. A block that needs
  working Metal says `<!-- skip-without-metal: REASON -->`: it skips on Linux and on a Mac whose
  mlx runs on the CPU (`ATHENA_MLX_DEVICE=cpu`, as on CI's hosted macOS VMs, which have no
  working Metal).
  It is reported as skipped with that reason; a misspelt marker is an error, never a silent skip.
- ```text, ```console, ```bash (every fence other than python/py) are shown, not run.
- A page needs at least one block that runs on every platform, unless it says
  `<!-- prose-only -->`: otherwise the page fails, so a guide cannot quietly stop being tested.

Failures name the page and line (`docs/x.md:42`) and show the traceback inside the page.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RUNNABLE_LANGUAGES = ("python", "py", "python3")
PROSE_ONLY = "<!-- prose-only -->"
FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
# `<!-- name: reason -->` on its own line; the names the collector knows are below.
MARKER = re.compile(r"^\s*<!--\s*(?P<name>skip[\w-]*)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
REQUIRES = re.compile(r"^#\s*requires:\s*(?P<what>\w+)\s*(?:\((?P<reason>.*)\))?\s*$")
PLATFORMS = {"macos": "darwin", "linux": "linux"}

# The generated tables are quoted by the pages, not pages themselves.
collect_ignore = ["generated"]


@dataclass
class Block:
    """One fenced code block: `line` is the 1-based line of its first code line."""

    language: str
    code: str
    line: int
    skip_reason: str | None = None  # why it does not run on this platform
    platform_only: bool = False  # marked as running on one platform only


class DocsError(Exception):
    """A page is malformed (an unknown marker, an unclosed fence)."""


def _skip_reason(marker: str | None, code: str, page: str, fence_line: int) -> str | None:
    """Why a block does not run on this platform, or None when it runs."""
    if marker is not None:
        match = MARKER.match(marker)
        assert match is not None
        name, reason = match["name"], (match["reason"] or "").strip()
        if name not in ("skip-on-linux", "skip-without-metal"):
            raise DocsError(
                f"{page}:{fence_line - 1}: unknown marker <!-- {name} -->; the collector knows "
                "<!-- skip-on-linux: REASON -->, <!-- skip-without-metal: REASON --> (or a "
                "first line `# requires: macos`)"
            )
        if not reason:
            raise DocsError(f"{page}:{fence_line - 1}: <!-- {name} --> needs a reason")
        if sys.platform.startswith("linux"):
            return f"{name}: {reason}"
        if name == "skip-without-metal" and _mlx_on_cpu():
            return f"{name}: {reason} (ATHENA_MLX_DEVICE=cpu: no working Metal here)"
        return None
    first = code.splitlines()[0] if code else ""
    match = REQUIRES.match(first.strip())
    if match:
        what = match["what"].lower()
        if what not in PLATFORMS:
            raise DocsError(
                f"{page}:{fence_line + 1}: `# requires: {what}` is unknown; use one of "
                f"{', '.join(PLATFORMS)}"
            )
        if not sys.platform.startswith(PLATFORMS[what]):
            reason = match["reason"] or f"runs on {what} only"
            return f"requires {what}: {reason}"
    return None


def _mlx_on_cpu() -> bool:
    """This Mac's mlx is told to use the CPU: CI's hosted macOS VMs, whose Metal does not work."""
    return os.environ.get("ATHENA_MLX_DEVICE", "").strip().lower() == "cpu"


def parse_blocks(text: str, page: str) -> list[Block]:
    """Every fenced block of a Markdown page, with the skip reason of each runnable one."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence_line = index + 1
        fence, info = opening["fence"], opening["info"].strip()
        language = info.split()[0].lower() if info else ""
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"].startswith(fence[0] * len(fence))
                and not closing["info"].strip()
            ):
                break
            body.append(lines[index])
            index += 1
        else:
            raise DocsError(f"{page}:{fence_line}: the ``` fence opened here is never closed")
        index += 1
        code = "\n".join(body) + "\n"
        previous = _previous_nonblank(lines, fence_line - 1)
        marker = previous if previous is not None and MARKER.match(previous) else None
        block = Block(language, code, fence_line + 1)
        if language in RUNNABLE_LANGUAGES:
            block.skip_reason = _skip_reason(marker, code, page, fence_line)
            first = code.splitlines()[0].strip() if code.strip() else ""
            block.platform_only = marker is not None or REQUIRES.match(first) is not None
        elif marker is not None:
            raise DocsError(
                f"{page}:{fence_line - 1}: a skip marker before a ```{language} block, which "
                "is never run anyway; remove the marker"
            )
        blocks.append(block)
    return blocks


def _previous_nonblank(lines: list[str], fence_index: int) -> str | None:
    """The line just before the fence (0-based `fence_index`), skipping blank lines."""
    for candidate in reversed(lines[:fence_index]):
        if candidate.strip():
            return candidate
    return None


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.suffix == ".md":
        return MarkdownPage.from_parent(parent, path=file_path)
    return None


class MarkdownPage(pytest.File):
    """A Markdown page; its python blocks are its items, sharing `self.namespace`."""

    blocks: list[Block]
    namespace: dict[str, Any]
    done: dict[int, BaseException | None]
    workdir: Path | None

    def collect(self) -> Iterator[pytest.Item]:
        self.namespace = {"__name__": "__main__", "__file__": str(self.path)}
        self.done = {}
        self.workdir = None
        text = self.path.read_text(encoding="utf-8")
        try:
            self.blocks = [
                b for b in parse_blocks(text, self._page_name()) if b.language in RUNNABLE_LANGUAGES
            ]
        except DocsError as error:
            raise self.CollectError(str(error)) from None
        for block in self.blocks:
            yield MarkdownBlock.from_parent(self, name=f"line {block.line}", block=block)
        if PROSE_ONLY not in text and all(b.platform_only for b in self.blocks):
            yield UntestedPage.from_parent(self, name="has a runnable block")

    def _page_name(self) -> str:
        try:
            return str(self.path.relative_to(self.config.rootpath))
        except ValueError:
            return str(self.path)

    def enter_workdir(self) -> Path:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"docs-{self.path.stem}-"))
            self.config.add_cleanup(lambda: _remove_tree(self.workdir))
        return self.workdir

    def run_block(self, block: Block) -> None:
        """Run `block` in the page's namespace (blocks before it first, once each)."""
        for earlier in self._items_before(block):
            self._execute(earlier)
            if self.done[earlier.line] is not None:
                error = self.done[earlier.line]
                raise pytest.skip.Exception(
                    f"not run: the block at {self._page_name()}:{earlier.line} failed "
                    f"({type(error).__name__})",
                    _use_item_location=True,
                )
        self._execute(block)
        error = self.done[block.line]
        if error is not None:
            raise error

    def _items_before(self, block: Block) -> list[Block]:
        return [b for b in self.blocks if b.line < block.line and b.skip_reason is None]

    def _execute(self, block: Block) -> None:
        if block.line in self.done:
            return
        # Line numbers in tracebacks are the page's own: pad the code with the lines above it.
        source = "\n" * (block.line - 1) + block.code
        code = compile(source, str(self.path), "exec")
        cwd = os.getcwd()
        os.chdir(self.enter_workdir())
        try:
            exec(code, self.namespace)
        except BaseException as error:  # reported as this block's failure
            if isinstance(error, (KeyboardInterrupt, pytest.skip.Exception)):
                raise
            self.done[block.line] = error
            return
        finally:
            os.chdir(cwd)
        self.done[block.line] = None


def _remove_tree(path: Path | None) -> None:
    import shutil

    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


class MarkdownBlock(pytest.Item):
    """One ```python block of a page."""

    def __init__(self, *, block: Block, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = block

    def setup(self) -> None:
        if self.block.skip_reason is not None:
            # Reported at the page's line: `SKIPPED [1] docs/x.md:40: skip-on-linux: ...`.
            raise pytest.skip.Exception(self.block.skip_reason, _use_item_location=True)

    @property
    def page(self) -> MarkdownPage:
        assert isinstance(self.parent, MarkdownPage)
        return self.parent

    def runtest(self) -> None:
        self.page.run_block(self.block)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """`docs/x.md:42: the python block starting at line 40 failed`, then the page frames."""
        error = excinfo.value
        page = self.page._page_name()
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if frame.filename == str(self.path)
        ]
        line = frames[-1].lineno if frames else self.block.line
        if isinstance(error, SyntaxError) and error.filename == str(self.path):
            line = error.lineno or line
        lines = [f"{page}:{line}: the python block starting at line {self.block.line} failed"]
        lines += traceback.format_list(frames) if frames else []
        lines += traceback.format_exception_only(type(error), error)
        return "".join(part if part.endswith("\n") else part + "\n" for part in lines)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.block.line - 1, f"python block at line {self.block.line}"


class UntestedPage(pytest.Item):
    """Fails: the page has no block that runs everywhere and is not marked prose-only."""

    def runtest(self) -> None:
        assert isinstance(self.parent, MarkdownPage)
        raise DocsError(
            f"{self.parent._page_name()}: no ```python block runs on every platform; add one, "
            f"or mark the page {PROSE_ONLY} if it has no code"
        )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        return str(excinfo.value)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "page has a runnable block"
