"""The imports section: `import mlx`, `import mlx.core`, `import mlx_lm` and
`from mlx_lm import load, generate`, as the probe's child process ran them (probe_child.py).

`step_check` turns any probe step into a check; the mlx section uses it too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from athena.doctor.host import Host
from athena.doctor.probe import ProbeResult
from athena.doctor.probe_child import MLX_STEPS
from athena.doctor.report import Check, Report
from athena.doctor.sections.packages import SYNC_LINUX_MLX, SYNC_MAC

IMPORT_IDS = {
    "import mlx": "imports.mlx",
    "import mlx.core": "imports.mlx_core",
    "import mlx_lm": "imports.mlx_lm",
    "from mlx_lm import load, generate": "imports.mlx_lm_load_generate",
}
MLX_STEP_NAMES = tuple(step for step, _ in MLX_STEPS)
IMPORT_STEPS = tuple(step for step in MLX_STEP_NAMES if step in IMPORT_IDS)

if TYPE_CHECKING:  # `str | None` cannot be evaluated on 3.9, which runs the doctor
    # (detail, status, hint) of a step that worked
    Detail = Callable[[str, Mapping[str, Any], Host], tuple[str, str, str | None]]


def mlx_hint(step: str, error: str, host: Host) -> str:
    """What to do about a failed probe step."""
    if "libmlx" in error and host.is_linux:
        return f"plain mlx has no Linux library; install its CPU build: `{SYNC_LINUX_MLX}`"
    if "No module named" in error:
        return f"install the locked env: `{SYNC_MAC if host.is_mac else SYNC_LINUX_MLX}`"
    if "mlx_lm" in step:
        return "mlx-lm imports transformers: see packages.transformers, then `uv sync --locked`"
    return (
        "mlx is installed but does not work: reinstall it from the lock "
        "(`uv sync --locked --reinstall-package mlx`); if it persists, report the error text"
    )


def step_check(
    report: Report,
    host: Host,
    probe: ProbeResult | None,
    step: str,
    check_id: str,
    title: str,
    required: bool,
    why: str,
    detail: Detail,
) -> None:
    """One check from one probe step: skipped (`why`) when mlx was not probed."""
    if probe is None:
        report.add(Check(check_id, title, "skip", why))
        return
    result = probe.step(step) or {"ok": False, "error": "no result from the probe"}
    data = {k: v for k, v in result.items() if k not in ("ok", "error")}
    if not result.get("ok"):
        error = str(result.get("error"))
        report.add(
            Check(
                check_id,
                title,
                "fail" if required else "warn",
                error,
                required=required,
                hint=mlx_hint(step, error, host),
                data=data,
            )
        )
        return
    text, status, hint = detail(step, result, host)
    report.add(Check(check_id, title, status, text, required=required, hint=hint, data=data))


def _import_detail(step: str, result: Mapping[str, Any], host: Host) -> tuple[str, str, str | None]:
    if step == "import mlx":
        return f"ok ({result.get('path')})", "pass", None
    if step in ("import mlx.core", "import mlx_lm"):
        return f"ok ({result.get('version')})", "pass", None
    return "ok", "pass", None


def import_checks(
    report: Report, host: Host, probe: ProbeResult | None, required: bool, why: str
) -> None:
    """The four imports, from the child process's results."""
    for step in IMPORT_STEPS:
        step_check(report, host, probe, step, IMPORT_IDS[step], step, required, why, _import_detail)
