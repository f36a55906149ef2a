"""The CUDA-package audit on this checkout, its pattern list, uv tree parsing, and the
installed level (including how the doctor presents torch's CUDA build on Linux)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from athena.cli import main as athena_main
from athena.doctor import audit
from athena.doctor.audit import TARGETS_BY_NAME, Target
from athena.doctor.checks import audit_checks
from athena.doctor.report import Report
from athena.host import Host

from .conftest import ROOT, uv_path

CUDA = [
    ("nvidia-cublas-cu12", None),
    ("nvidia_cudnn_cu12", None),
    ("NVIDIA-NCCL", None),
    ("bitsandbytes", None),
    ("triton", None),
    ("cuda-toolkit", None),
    ("cuda_bindings", None),
    ("cupy-cuda12x", None),
    ("some-kernels-cu11", None),
    ("flash-attn-cu13", None),
    ("mlx-cuda-12", None),
    ("jax-cuda12-plugin", None),
    ("onnxruntime-gpu", None),
    ("tensorrt-llm", None),
    ("torch", "2.6.0+cu124"),
    ("torchvision", "0.21.0+cuda12"),
]
NOT_CUDA = [
    ("torch", "2.15.0"),
    ("torch", "2.6.0+cpu"),
    ("mlx", "0.32.4"),
    ("mlx-cpu", "0.32.4"),
    ("mlx-metal", "0.32.4"),
    ("numpy", "2.4.6"),
    ("onnxruntime", "1.20.0"),
    ("nvidia", "1.0"),
    ("accuda", "1.0"),
]


@pytest.mark.parametrize(("name", "version"), CUDA)
def test_cuda_packages_are_recognised(name: str, version: str | None) -> None:
    assert audit.cuda_reason(name, version)


@pytest.mark.parametrize(("name", "version"), NOT_CUDA)
def test_other_packages_are_not(name: str, version: str) -> None:
    assert audit.cuda_reason(name, version) is None


def test_the_lock_of_this_checkout_is_cuda_free_on_both_targets() -> None:
    uv = uv_path()
    for target in audit.TARGETS:
        result = audit.audit_lock(ROOT, target, uv=uv)
        assert result.error is None, result.error
        assert result.ok, audit.format_result(result)
        assert result.packages > 20


def test_the_darwin_view_is_uvs_own() -> None:
    """mlx-metal is there for darwin-arm64 and absent on Linux; mlx-cpu the other way round."""
    uv = uv_path()
    darwin = audit.parse_tree(audit.run_uv_tree(ROOT, TARGETS_BY_NAME["darwin-arm64"], uv=uv))
    linux = audit.parse_tree(audit.run_uv_tree(ROOT, TARGETS_BY_NAME["linux-x86_64"], uv=uv))
    assert "mlx-metal" in {line.name for line in darwin}
    assert "mlx-metal" not in {line.name for line in linux}
    assert "mlx-cpu" in {line.name for line in linux}
    assert "mlx-cpu" not in {line.name for line in darwin}


def test_the_opt_in_torch_group_is_what_pulls_cuda_on_linux() -> None:
    """Why Linux leaves the torch group out: with it, uv's view has nvidia-* via torch."""
    uv = uv_path()
    target = Target("linux-all", "x86_64-unknown-linux-gnu", ("--all-groups",), "all")
    result = audit.audit_lock(ROOT, target, uv=uv)
    assert not result.ok
    assert any(o.name.startswith("nvidia-") for o in result.offenders)
    chain = next(o for o in result.offenders if o.name == "triton").chains[0]
    assert chain[0] == "athena (group: torch)" and chain[1].startswith("torch ")


