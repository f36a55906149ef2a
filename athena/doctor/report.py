"""The doctor's result: a list of checks, printed as a table or as JSON (schema.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_ID = "athena-doctor/2"
SCHEMA_PATH = Path(__file__).with_name("schema.json")
STATUSES = ("pass", "warn", "fail", "skip", "info")
SECTIONS = ("system", "packages", "imports", "mlx", "memory", "model", "audit", "smoke")


@dataclass
class Check:
    """One line of the report.

    status: pass (works), fail (broken), warn (works, but look at the hint), skip (not
    applicable here; `detail` says why), info (a fact, no judgement). Only a failed
    `required` check makes the exit code 1.
    """

    id: str  # stable, e.g. "imports.mlx_lm", "audit.lock.darwin-arm64"
    title: str
    status: str
    detail: str
    required: bool = False
    hint: str | None = None  # what to do next: set on every fail and warn
    data: dict[str, Any] = field(default_factory=dict)
    section: str = field(init=False)  # the id's first part: system, packages, imports, ...

    def __post_init__(self) -> None:
        self.section = self.id.split(".", 1)[0]
        if self.section not in SECTIONS or self.status not in STATUSES:
            raise ValueError(f"bad check {self.id!r} with status {self.status!r}")


@dataclass
class Report:
    athena_version: str
    host: dict[str, Any]
    python: dict[str, Any]
    project: dict[str, Any]
    checks: list[Check] = field(default_factory=list)
    fingerprint: dict[str, Any] = field(default_factory=dict)  # fingerprint.py; --compare

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def get(self, check_id: str) -> Check | None:
        return next((check for check in self.checks if check.id == check_id), None)

    @property
    def failed_required(self) -> list[Check]:
        return [c for c in self.checks if c.required and c.status == "fail"]

    @property
    def ok(self) -> bool:
        return not self.failed_required

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> dict[str, int]:
        return {status: sum(c.status == status for c in self.checks) for status in STATUSES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_ID,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "athena_version": self.athena_version,
            "host": self.host,
            "python": self.python,
            "project": self.project,
            "summary": self.summary(),
            "failed_required": [c.id for c in self.failed_required],
            "checks": [asdict(c) for c in self.checks],
            "fingerprint": self.fingerprint,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str)

    def render(self) -> str:
        """The readable table: one section after the other, hints under their check."""
        width = max((len(c.title) for c in self.checks), default=10)
        lines = [
            f"athena doctor {self.athena_version}: {self.host.get('target')} "
            f"{self.host.get('os_version', '')}, Python {self.python.get('version')} "
            f"({self.python.get('executable')})"
        ]
        for section in SECTIONS:
            checks = [c for c in self.checks if c.section == section]
            if not checks:
                continue
            lines.append("")
            lines.append(section.upper())
            previous = None
            for check in checks:
                mark = check.status.upper() + ("*" if check.required else " ")
                detail = check.detail
                if previous and check.status == previous.status == "skip":
                    detail = "(same reason)" if detail == previous.detail else detail
                lines.append(f"  {mark:5} {check.title:{width}}  {detail}")
                previous = check
                if check.hint and check.status in ("fail", "warn", "skip"):
                    lines.append(f"  {'':5} {'':{width}}  -> {check.hint}")
        counts = ", ".join(f"{n} {s}" for s, n in self.summary().items() if n)
        lines.append("")
        lines.append(f"{counts}  (* = required on this platform)")
        if self.ok:
            lines.append("OK: every required check passes.")
        else:
            names = ", ".join(c.id for c in self.failed_required)
            lines.append(f"FAILED: {names}. Follow the -> hints above.")
        return "\n".join(lines)
