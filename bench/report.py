"""The Markdown table and the PNG plot written next to each result JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.01:
        return f"{x:.3g}"
    return f"{x:.3f}".rstrip("0").rstrip(".") if abs(x) < 10 else f"{x:.1f}"


def _row(f: dict[str, Any]) -> str:
    target = f["target"]["text"] if f["target"] else ""
    met = {True: "yes", False: "**no**", None: ""}[f["passed"]]
    spread = f"{_num(f['min'])} - {_num(f['max'])}"
    return (
        f"| {f['label']} | {_num(f['median'])} | {spread} | {_num(f['iqr'])} | {f['n']} "
        f"| {f['unit']} | {target} | {met} |"
    )


HEADER = (
    "| figure | median | min - max | IQR | n | unit | target | met |\n"
    "|---|---:|---:|---:|---:|---|---|---|"
)


def summary(run: dict[str, Any]) -> str:
    """The machine, the targets and the headline figures of a run: what bench/README.md quotes."""
    m = run["machine"]
    ram = f"{m['ram_bytes'] / 2**30:.0f} GiB" if m.get("ram_bytes") else "? RAM"
    pk = m["packages"]
    lines = [
        f"{m['os']}, kernel {m['kernel']}, {m['cpu_model']}, {m['cores_logical']} cores, {ram}; "
        f"Python {m['python']}; mlx {pk.get('mlx') or '-'} ({run.get('mlx_device') or 'n/a'}), "
        f"mlx-lm {pk.get('mlx-lm') or '-'}, transformers {pk.get('transformers') or '-'}, "
        f"torch {pk.get('torch') or '-'}. Load average at start {m.get('load_average_at_start')}"
        f", at end {run.get('load_average_at_end')}. Took {run['duration_s']:.0f} s.",
        "",
    ]
    lines += [f"- {note}" for note in run.get("notes", [])] + ([""] if run.get("notes") else [])
    targeted = [_row(f) for f in run["figures"] if f["target"]]
    met = run["targets_summary"]
    lines += [f"## Targets ({met['met']} met, {met['not_met']} not met)", "", HEADER, *targeted, ""]
    if headline := _headline(run):
        lines += ["## Headline figures", "", HEADER, *[_row(f) for f in headline], ""]
    return "\n".join(lines)


def _headline(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Untargeted figures that say what the machine does: copy bandwidth, prefill and decode
    speed on the largest checkpoint and its share of inspect's ceiling, and the environment
    set-up."""
    largest = run["settings"]["sizes"][-1]
    throughput = (f"throughput.{largest}.", (".prefill", ".decode", ".decode_share_of_ceiling"))
    return [
        f
        for f in run["figures"]
        if not f["target"]
        and (
            f["group"] in ("bandwidth", "env")
            or (f["id"].startswith(throughput[0]) and f["id"].endswith(throughput[1]))
        )
    ]


def markdown(run: dict[str, Any]) -> str:
    """The summary, then every figure by group, then what was skipped."""
    m = run["machine"]
    title = f"# athena bench: {run['started_utc']} on {m['hostname']} ({run['mode']})"
    lines = [title, "", summary(run), "## All figures", ""]
    group = None
    for f in run["figures"]:
        if f["group"] != group:
            group = f["group"]
            lines += ["", f"### {group}", "", HEADER]
        lines.append(_row(f))
    if run["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- {s['label']}: {s['reason']}" for s in run["skipped"]]
    lines.append("")
    return "\n".join(lines)


def plot(run: dict[str, Any], path: Path) -> None:
    """Four panels: targets (ratio with threshold), decode / inspect's ceiling, load times,
    set-up times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pick(keep: Any) -> list[dict[str, Any]]:
        return [f for f in run["figures"] if keep(f)]

    panels = [
        ("Targets: median, min-max, threshold (|)", pick(lambda f: f["target"])),
        (
            "Decode tokens/s / athena inspect's decode ceiling",
            pick(lambda f: f["id"].endswith(".decode_share_of_ceiling")),
        ),
        ("Load time (s)", pick(lambda f: f["group"] == "load")),
        (
            "Import and environment set-up (s)",
            pick(lambda f: f["group"] in ("import", "env") and f["unit"] == "s"),
        ),
    ]
    heights = [max(2.0, 0.28 * len(fs) + 0.8) for _, fs in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, sum(heights)), squeeze=False)
    fig.subplots_adjust(hspace=0.6)
    for ax, (title, fs) in zip(axes[:, 0], panels, strict=True):
        ax.set_title(title, fontsize=10, loc="left")
        if not fs:
            ax.text(0.5, 0.5, "nothing measured", ha="center", va="center")
            ax.set_axis_off()
            continue
        ys, med = list(range(len(fs))), [f["median"] for f in fs]
        err = [[f["median"] - f["min"] for f in fs], [f["max"] - f["median"] for f in fs]]
        passed = {None: "tab:gray", True: "tab:green", False: "tab:red"}
        colors = [passed[f["passed"]] for f in fs]
        ax.barh(ys, med, xerr=err, color=colors, alpha=0.8, capsize=2)
        for y, f in zip(ys, fs, strict=True):
            if f["target"]:
                ax.plot([f["target"]["threshold"]] * 2, [y - 0.4, y + 0.4], color="black", lw=2)
        ax.set_yticks(ys)
        ax.set_yticklabels([f["label"] for f in fs], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    m = run["machine"]
    fig.suptitle(
        f"athena bench {run['started_utc']} · {m['cpu_model']}, {m['cores_logical']} cores · "
        f"{run['mode']}",
        fontsize=10,
    )
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
