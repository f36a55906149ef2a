"""flake.nix evaluates for every system, offline, against a stand-in nixpkgs.

No nixpkgs can be fetched on our machines, so `nix develop` itself is not run here: these tests
evaluate `devShells.<system>.default` with Debian's nix-bin and `--override-input nixpkgs
path:tests/env/standin-nixpkgs`, and check what the shell would set.

They run as any user: nix gets a store of its own under the test session's temporary folder
(`--store PATH`, a local store rooted there), so no daemon and no write access to /nix are
needed (Debian's nix-bin otherwise talks to a daemon socket only root and `nix-users` may use).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, require_tool

pytestmark = pytest.mark.nix

SYSTEMS = ("aarch64-darwin", "x86_64-linux", "aarch64-linux")
STANDIN = ROOT / "tests" / "env" / "standin-nixpkgs"
NIX = ("--extra-experimental-features", "nix-command flakes")
# What the pyproject.nix impure pattern needs the shell to set, on every system.
REQUIRED_ENV = {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON_PREFERENCE": "only-system"}
# nixos-26.05 as nix-community/home-manager pins it: branch release-26.05, commit
# 65258d5c65a250189fde2e35f490d15e064c4c62, flake.lock (rev, narHash and lastModified copied).
NIXPKGS_BRANCH = "nixos-26.05"
PINNED_NIXPKGS = {
    "owner": "NixOS",
    "repo": "nixpkgs",
    "rev": "5880666fd9eb563038431edb35c2d0aa595884e6",
    "narHash": "sha256-OURZPknrTjQrlNyxPdqzyqmU/81Wes1CUP/Ft1Rv/YI=",
    "lastModified": 1787204541,
}
# A libc on LD_LIBRARY_PATH is loaded by every host binary the dev shell starts.
LIBC_NAMES = ("glibc", "musl")


def nix_eval(flake_dir: Path, attr: str, apply: str) -> tuple[Any, str]:
    """`nix eval --json` of `attr` in the flake at `flake_dir` over the stand-in nixpkgs.

    The store is the test session's own, beside `flake_dir` (a test's tmp_path): no daemon.
    """
    nix = require_tool("nix", "apt-get install nix-bin")
    result = subprocess.run(
        [
            nix,
            *NIX,
            "--store",
            str(flake_dir.parent / "nix-store"),
            "eval",
            "--json",
            "--no-write-lock-file",
            "--override-input",
            "nixpkgs",
            f"path:{STANDIN}",
            f"path:{flake_dir}#{attr}",
            "--apply",
            apply,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def evaluate_shell(flake_dir: Path, system: str) -> dict[str, Any]:
    """What `nix develop` would get for `system`: env, package names, shell hook."""
    shell, _ = nix_eval(
        flake_dir,
        f"devShells.{system}.default",
        "sh: { inherit (sh) env shellHook; packages = map (p: p.name) sh.packages; }",
    )
    return shell


def shell_problems(shell: dict[str, Any], system: str) -> list[str]:
    """Everything the evaluated shell gets wrong; empty when it is right."""
    problems = []
    env = shell["env"]
    for name, value in REQUIRED_ENV.items():
        if env.get(name) != value:
            problems.append(f"{name} is {env.get(name)!r}, expected {value!r}")
    if not env.get("UV_PYTHON", "").endswith("/bin/python3.12"):
        problems.append(f"UV_PYTHON is {env.get('UV_PYTHON')!r}, expected the flake's python3.12")
    on_linux = system.endswith("-linux")
    if on_linux != ("LD_LIBRARY_PATH" in env):
        problems.append(f"LD_LIBRARY_PATH must be set on Linux only (system {system})")
    for folder in env.get("LD_LIBRARY_PATH", "").split(":"):
        if any(f"-{libc}-" in folder for libc in LIBC_NAMES):
            problems.append(f"LD_LIBRARY_PATH holds a libc: {folder}")
    names = [p.rsplit("-", 1)[0] for p in shell["packages"]]
    if sorted(names) != ["python3", "uv"]:
        problems.append(f"packages are {shell['packages']}, expected python3 and uv only")
    hook = shell["shellHook"].splitlines()
    for line in ("unset PYTHONPATH", "uv sync --locked", ". .venv/bin/activate"):
        if line not in hook:
            problems.append(f"shellHook lacks {line!r}")
    return problems


def copy_flake(tmp_path: Path) -> Path:
    for name in ("flake.nix", "flake.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("system", SYSTEMS)
def test_dev_shell_evaluates_with_the_pinned_toolchain(tmp_path: Path, system: str) -> None:
    shell = evaluate_shell(copy_flake(tmp_path), system)
    assert shell_problems(shell, system) == []


def test_a_shell_without_uv_python_downloads_or_with_a_libc_is_caught(tmp_path: Path) -> None:
    """shell_problems on the evaluated shells, each with one thing broken."""
    darwin = evaluate_shell(copy_flake(tmp_path), "aarch64-darwin")
    linux = evaluate_shell(tmp_path, "x86_64-linux")
    no_downloads = {
        **darwin,
        "env": {k: v for k, v in darwin["env"].items() if k != "UV_PYTHON_DOWNLOADS"},
    }
    assert shell_problems(no_downloads, "aarch64-darwin") == [
        "UV_PYTHON_DOWNLOADS is None, expected 'never'"
    ]
    with_path = {**darwin, "env": {**darwin["env"], "LD_LIBRARY_PATH": "/nix/store/x-zlib/lib"}}
    assert shell_problems(with_path, "aarch64-darwin") == [
        "LD_LIBRARY_PATH must be set on Linux only (system aarch64-darwin)"
    ]
    libc = "/nix/store/0000-glibc-2.40/lib"
    path = f"{linux['env']['LD_LIBRARY_PATH']}:{libc}"
    with_libc = {**linux, "env": {**linux["env"], "LD_LIBRARY_PATH": path}}
    assert shell_problems(with_libc, "x86_64-linux") == [f"LD_LIBRARY_PATH holds a libc: {libc}"]


def test_flake_lock_pins_a_supported_nixos_release() -> None:
    lock = json.loads((ROOT / "flake.lock").read_text())
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    assert node["original"] == {
        "owner": "NixOS",
        "repo": "nixpkgs",
        "ref": NIXPKGS_BRANCH,
        "type": "github",
    }
    assert node["locked"] == {**PINNED_NIXPKGS, "type": "github"}


def test_nix_reads_the_pinned_lock(tmp_path: Path) -> None:
    """nix itself parses flake.lock: overriding the input names the pinned rev it replaces."""
    systems, stderr = nix_eval(copy_flake(tmp_path), "devShells", "builtins.attrNames")
    assert systems == sorted(SYSTEMS)
    assert f"github:NixOS/nixpkgs/{PINNED_NIXPKGS['rev']}" in stderr


def test_envrc_uses_the_flake() -> None:
    assert (ROOT / ".envrc").read_text().split() == ["use", "flake"]


def nix_docs() -> str:
    """README's set-up section and docs/environment.md's Nix section: what they promise."""
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up on a Mac", 1)[1].split("\n## ", 1)[0]
    environment = (ROOT / "docs" / "environment.md").read_text()
    return setup + environment.split("## Nix", 1)[1].split("### ", 1)[0]


def docs_problems(shell: dict[str, Any], envrc: str, docs: str) -> list[str]:
    """Where .envrc, the evaluated shell and the Nix instructions disagree; empty when none."""
    problems = []
    if envrc.split() != ["use", "flake"]:
        problems.append(f".envrc is {envrc!r}, but the docs say `direnv allow` uses the flake")
    env = shell["env"]
    stated = dict(re.findall(r"`([A-Z][A-Z0-9_]*)=([^`\s]+)`", docs))
    for name, value in stated.items():
        if env.get(name) != value:
            problems.append(f"the docs say {name}={value}, the flake sets {env.get(name)!r}")
    for name in env:
        if f"`{name}" not in docs:
            problems.append(f"the flake sets {name}, which the docs do not mention")
    python = re.search(r"python(3\.\d+)$", env.get("UV_PYTHON", ""))
    if python is None or f"Python {python.group(1)}" not in docs:
        problems.append(f"the docs do not name the flake's Python ({env.get('UV_PYTHON')})")
    hook = shell["shellHook"].splitlines()
    promises = {
        "`uv sync --locked`": "uv sync --locked",
        "activates `.venv`": ". .venv/bin/activate",
        "unsets `PYTHONPATH`": "unset PYTHONPATH",
    }
    for words, line in promises.items():
        if words in docs and line not in hook:
            problems.append(f"the docs say the hook {words}, but it lacks {line!r}")
    if "nix develop" not in docs or "`direnv allow`" not in docs:
        problems.append("the docs lack `nix develop` or `direnv allow`")
    return problems


def test_envrc_the_flakes_variables_and_the_nix_docs_agree(tmp_path: Path) -> None:
    flake_dir = copy_flake(tmp_path)
    for system in ("aarch64-darwin", "x86_64-linux"):
        shell = evaluate_shell(flake_dir, system)
        assert docs_problems(shell, (ROOT / ".envrc").read_text(), nix_docs()) == []


def test_a_flake_variable_the_docs_misstate_is_caught(tmp_path: Path) -> None:
    flake_dir = copy_flake(tmp_path)
    flake = flake_dir / "flake.nix"
    flake.write_text(flake.read_text().replace('"only-system"', '"managed"'))
    shell = evaluate_shell(flake_dir, "aarch64-darwin")
    problems = docs_problems(shell, "use flake\n", nix_docs())
    assert problems == ["the docs say UV_PYTHON_PREFERENCE=only-system, the flake sets 'managed'"]
    assert docs_problems(shell | {"env": {}}, "use nix\n", "")[0].startswith(".envrc is")
