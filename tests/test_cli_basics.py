"""The `athena` console script: --help and --version work, bad usage exits non-zero."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import athena

ATHENA = Path(sys.executable).parent / "athena"


def athena_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ATHENA), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_version_is_the_package_version() -> None:
    result = athena_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"athena {athena.__version__}"


SUBCOMMANDS = [
    "generate",
    "encode",
    "tiny-model",
    "inspect",
    "convert",
    "doctor",
    "audit",
    "train-head",
    "models",
]


def test_help_lists_the_subcommands() -> None:
    result = athena_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: athena ")
    # argparse lists each subcommand on its own line, indented by 4, under COMMAND.
    listed = re.findall(r"^    ([a-z][a-z-]*)(?:\s|$)", result.stdout, flags=re.M)
    assert listed == SUBCOMMANDS


def test_unknown_subcommand_is_a_usage_error() -> None:
    result = athena_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr


def test_versions_module_reports_installed_packages() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "athena.versions"], capture_output=True, text=True, check=True
    )
    assert f"athena           {athena.__version__}" in result.stdout
    assert result.stdout.startswith(f"python {sys.version.split()[0]}")
