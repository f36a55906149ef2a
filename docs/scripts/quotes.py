"""Verbatim quotes of generated text in Markdown pages, between `<!-- generated:NAME -->` and
`<!-- /generated:NAME -->`.

The guides in docs/ quote the tables docs/scripts/ write, and bench/README.md quotes the
reference benchmark run: the script that writes the numbers refreshes the quote, and a test
checks that the quote is still what the numbers say. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path


def quote_pattern(name: str) -> re.Pattern[str]:
    """The quoted section for `name`: group 1 the opening marker, 2 the text, 3 the closing one."""
    escaped = re.escape(name)
    return re.compile(
        rf"(<!-- generated:{escaped} -->\n)(.*?)(<!-- /generated:{escaped} -->)", flags=re.DOTALL
    )


def quoted(page_text: str, name: str) -> str | None:
    """The text `page_text` quotes for `name`, or None when it has no such section."""
    match = quote_pattern(name).search(page_text)
    return match.group(2) if match else None


def quoted_names(page_text: str) -> list[str]:
    """The names of every quoted section in `page_text`, in page order."""
    return re.findall(r"^<!-- generated:(\S+) -->$", page_text, flags=re.MULTILINE)


def refresh_quote(page: Path, name: str, text: str) -> bool:
    """Replace the quoted copy of `name` in `page` by `text`; False when the page has none."""
    original = page.read_text()
    pattern = quote_pattern(name)
    if not pattern.search(original):
        return False
    updated = pattern.sub(lambda m: m.group(1) + text + m.group(3), original)
    if updated != original:
        page.write_text(updated)
    return True
