"""uv.lock: in sync with pyproject, readable by the flake's uv and the newest, CUDA-free on Macs.

Everything here asks uv itself (its per-platform `uv tree`), never a hand-written resolver.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from athena.doctor.audit import cuda_reason

from .conftest import ROOT, require_tool, run

DARWIN_MARKER = "sys_platform == 'darwin' and platform_machine == 'arm64'"
# Three uv generations read the lock: the oldest it declares (pyproject's required-version,
# README's "any uv from 0.9.7": nixos-25.11's first uv, Homebrew's and pip's older ones), the
# flake's, and the newest, pinned in .ci/run and the CI workflow.
# The flake's nixos-26.05 branched off on 2026-05-24 with uv 0.11.16 (nixpkgs master went
# 0.11.15 -> 0.11.16 on 2026-05-23 and took 0.11.17, #525656, only on 2026-05-29); a release
# branch keeps its minor series (master moved to 0.12.0 on 2026-07-29, #547024), so the pinned
# rev (2026-08-20) ships 0.11.16 or a later 0.11.x backport. Its exact patch could not be read
# here (no github.com: `nix eval github:NixOS/nixpkgs/<rev>#uv.version` would say); the
# branch-off release is the oldest it can be.
REQUIRED_UV = "0.9.7"
FLAKE_UV = "0.11.16"
NEWEST_UV = "0.13.9"


def tree_packages(*args: str) -> dict[str, str]:
    """name -> version of every package in `uv tree --locked ARGS` (uv's per-platform view)."""
    uv = require_tool("uv", "pip install uv")
    out = run(uv, "tree", "--locked", "--no-dedupe", *args)
    packages = {}
    for match in re.finditer(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])? v(\S+)", out):
        packages[match.group(1).lower()] = match.group(2)
    return packages


def cuda_packages(packages: dict[str, str]) -> list[str]:
    """The CUDA-specific ones, by the audit's own patterns (athena.doctor.audit)."""
    return sorted(
        f"{name} {version}" for name, version in packages.items() if cuda_reason(name, version)
    )


def test_lock_matches_pyproject() -> None:
    run(require_tool("uv", "pip install uv"), "lock", "--check")


def test_mac_view_of_every_group_has_mlx_and_no_cuda() -> None:
    mac = tree_packages("--python-platform", "aarch64-apple-darwin", "--all-groups")
    assert {"mlx", "mlx-metal", "mlx-lm", "torch", "transformers"} <= mac.keys()
    assert cuda_packages(mac) == []


def test_linux_default_view_has_no_cuda_and_no_mlx() -> None:
    linux = tree_packages("--python-platform", "x86_64-unknown-linux-gnu")
    assert cuda_packages(linux) == []
    assert "mlx" not in linux
    assert "torch" not in linux, "torch must stay out of the default groups (README says so)"


def test_linux_mlx_cpu_group_brings_the_cpu_build() -> None:
    linux = tree_packages("--python-platform", "x86_64-unknown-linux-gnu", "--group", "mlx-cpu")
    assert {"mlx", "mlx-cpu", "mlx-lm"} <= linux.keys()
    assert "mlx-metal" not in linux


def test_linux_torch_group_is_pypis_cuda_build() -> None:
    """What README warns about: on Linux x86_64 PyPI's torch pulls nvidia-* and triton."""
    linux = tree_packages("--python-platform", "x86_64-unknown-linux-gnu", "--group", "torch")
    offenders = cuda_packages(linux)
    assert "triton" in {o.split()[0] for o in offenders}
    assert any(o.startswith("nvidia-") for o in offenders)


def test_mlx_dependencies_carry_the_darwin_markers() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    deps = {re.split(r"[<>=;\[ ]", d, maxsplit=1)[0]: d for d in project["project"]["dependencies"]}
    for name in ("mlx", "mlx-lm"):
        assert deps[name].endswith(f"; {DARWIN_MARKER}"), deps[name]
    uv = project["tool"]["uv"]
    assert DARWIN_MARKER in uv["environments"]
    assert DARWIN_MARKER in uv["required-environments"]
    assert uv["required-version"] == f">={REQUIRED_UV}"
    assert "torch" not in uv["default-groups"]


@pytest.mark.slow
@pytest.mark.network  # uvx may download that uv
@pytest.mark.parametrize("version", [REQUIRED_UV, FLAKE_UV, NEWEST_UV])
def test_every_uv_generation_accepts_the_lock(version: str, tmp_path: Path) -> None:
    uvx = require_tool("uvx", "pip install uv")
    uv = (uvx, "--from", f"uv=={version}", "uv")
    assert run(*uv, "--version").split()[1] == version
    run(*uv, "lock", "--check")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}
    plan = run(*uv, "sync", "--locked", "--dry-run", "--all-groups", env=env, stderr=True)
    installs = set(re.findall(r"^ \+ ([a-z0-9_.-]+)", plan, flags=re.MULTILINE))
    assert {"athena", "transformers", "torch", "pytest", "nox"} <= installs, plan


def test_newest_uv_pin_is_the_same_everywhere() -> None:
    for path in (".ci/run", ".github/workflows/ci.yml"):
        assert NEWEST_UV in (ROOT / path).read_text(), f"{path} does not pin uv {NEWEST_UV}"
