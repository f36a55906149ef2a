"""The platform views of uv.lock that the CUDA audit checks (audit.py) and `uv tree` shows
(uvtree.py)."""

from __future__ import annotations

from dataclasses import dataclass

# Groups allowed to pull CUDA on Linux: PyPI's Linux torch wheel depends on nvidia-* and triton.
LINUX_CUDA_GROUPS = ("torch",)


@dataclass(frozen=True)
class Target:
    """One platform view of uv.lock."""

    name: str  # darwin-arm64, linux-x86_64
    python_platform: str  # uv's --python-platform
    group_args: tuple[str, ...]  # which dependency groups uv includes
    scope: str  # said in the report


TARGETS = (
    Target(
        "darwin-arm64",
        "aarch64-apple-darwin",
        ("--all-groups",),
        "every dependency group and extra",
    ),
    Target(
        "linux-x86_64",
        "x86_64-unknown-linux-gnu",
        ("--all-groups", *(f"--no-group={group}" for group in LINUX_CUDA_GROUPS)),
        "every group but torch, and every extra: the opt-in torch group is left out because "
        "PyPI's Linux torch is a CUDA build (nvidia-*, triton) by design",
    ),
)
TARGETS_BY_NAME = {target.name: target for target in TARGETS}
