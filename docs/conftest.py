"""Run the guides with Sybil: every ```python block of a docs/*.md page is a pytest item.

Sybil, not pytest-markdown-docs: Sybil's blocks of one page share one namespace by default (a
guide reads like a notebook; pytest-markdown-docs needs `continuation` on every fence), and
its `<!-- skip: next if(CONDITION, reason=...) -->` reports a skipped block with its reason.

- The blocks of a page run in order, in one namespace, in a fresh temporary working folder.
- A block that needs working Metal follows `<!-- skip: next if(NO_METAL, reason="...") -->`
  (Linux, and a Mac whose mlx runs on the CPU, ATHENA_MLX_DEVICE=cpu: CI's macOS VMs); one
  that needs macOS, `if(NOT_MACOS, ...)`. docs/test_collector.py checks every page's markers
  and that each page has a block that runs everywhere, unless it says `<!-- prose-only -->`.
- ```text, ```console and ```bash blocks are shown, not run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

# The generated tables are quoted by the pages, not pages themselves.
collect_ignore = ["generated"]


def enter_workdir(namespace: dict[str, Any]) -> None:
    """Before a page: the names its skip conditions use, and a fresh working folder."""
    on_mac = sys.platform == "darwin"
    namespace["NOT_MACOS"] = not on_mac
    namespace["NO_METAL"] = not on_mac or os.environ.get("ATHENA_MLX_DEVICE", "") == "cpu"
    namespace["__name__"] = "__main__"
    namespace["_cwd"] = os.getcwd()
    os.chdir(namespace.setdefault("_workdir", tempfile.mkdtemp(prefix="docs-")))


def leave_workdir(namespace: dict[str, Any]) -> None:
    os.chdir(namespace["_cwd"])
    shutil.rmtree(namespace["_workdir"], ignore_errors=True)


GUIDES = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["*.md"],
    excludes=["generated/*"],
    setup=enter_workdir,
    teardown=leave_workdir,
)
pytest_collect_file = GUIDES.pytest()


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """`pytest docs -n 2`: a page's blocks share one namespace, so they go to one worker."""
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "loadfile"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skipped block is reported at its page's line (`docs/x.md:63: REASON`), not unittest's."""
    report = (yield).get_result()
    example = getattr(item, "example", None)
    if report.skipped and example is not None and isinstance(report.longrepr, tuple):
        report.longrepr = (item.nodeid.split("::")[0], example.line, report.longrepr[2])


def guide_pages() -> list[Path]:
    """Every page Sybil runs here, and README.md, which runs the same way."""
    return [*sorted(Path(__file__).parent.glob("*.md")), Path(__file__).parents[1] / "README.md"]
