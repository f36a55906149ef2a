"""Mutation tests of the CUDA audit: copy the project, inject a CUDA dependency one way at a
time, run a real `uv lock`, and check that the audit fails, names it, and shows the chain.

PyPI metadata is needed (the `network` mark; uv's cache makes each lock a few seconds). Each
lock excludes uploads newer than uv.lock's newest file, so the expected offenders (torch's
nvidia-cudnn-cu13, bitsandbytes' triton) are those of the index the lock was made from.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from athena.doctor import audit
from athena.doctor.audit import TARGETS_BY_NAME

from .conftest import (
    add_dependency,
    copy_project,
    edit_pyproject,
    local_package,
    uv_lock,
    uv_path,
    without_exclude_newer,
)

pytestmark = [pytest.mark.slow, pytest.mark.network]
DARWIN = TARGETS_BY_NAME["darwin-arm64"]
LINUX = TARGETS_BY_NAME["linux-x86_64"]


def locked_project(project: Path) -> Path:
    result = uv_lock(project)
    assert result.returncode == 0, result.stderr
    return project


def offender(result: audit.AuditResult, name: str) -> audit.Offender:
    assert not result.ok and result.error is None, result.error
    found = {o.name: o for o in result.offenders}
    assert name in found, f"{name} not among {sorted(found)}"
    return found[name]


def add_path_source(project: Path, name: str) -> None:
    with (project / "pyproject.toml").open("a") as file:
        file.write(f'\n[tool.uv.sources]\n{name} = {{ path = "{name}" }}\n')


def test_the_unchanged_copy_passes(tmp_path: Path) -> None:
    """The control: the copy locks to the same uv.lock and both targets pass."""
    project = copy_project(tmp_path / "project")
    before = (project / "uv.lock").read_text()
    locked_project(project)
    assert without_exclude_newer((project / "uv.lock").read_text()) == before
    uv = uv_path()
    assert audit.audit_lock(project, DARWIN, uv=uv).ok
    assert audit.audit_lock(project, LINUX, uv=uv).ok


def test_a_direct_dependency(tmp_path: Path) -> None:
    """bitsandbytes without a marker: caught on the Mac; on Linux it also pulls CUDA torch."""
    project = copy_project(tmp_path / "project")
    add_dependency(project, "bitsandbytes")
    locked_project(project)
    uv = uv_path()
    found = offender(audit.audit_lock(project, DARWIN, uv=uv), "bitsandbytes")
    assert found.chains[0][0] == "athena"
    assert found.chains[0][-1].startswith("bitsandbytes ")
    linux = audit.audit_lock(project, LINUX, uv=uv)
    triton = offender(linux, "triton")
    assert any("bitsandbytes" in " ".join(chain) for chain in triton.chains)

    cli = subprocess.run(
        [
            str(Path(sys.executable).parent / "athena"),
            "audit",
            "--lock-only",
            "--project",
            str(project),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1
    assert "FAIL lock darwin-arm64" in cli.stdout
    assert "athena -> bitsandbytes" in cli.stdout


def test_a_transitive_dependency_through_a_local_package(tmp_path: Path) -> None:
    """gpu-helpers (a path package) depends on nvidia-ml-py: the chain shows the middle."""
    project = copy_project(tmp_path / "project")
    local_package(project, "gpu-helpers", "1.0.0", ["nvidia-ml-py"])
    add_dependency(project, "gpu-helpers")
    add_path_source(project, "gpu-helpers")
    locked_project(project)
    found = offender(audit.audit_lock(project, DARWIN, uv=uv_path()), "nvidia-ml-py")
    assert found.chains[0][:2] == ["athena", "gpu-helpers 1.0.0"]
    assert found.reason == "name matches nvidia-*"


def test_torch_for_linux_in_the_default_dependencies(tmp_path: Path) -> None:
    """torch as a main Linux dependency pulls nvidia-* and triton: Linux fails, the Mac not."""
    project = copy_project(tmp_path / "project")
    add_dependency(project, "torch>=2.6,<3; sys_platform == 'linux'")
    locked_project(project)
    uv = uv_path()
    assert audit.audit_lock(project, DARWIN, uv=uv).ok
    linux = audit.audit_lock(project, LINUX, uv=uv)
    cudnn = offender(linux, "nvidia-cudnn-cu13")
    assert cudnn.chains[0][0] == "athena"
    assert cudnn.chains[0][1].startswith("torch ")


def test_a_dependency_group(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    edit_pyproject(
        project, "[dependency-groups]\n", '[dependency-groups]\ngpu = ["nvidia-ml-py"]\n'
    )
    locked_project(project)
    uv = uv_path()
    found = offender(audit.audit_lock(project, DARWIN, uv=uv), "nvidia-ml-py")
    assert found.chains[0][0] == "athena (group: gpu)"
    offender(audit.audit_lock(project, LINUX, uv=uv), "nvidia-ml-py")  # not the torch group


def test_an_extra_of_the_project(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    edit_pyproject(
        project,
        "[project.scripts]\n",
        '[project.optional-dependencies]\nquant = ["bitsandbytes"]\n\n[project.scripts]\n',
    )
    locked_project(project)
    found = offender(audit.audit_lock(project, DARWIN, uv=uv_path()), "bitsandbytes")
    assert found.chains[0][0] == "athena (extra: quant)"


def test_an_extra_of_a_dependency(tmp_path: Path) -> None:
    """mlx[cuda12] instead of mlx[cpu] in the mlx-cpu group: Linux pulls mlx-cuda-12."""
    project = copy_project(tmp_path / "project")
    edit_pyproject(project, '"mlx[cpu]>=0.32', '"mlx[cuda12]>=0.32')
    locked_project(project)
    found = offender(audit.audit_lock(project, LINUX, uv=uv_path()), "mlx-cuda-12")
    # uv's inverted tree writes the extra on the requirer: athena[cuda12] (group: mlx-cpu)
    assert found.chains[0][0].startswith("athena") and "(group: mlx-cpu)" in found.chains[0][0]
    assert found.chains[0][1].startswith("mlx ") and "(extra: cuda12)" in found.chains[0][1]


def test_a_cu_local_version(tmp_path: Path) -> None:
    """A +cu build (a path package here: PyPI has no local versions) is caught by version."""
    project = copy_project(tmp_path / "project")
    local_package(project, "fastkernels", "1.0.0+cu121", [])
    add_dependency(project, "fastkernels")
    add_path_source(project, "fastkernels")
    locked_project(project)
    found = offender(audit.audit_lock(project, DARWIN, uv=uv_path()), "fastkernels")
    assert found.version == "1.0.0+cu121"
    assert "+cu" in found.reason


def test_mlx_cuda_without_markers_cannot_be_locked_at_all(tmp_path: Path) -> None:
    """mlx-cuda-12 has Linux wheels only: uv refuses the lock, and the audit of the now stale
    lock fails instead of passing."""
    project = copy_project(tmp_path / "project")
    add_dependency(project, "mlx-cuda-12")
    result = uv_lock(project)
    assert result.returncode != 0
    assert "mlx-cuda-12" in result.stderr and "darwin" in result.stderr
    stale = audit.audit_lock(project, DARWIN, uv=uv_path())
    assert not stale.ok and stale.error and "uv tree --locked" in stale.error
