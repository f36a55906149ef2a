"""README's Python example runs as written (its first ```python block), on this machine's
preferred backend: what a teammate pastes first must work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    match = re.search(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert match, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)  # it writes models/olmoe-tiny where it runs
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(match.group(1), str(README), "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] in ("mlx", "transformers")
    model = namespace["model"]
    assert model.is_loaded is False, "the example ends with unload()"
    assert namespace["vectors"].shape[0] == 2
