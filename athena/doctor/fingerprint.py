"""The report's fingerprint: what makes two machines compute alike (docs/doctor.md, "Two
machines"), diffed by compare.py."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from athena.doctor.lock import Lock
from athena.doctor.names import normalize
from athena.doctor.probe import ProbeResult
from athena.doctor.report import SCHEMA_PATH, shareable
from athena.doctor.sections.system import WIRED_LIMIT_MACOS, python_minor
from athena.host import Host
from athena.source import file_digest

# The behaviour variables (schema.json's fingerprint.env): each one listed, and no other.
FINGERPRINT = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))["properties"]["fingerprint"]
ENV_NAMES = tuple(FINGERPRINT["properties"]["env"]["required"])


def lock_sha256(path: Path) -> str | None:
    try:
        return str(file_digest(path)["sha256"])
    except OSError:
        return None


def behaviour_env(
    environ: Mapping[str, str], root: Path | None, home: str | None = None
) -> dict[str, str | None]:
    """The behaviour variables, set (value) or unset (None), safe to share (`shareable`; a
    secret is "(set)"). The checkout's path is written `$PROJECT` and the home folder `~`,
    so two machines' values compare as what they mean."""
    home = home if home is not None else os.path.expanduser("~")
    result: dict[str, str | None] = {}
    for name in ENV_NAMES:
        value = environ.get(name)
        if value is not None:
            value = shareable(name, value) or "(set)"
        if value is not None and root is not None:
            value = value.replace(str(root), "$PROJECT")
        if value is not None and home and home != "/":
            value = value.replace(home, "~")
        result[name] = value
    return result


def locked_packages(
    lock: Lock | None, distributions: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, Any]] | None:
    """For each package in uv.lock: the installed version (None: not installed here), whether
    uv.lock pins it, the wheel tags it was installed from (its WHEEL file's `Tag:` lines) and
    the locked wheel with those tags (file name, sha256), or None: not from the lock."""
    if lock is None:
        return None
    installed = {normalize(str(d["name"])): d for d in distributions}
    packages: dict[str, dict[str, Any]] = {}
    for name in sorted(lock.versions):
        dist = installed.get(name)
        version = None if dist is None else str(dist["version"])
        tags = None if dist is None else list(dist.get("tags") or [])
        wheel = None if dist is None else lock.wheel_for(name, str(version), tags or [])
        packages[name] = {
            "installed": version,
            "matches_lock": None if version is None else version in lock.versions[name],
            "tags": tags,
            "wheel": None if wheel is None else {"file": wheel.file, "sha256": wheel.sha256},
        }
    return packages


def fingerprint(
    *,
    host: Host,
    python: Mapping[str, Any],
    root: Path | None,
    lock: Lock | None,
    distributions: Iterable[Mapping[str, Any]],
    probe: ProbeResult | None,
    pin: str | None,
    flake: str | None = None,
    environ: Mapping[str, str] | None = None,
    models: Mapping[str, Any] | None = None,
    action_head: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fingerprint block of a report (schema.json's `fingerprint`)."""
    device = (probe.step("mlx.default_device") or {}) if probe else {}  # as the probe saw it
    wired: dict[str, Any] = {"supported": (host.macos_version or ()) >= WIRED_LIMIT_MACOS}
    wired["iogpu_wired_limit_mb"] = host.sysctl.get("iogpu.wired_limit_mb")
    return {
        "uv_lock_sha256": lock_sha256(root / "uv.lock") if root else None,
        "models_lock_sha256": lock_sha256(root / "models.lock") if root else None,
        "models": dict(models or {}),
        "action_head": None if action_head is None else dict(action_head),
        "packages": locked_packages(lock, distributions),
        "python": {
            "version": python.get("version"),
            "minor": python_minor(python.get("version")),
            "implementation": python.get("implementation"),
            "pinned": pin,
        },
        "os": {
            "system": host.system,
            "target": host.target,
            "release": host.os_version,
            "macos_version": host.os_version if host.is_mac else None,
        },
        "chip": host.chip,
        "hostname": platform.node() or None,
        "total_memory": host.total_memory,
        "metal": None if host.metal is None else host.metal.available,
        "mlx_device": str(device["device"]) if device.get("ok") and device.get("device") else None,
        "wired_limit": wired if host.is_mac else None,
        "env": behaviour_env(os.environ if environ is None else environ, root),
        "flake_nixpkgs": flake,
    }
