"""The doctor's result: a list of checks, printed as a table or as JSON (schema.json), and
how a report read back (`--compare`) is checked against schema.json and shown."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_ID = "athena-doctor/3"
SCHEMA_PATH = Path(__file__).with_name("schema.json")
SHOWN_LIMIT = 120
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL|AUTH")
USERINFO = re.compile(r"(?<=://)[^/?#\s]*@")  # https://user:token@host -> https://host
QUERY = re.compile(r"[?#][^\s,]*")  # ?token=...#... up to the next space or comma
JSON_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "integer": int}
JSON_TYPES |= {"number": (int, float), "boolean": bool, "null": type(None)}
STATUSES = ("pass", "warn", "fail", "skip", "info")
SECTIONS = ("system", "packages", "imports", "mlx", "memory", "model", "models", "audit", "smoke")


@dataclass
class Check:
    """One line of the report: pass (works), fail (broken), warn (works, but see the hint), skip
    (not here; `detail` says why), info (a fact). Only a failed `required` check exits 1."""

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
    fingerprint: dict[str, Any] = field(default_factory=dict)  # compare.py

    def add(self, check: Check) -> None:
        self.checks.append(check)

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
            lines += ["", section.upper()] if checks else []
            for index, check in enumerate(checks):
                previous = checks[index - 1] if index else None
                mark = check.status.upper() + ("*" if check.required else " ")
                same = previous and previous.status == "skip" and previous.detail == check.detail
                detail = "(same reason)" if same and check.status == "skip" else check.detail
                lines.append(f"  {mark:5} {check.title:{width}}  {detail}")
                if check.hint and check.status in ("fail", "warn", "skip"):
                    lines.append(f"  {'':5} {'':{width}}  -> {check.hint}")
        counts = ", ".join(f"{n} {s}" for s, n in self.summary().items() if n)
        names = ", ".join(c.id for c in self.failed_required)
        lines += ["", f"{counts}  (* = required on this platform)"]
        lines.append(f"FAILED: {names}. Follow the -> hints above." if names else "")
        return "\n".join(lines) + ("OK: every required check passes." if self.ok else "")


def shareable(name: str, value: str) -> str | None:
    """An environment variable's value without credentials: None for a secret (a name with
    TOKEN, PASSWORD, KEY...), and every URL without its user:password@, query and fragment."""
    if SECRET_NAME.search(name):
        return None
    return QUERY.sub("", USERINFO.sub("", value)) if "://" in value else value


def shown(value: object, limit: int = SHOWN_LIMIT) -> str:
    """`value` as inert text: every control, escape, bidi override or other unprintable
    character written as its escape (`\\x1b`, `\\u202e`), and at most `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    more = f"... ({len(text)} characters)" if len(text) > limit else ""
    visible = (c if c.isprintable() else c.encode("unicode_escape").decode() for c in text[:limit])
    return "".join(visible) + more


def schema_problem(value: Any, schema: Mapping[str, Any], where: str = "the report") -> str | None:
    """Where `value` first breaks `schema` (the keywords schema.json uses: type, const, enum,
    pattern, minimum, required, properties, additionalProperties, items), as a phrase
    ("fingerprint.packages.mlx has no tags"); None when it conforms."""
    quoted = shown(json.dumps(value, default=str), 40)
    types = schema.get("type")
    types = [types] if isinstance(types, str) else types or list(JSON_TYPES)
    booleans = "boolean" in types or not isinstance(value, bool)  # True is an int to Python
    if not booleans or not any(isinstance(value, JSON_TYPES[name]) for name in types):
        return f"{shown(where)} is {quoted}, not {' or '.join(types)}"
    if ("const" in schema and value != schema["const"]) or value not in schema.get("enum", [value]):
        return f"{shown(where)} is {quoted}, not {schema.get('const', schema.get('enum'))}"
    if isinstance(value, str) and not re.search(schema.get("pattern", ""), value):
        return f"{shown(where)} is {quoted}, not of the form {schema['pattern']}"
    if isinstance(value, (int, float)) and value < schema.get("minimum", value):
        return f"{shown(where)} is {value}, below {schema['minimum']}"
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            if problem := schema_problem(item, schema["items"], f"{where}[{index}]"):
                return problem
    if isinstance(value, dict):
        if missing := [key for key in schema.get("required", []) if key not in value]:
            return f"{shown(where)} has no {missing[0]}"
        prefix = "" if where == "the report" else where + "."
        for key, item in value.items():
            rule = schema.get("properties", {}).get(key, schema.get("additionalProperties", True))
            if rule is False:
                return f"{shown(where)} has {shown(key, 40)}, which schema.json does not define"
            if isinstance(rule, Mapping) and (problem := schema_problem(item, rule, prefix + key)):
                return problem
    return None