def test_chains_from_an_inverted_tree() -> None:
    text = (
        "nvidia-cublas v13.4.1.3\n"
        "├── nvidia-cudnn-cu13 v9.26.0.51\n"
        "│   └── torch v2.15.0\n"
        "│       └── athena (group: torch)\n"
        "└── cuda-toolkit v13.2.2 (extra: cublas)\n"
        "    └── athena (extra: gpu)\n"
    )
    chains = audit.chains_from_inverted(audit.parse_tree(text))
    assert chains == [
        ["athena (extra: gpu)", "cuda-toolkit 13.2.2 (extra: cublas)", "nvidia-cublas 13.4.1.3"],
        [
            "athena (group: torch)",
            "torch 2.15.0",
            "nvidia-cudnn-cu13 9.26.0.51",
            "nvidia-cublas 13.4.1.3",
        ],
    ]


TORCH_CUDA = [
    {"name": "athena", "version": "0.1.0", "requires": ["numpy"]},
    {
        "name": "torch",
        "version": "2.15.0",
        "requires": [
            'nvidia-cudnn-cu13==9.26.0.51; platform_system == "Linux"',
            'triton~=3.9.0; platform_system == "Linux"',
        ],
    },
    {"name": "nvidia-cudnn-cu13", "version": "9.26.0.51", "requires": ["nvidia-cublas"]},
    {"name": "nvidia-cublas", "version": "13.4.1.3", "requires": []},
    {"name": "triton", "version": "3.9.0", "requires": []},
    {"name": "numpy", "version": "2.4.6", "requires": []},
]
LINUX = Host("Linux", "x86_64", "6.1")
MAC = Host("Darwin", "arm64", "15.3", rosetta=False)


def audit_check(host: Host, distributions: list[dict]) -> object:
    report = Report("0", {}, {}, {})
    audit_checks(report, host, None, distributions, "python")
    return report.get("audit.installed")


def test_installed_level_names_offenders_and_who_requires_them() -> None:
    result = audit.audit_installed(TORCH_CUDA)
    assert not result.ok
    by_name = {o.name: o for o in result.offenders}
    assert set(by_name) == {"nvidia-cudnn-cu13", "nvidia-cublas", "triton"}
    assert by_name["nvidia-cublas"].required_by == ["nvidia-cudnn-cu13"]
    assert by_name["triton"].required_by == ["torch"]
    assert audit.explained_by_torch(result, TORCH_CUDA)


def test_torch_cuda_on_linux_is_a_warning_in_the_doctor() -> None:
    check = audit_check(LINUX, TORCH_CUDA)
    assert check.status == "warn" and "torch" in check.detail  # type: ignore[attr-defined]
    assert check.data["explained_by_torch"] is True  # type: ignore[attr-defined]


def test_torch_cuda_on_a_simulated_mac_is_a_failure() -> None:
    check = audit_check(MAC, TORCH_CUDA)
    assert check.status == "fail" and check.required  # type: ignore[attr-defined]


def test_cuda_not_from_torch_on_linux_is_a_failure() -> None:
    dists = [*TORCH_CUDA, {"name": "bitsandbytes", "version": "0.50.2", "requires": ["torch"]}]
    check = audit_check(LINUX, dists)
    assert check.status == "fail" and "bitsandbytes" in check.detail  # type: ignore[attr-defined]


def test_athena_audit_lock_only_passes_here(capsys: pytest.CaptureFixture[str]) -> None:
    uv_path()
    assert athena_main(["audit", "--lock-only", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["schema"] == "athena-audit/1" and out["ok"] is True
    assert [r["target"] for r in out["results"]] == ["darwin-arm64", "linux-x86_64"]
    assert "torch" in out["results"][1]["scope"]


def test_athena_audit_installed_matches_this_environment() -> None:
    """Fails exactly when this venv has CUDA packages (the torch group on Linux)."""
    ours = {
        dist.metadata["Name"]
        for dist in metadata.distributions()
        if audit.cuda_reason(dist.metadata["Name"], dist.version)
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "athena"), "audit", "--installed-only", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    out = json.loads(result.stdout)
    named = {o["name"] for o in out["results"][0]["offenders"]}
    assert named == {audit.normalize(n) for n in ours}
    assert result.returncode == (1 if ours else 0)


def test_athena_audit_bad_project_is_one_sentence(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "athena"), "audit", "--project", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"athena audit: {tmp_path} has no pyproject.toml and uv.lock: pass the project's folder"
    )
