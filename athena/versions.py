"""What a session runs on: `python -m athena.versions` prints Python, the platform and the
installed versions of the packages athena cares about (none of them is imported)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

PACKAGES = ("athena", "mlx", "mlx-metal", "mlx-cpu", "mlx-lm", "transformers", "torch",
            "tokenizers", "safetensors", "huggingface-hub", "numpy")  # fmt: skip


def installed_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Distribution name -> installed version, or None where it is not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def describe() -> str:
    lines = [f"python {platform.python_version()} ({sys.executable}) on {platform.platform()}"]
    for name, version in installed_versions().items():
        lines.append(f"  {name:16} {version or '-'}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe())
