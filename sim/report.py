"""Reports of a simulation summary: a rich terminal view, JSON, CSV tables and one HTML file.

Every report starts from the verdict (SL and answer rate against their targets), then the
tables by queue, language, country and site, then the intervals that miss the SL target.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Console
from rich.table import Table

from sim.kpi import (
    ALL,
    INCONCLUSIVE,
    INTERVAL_KPI_NAMES,
    KPI_NAMES,
    MET,
    NOT_MET,
    Estimate,
    GroupVerdict,
    IntervalSummary,
    Summary,
    Verdict,
)
from sim.records import RunResult

#: KPIs shown as percentages; the rest are seconds or call counts.
PERCENT_KPIS = frozenset({"sl_offered", "sl_answered", "sl_abandon_good", "sl_excl_short",
                          "abandon_rate", "answer_rate", "occupancy", "sl_consistency"})
SECONDS_KPIS = frozenset({"asa_s", "mean_wait_s"})
#: Columns of the per-group tables (terminal and HTML); by site only the answered-call ones.
GROUP_COLUMNS = ("offered", "sl_offered", "sl_answered", "sl_excl_short", "asa_s",
                 "abandon_rate", "answer_rate", "sl_consistency")
#: Narrower set for an 80-column terminal (the HTML and CSV carry every variant).
TERMINAL_COLUMNS = ("offered", "sl_offered", "asa_s", "abandon_rate", "answer_rate",
                    "sl_consistency")
SITE_COLUMNS = ("answered", "answered_within", "sl_answered", "asa_s", "occupancy")
LABELS = {"sl_offered": "SL", "answer_rate": "CAR"}
#: Short column headers for the terminal tables.
HEADERS = {"offered": "offered", "sl_offered": "SL", "sl_answered": "SL ans",
           "sl_excl_short": "SL excl short", "asa_s": "ASA", "abandon_rate": "aband",
           "answer_rate": "CAR", "sl_consistency": "consist", "answered": "answered",
           "answered_within": "ans <= T", "occupancy": "occ"}


class MissedInterval(NamedTuple):
    """An interval with enough offered calls whose mean sl_offered is below target."""

    interval: int
    label: str
    sl_offered: float
    offered: float


# --- Formatting ---------------------------------------------------------------------------

def fmt(kpi: str, value: float) -> str:
    """A KPI value for people: percent with one decimal, seconds, or a call count."""
    if not math.isfinite(value):
        return "-"
    if kpi in PERCENT_KPIS:
        return f"{100 * value:.1f}%"
    if kpi in SECONDS_KPIS:
        return f"{value:.1f} s"
    return f"{value:.1f}" if value != round(value) else f"{value:.0f}"


def fmt_spread(kpi: str, spread: float) -> str:
    """A CI half-width or sd in the KPI's unit (percentage points for rates)."""
    if not math.isfinite(spread):
        return "n/a"
    scale = 100.0 if kpi in PERCENT_KPIS else 1.0
    return f"{scale * spread:.1f}"


def fmt_half_width(kpi: str, est: Estimate) -> str:
    """The 95% CI half-width of an estimate in the KPI's unit."""
    return fmt_spread(kpi, est.half_width)


def ci_bounds(kpi: str, est: Estimate) -> tuple[float, float]:
    """The 95% CI of an estimate, clipped to [0, 1] for shares and at 0 for times and counts."""
    low, high = est.mean - est.half_width, est.mean + est.half_width
    if kpi in PERCENT_KPIS:
        return max(low, 0.0), min(high, 1.0)
    return max(low, 0.0), high


def fmt_ci(kpi: str, est: Estimate, sep: str = " ± ") -> str:
    """Mean and CI for people: ``90.9% ± 0.4``, or the clipped range ``66.7% [0.0-100.0]`` when
    the symmetric interval would leave [0, 100%]; ``-`` when undefined."""
    if not math.isfinite(est.mean):
        return "-"
    if not math.isfinite(est.half_width):
        return fmt(kpi, est.mean)
    low, high = ci_bounds(kpi, est)
    if math.isclose(low, est.mean - est.half_width) and \
            math.isclose(high, est.mean + est.half_width):
        return f"{fmt(kpi, est.mean)}{sep}{fmt_half_width(kpi, est)}"
    scale, unit = (100.0, "%") if kpi in PERCENT_KPIS else (1.0, "")
    return f"{fmt(kpi, est.mean)} [{scale * low:.1f}-{scale * high:.1f}{unit}]"


def verdict_line(summary: Summary, verdict: Verdict) -> str:
    """E.g. ``SL 86.2% +- 0.8 (target 85% / 20 s): MET``."""
    label = LABELS.get(verdict.kpi, verdict.kpi)
    extra = f" / {summary.threshold_s:g} s" if verdict.kpi == "sl_offered" else ""
    return (f"{label} {fmt_ci(verdict.kpi, verdict.value, ' +- ')} "
            f"(target {100 * verdict.target:g}%{extra}): {verdict.status}")


def group_label(g: GroupVerdict) -> str:
    """``center``, or the dimension and group name, e.g. ``language hy``."""
    return "center" if g.dim == "center" else f"{g.dim} {g.group}"


def overall_verdict_line(summary: Summary) -> str:
    """One line: the verdict over the center and every group with enough volume."""
    judged = len(summary.group_verdicts)
    misses = summary.misses
    if not misses:
        return f"Verdict: MET for the center and all {judged - 1} groups with enough volume"
    worst = NOT_MET if any(g.status == NOT_MET for g in misses) else INCONCLUSIVE
    by_dim: dict[str, list[str]] = {}
    for g in misses:
        by_dim.setdefault(g.dim, []).append(g.group)
    names = "; ".join(dim if dim == "center" else f"{dim} {' '.join(groups)}"
                      for dim, groups in by_dim.items())
    return (f"Verdict: {worst} for {len(misses)} of {judged} judged (center and groups with "
            f">= {summary.min_offered:g} offered calls per replication): {names}")


def verdict_table(summary: Summary, everyone: bool = False) -> Table:
    """The center and every group that misses (``everyone``: every judged group): SL and CAR
    with 95% CIs, their targets and the verdict."""
    table = Table(title=f"Verdicts (groups with >= {summary.min_offered:g} offered calls per "
                        "replication)", title_justify="left")
    for name, justify in (("group", "left"), ("calls", "right"), ("SL ± CI", "right"),
                          ("target", "right"), ("CAR ± CI", "right"), ("target", "right"),
                          ("verdict", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    style = {MET: "green", NOT_MET: "bold red", INCONCLUSIVE: "yellow"}
    for g in summary.group_verdicts:
        if not everyone and g.dim != "center" and g.status == MET:
            continue
        sl = g.get("sl_offered") or g.get("sl_answered")
        car = g.get("answer_rate")
        table.add_row(group_label(g), f"{g.volume:.0f}",
                      "-" if sl is None else fmt_ci(sl.kpi, sl.value)
                      + (" (ans)" if sl.kpi == "sl_answered" else ""),
                      "-" if sl is None else f"{100 * sl.target:g}%",
                      "-" if car is None else fmt_ci(car.kpi, car.value),
                      "-" if car is None else f"{100 * car.target:g}%",
                      g.status, style=style[g.status])
    return table


def print_verdicts(summary: Summary, console: Console) -> None:
    """The verdict table (center and misses), then who met and who had too few calls."""
    console.print(verdict_table(summary))
    met = [group_label(g) for g in summary.group_verdicts if g.dim != "center" and g.status == MET]
    if met:
        console.print(f"MET ({len(met)}): {', '.join(met)}", markup=False, highlight=False)
    if summary.unjudged:
        few = ", ".join(f"{dim} {group} ({volume:.0f})" for dim, group, volume in summary.unjudged)
        console.print(f"no verdict, fewer than {summary.min_offered:g} calls per replication: "
                      f"{few}", markup=False, highlight=False)


def verdict_lines(summary: Summary) -> list[str]:
    """One line per headline KPI, SL first, then answer rate (CAR)."""
    return [verdict_line(summary, v) for v in summary.verdicts]


def interval_label(summary: Summary, start_s: float) -> str:
    """Local wall-clock start of an interval from the run's ISO start, else an offset."""
    try:
        start = datetime.fromisoformat(summary.start_iso)
    except ValueError:
        hours, rest = divmod(int(start_s), 3600)
        return f"+{hours:02d}:{rest // 60:02d}"
    return (start + timedelta(seconds=float(start_s))).strftime("%Y-%m-%d %H:%M")


def missed_intervals(summary: Summary) -> list[MissedInterval]:
    """Intervals with at least ``min_volume`` offered calls (mean over replications) whose mean
    sl_offered misses the target, worst first."""
    table = summary.intervals[ALL]
    sl = table.mean["sl_offered"][0]
    offered = table.mean["offered"][0]
    finite = np.isfinite(sl)
    missed = np.flatnonzero(finite & (offered >= summary.min_volume)
                            & (np.where(finite, sl, 1.0) < summary.target))
    order = missed[np.argsort(sl[missed], kind="stable")]
    return [MissedInterval(int(i), interval_label(summary, float(table.start_s[i])),
                           float(sl[i]), float(offered[i])) for i in order]


# --- Terminal -----------------------------------------------------------------------------

def _group_table(summary: Summary, dim: str) -> Table:
    columns = SITE_COLUMNS if dim == "site" else TERMINAL_COLUMNS
    title = f"By {dim}" + (" (answering site: answered calls and occupancy)"
                           if dim == "site" else "")
    table = Table(title=title, title_justify="left")
    table.add_column(dim, no_wrap=True)
    for k in columns:
        table.add_column(HEADERS[k], justify="right", no_wrap=True)
        if k == "sl_offered":
            table.add_column("±CI", justify="right", no_wrap=True)
    for group, row in summary.groups[dim].items():
        cells: list[str] = []
        for k in columns:
            cells.append(fmt(k, row[k].mean))
            if k == "sl_offered":
                cells.append(fmt_half_width(k, row[k]))
        table.add_row(group, *cells)
    return table


def print_summary(summary: Summary, console: Console | None = None, worst: int = 5) -> None:
    """Print the verdict, the overall KPIs, the tables by group, and the missed intervals."""
    console = console or Console()
    colour = {MET: "bold green", NOT_MET: "bold red", INCONCLUSIVE: "bold yellow"}
    for line, verdict in zip(verdict_lines(summary), summary.verdicts, strict=True):
        console.print(line, style=colour[verdict.status], markup=False, highlight=False)
    console.print(overall_verdict_line(summary), markup=False, highlight=False,
                  style="bold green" if summary.meets_target else "bold red")
    console.print(f"{summary.n_replications} replication(s), 95% CI from Student t "
                  f"({summary.t_source}); intervals of {summary.interval_s / 60:g} min from "
                  f"{summary.start_iso}", markup=False, highlight=False)
    overall = Table(title="Overall", title_justify="left")
    for name, justify in (("kpi", "left"), ("mean", "right"), ("±95% CI", "right"),
                          ("sd", "right")):
        overall.add_column(name, justify=justify)  # type: ignore[arg-type]
    for k in KPI_NAMES:
        est = summary.overall[k]
        overall.add_row(k, fmt(k, est.mean), fmt_half_width(k, est), fmt_spread(k, est.sd))
    console.print(overall)
    for dim in summary.groups:
        console.print(_group_table(summary, dim))
    missed = missed_intervals(summary)
    qualified = int(np.sum(summary.intervals[ALL].mean["offered"][0] >= summary.min_volume))
    console.print(f"Intervals missing SL {100 * summary.target:g}%: {len(missed)} of "
                  f"{qualified} with >= {summary.min_volume} offered calls", markup=False,
                  highlight=False)
    for m in missed[:worst]:
        console.print(f"  {m.label}  SL {fmt('sl_offered', m.sl_offered)}  "
                      f"({m.offered:.0f} offered)", markup=False, highlight=False)
    if len(missed) > worst:
        console.print(f"  ... and {len(missed) - worst} more (all in report.html and "
                      "intervals.csv)", markup=False, highlight=False)
    print_verdicts(summary, console)


# --- JSON and CSV -------------------------------------------------------------------------

def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _estimate_dict(est: Estimate) -> dict[str, Any]:
    return {"mean": _clean(est.mean), "sd": _clean(est.sd),
            "half_width": _clean(est.half_width), "n": est.n}


def _interval_dict(table: IntervalSummary) -> dict[str, Any]:
    def rows(arr: np.ndarray) -> list[list[float | None]]:
        # Six decimals are plenty per interval and keep week-long documents small.
        return [[None if v != v else v for v in row] for row in np.round(arr, 6).tolist()]

    return {"groups": list(table.groups), "start_s": table.start_s.tolist(),
            "targets": list(table.targets),
            "mean": {k: rows(v) for k, v in table.mean.items()},
            "half_width": {k: rows(v) for k, v in table.half_width.items()}}


def summary_to_dict(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON types (NaN becomes null)."""
    return {
        "n_replications": summary.n_replications,
        "seeds": list(summary.seeds),
        "start_iso": summary.start_iso,
        "interval_s": summary.interval_s,
        "threshold_s": summary.threshold_s,
        "target": summary.target,
        "answer_rate_target": summary.answer_rate_target,
        "min_volume": summary.min_volume,
        "t_source": summary.t_source,
        "meets_target": summary.meets_target,
        "verdicts": [{"kpi": v.kpi, "target": v.target, "met": v.met, "status": v.status,
                      "value": _estimate_dict(v.value), "line": verdict_line(summary, v)}
                     for v in summary.verdicts],
        "min_offered": summary.min_offered,
        "group_verdicts": [
            {"dim": g.dim, "group": g.group, "volume": g.volume, "status": g.status,
             "kpis": {v.kpi: {"target": v.target, "status": v.status,
                              "value": _estimate_dict(v.value)} for v in g.verdicts}}
            for g in summary.group_verdicts],
        "unjudged": [{"dim": d, "group": g, "volume": v} for d, g, v in summary.unjudged],
        "overall": {k: _estimate_dict(e) for k, e in summary.overall.items()},
        "groups": {dim: {g: {k: _estimate_dict(e) for k, e in row.items()}
                         for g, row in groups.items()}
                   for dim, groups in summary.groups.items()},
        "group_targets": summary.group_targets,
        "intervals": {dim: _interval_dict(t) for dim, t in summary.intervals.items()},
    }


def write_json(path: str | Path, summary: Summary) -> None:
    """Write the whole summary as one JSON document (NaN as null)."""
    Path(path).write_text(json.dumps(summary_to_dict(summary), allow_nan=False) + "\n",
                          encoding="utf-8")


def _csv_value(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""


def _estimate_columns() -> list[str]:
    return [c for k in KPI_NAMES for c in (k, f"{k}_sd", f"{k}_hw")]


def _estimate_cells(row: dict[str, Estimate]) -> list[str]:
    return [_csv_value(v) for k in KPI_NAMES for v in (row[k].mean, row[k].sd, row[k].half_width)]


def _interval_rows(summary: Summary, table: IntervalSummary) -> list[list[str]]:
    """One row per (group, interval); six significant digits keep week-long tables small."""
    # Stack to (groups, intervals, columns) once: indexing numpy scalars per cell is slow.
    cube = np.stack([a for k in INTERVAL_KPI_NAMES for a in (table.mean[k], table.half_width[k])],
                    axis=-1)
    labels = [interval_label(summary, float(start)) for start in table.start_s]
    return [[str(i), labels[i], group, *["" if v != v else f"{v:.6g}" for v in cells]]
            for g, group in enumerate(table.groups)
            for i, cells in enumerate(cube[g].tolist())]


def write_csv(directory: str | Path, summary: Summary) -> list[Path]:
    """Write ``overall.csv``, ``by_<dim>.csv`` and ``intervals[_by_<dim>].csv`` (empty cell =
    undefined); return the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, header: list[str], rows: list[list[str]]) -> None:
        path = out / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        written.append(path)

    header = ["group", "sl_target", "replications", *_estimate_columns()]
    write("overall.csv", header, [[ALL, repr(summary.target), str(summary.n_replications),
                                   *_estimate_cells(summary.overall)]])
    for dim, groups in summary.groups.items():
        targets = summary.group_targets[dim]
        write(f"by_{dim}.csv", header,
              [[g, repr(targets[g]), str(summary.n_replications), *_estimate_cells(row)]
               for g, row in groups.items()])
    for dim, table in summary.intervals.items():
        name = "intervals.csv" if dim == ALL else f"intervals_by_{dim}.csv"
        cols = [c for k in INTERVAL_KPI_NAMES for c in (k, f"{k}_hw")]
        write(name, ["interval", "start", "group", *cols], _interval_rows(summary, table))
    return written


# --- HTML ---------------------------------------------------------------------------------

def _png(fig: Figure) -> str:
    """Render a figure with the Agg canvas (no pyplot, no global backend) as base64 PNG."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _hours(summary: Summary, table: IntervalSummary) -> np.ndarray:
    return (table.start_s + summary.interval_s / 2) / 3600.0


def _plot_sl(summary: Summary) -> str:
    table = summary.intervals[ALL]
    x = _hours(summary, table)
    sl, half = table.mean["sl_offered"][0], table.half_width["sl_offered"][0]
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    band = np.nan_to_num(half, nan=0.0)
    ax.fill_between(x, 100 * np.maximum(sl - band, 0.0), 100 * np.minimum(sl + band, 1.0),
                    alpha=0.25, label="95% CI")
    ax.plot(x, 100 * sl, marker=".", label="sl_offered (mean)")
    ax.axhline(100 * summary.target, color="red", linestyle="--",
               label=f"target {100 * summary.target:g}%")
    ax.set(ylabel="SL %", xlabel=f"hours from {summary.start_iso}", ylim=(0, 101),
           title=f"Service level per interval (answered within {summary.threshold_s:g} s)")
    ax.legend(loc="lower left", fontsize="small")
    return _png(fig)


def _plot_volume(summary: Summary) -> str:
    table = summary.intervals[ALL]
    x = _hours(summary, table)
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    ax.plot(x, table.mean["offered"][0], label="offered")
    ax.plot(x, table.mean["answered"][0], label="answered")
    ax.plot(x, table.mean["abandoned"][0], label="abandoned")
    ax.set(ylabel="calls per interval (mean)", xlabel=f"hours from {summary.start_iso}",
           title="Offered, answered and abandoned calls per interval")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def _plot_depth(summary: Summary, results: Sequence[RunResult]) -> str | None:
    """Calls waiting per interval, all queues together: mean over replications and the peak."""
    means = [r.queue_depth_mean for r in results if r.queue_depth_mean is not None]
    peaks = [r.queue_depth_max for r in results if r.queue_depth_max is not None]
    if not means or len({m.shape for m in means}) != 1:
        return None
    mean = np.mean([m.sum(axis=1) for m in means], axis=0)
    peak = np.max([p.max(axis=1) for p in peaks], axis=0)
    x = (np.arange(len(mean)) + 0.5) * summary.interval_s / 3600.0
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    ax.plot(x, mean, label="waiting, all queues (mean)")
    ax.plot(x, peak, linestyle="--", label="largest single queue (peak)")
    ax.set(ylabel="calls waiting", xlabel=f"hours from {summary.start_iso}",
           title="Queue depth per interval")
    ax.legend(loc="upper left", fontsize="small")
    return _png(fig)


def _plot_occupancy(summary: Summary) -> str | None:
    table = summary.intervals.get("site")
    if table is None:
        return None
    x = _hours(summary, table)
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    for g, site in enumerate(table.groups):
        ax.plot(x, 100 * table.mean["occupancy"][g], label=site)
    ax.plot(x, 100 * summary.intervals[ALL].mean["occupancy"][0], color="black",
            linestyle=":", label="all sites")
    ax.set(ylabel="occupancy %", xlabel=f"hours from {summary.start_iso}", ylim=(0, 101),
           title="Agent occupancy per interval per site")
    ax.legend(loc="lower left", fontsize="small")
    return _png(fig)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _with_ci(kpi: str, est: Estimate) -> str:
    if not math.isfinite(est.mean):
        return "-"
    if not math.isfinite(est.half_width):
        return fmt(kpi, est.mean)
    return f"{fmt(kpi, est.mean)} ±{fmt_half_width(kpi, est)}"


def _html_groups(summary: Summary, dim: str) -> str:
    columns = SITE_COLUMNS if dim == "site" else GROUP_COLUMNS
    rows = [[g, *[_with_ci(k, row[k]) for k in columns]] for g, row in summary.groups[dim].items()]
    note = (" <small>(answering site: answered-call KPIs and occupancy only)</small>"
            if dim == "site" else "")
    return f"<h2>By {html.escape(dim)}{note}</h2>" + _html_table([dim, *columns], rows)


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 8px}
td{text-align:right}td:first-child{text-align:left}.met{color:#060}.missed{color:#a00}
img{max-width:100%}"""


def write_html(path: str | Path, results: Sequence[RunResult], summary: Summary) -> None:
    """Write one self-contained HTML report: verdict, plots (embedded PNG) and tables."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>ACD simulation report"
             f"</title><style>{_CSS}</style></head><body><h1>ACD simulation report</h1>"]
    for line, v in zip(verdict_lines(summary), summary.verdicts, strict=True):
        parts.append(f"<p class='{'met' if v.met else 'missed'}'><b>{html.escape(line)}</b></p>")
    parts.append(f"<p>{summary.n_replications} replication(s); 95% CI from Student t "
                 f"({html.escape(summary.t_source)}); intervals of {summary.interval_s / 60:g} "
                 f"min from {html.escape(summary.start_iso)}.</p>")
    plots = [_plot_sl(summary), _plot_volume(summary), _plot_depth(summary, results),
             _plot_occupancy(summary)]
    parts += [f"<p><img alt='plot' src='data:image/png;base64,{p}'></p>" for p in plots if p]
    parts.append("<h2>Overall</h2>" + _html_table(
        ["kpi", "mean", "±95% CI", "replications"],
        [[k, fmt(k, e.mean), fmt_half_width(k, e), str(e.n)]
         for k, e in summary.overall.items()]))
    parts += [_html_groups(summary, dim) for dim in summary.groups]
    missed = missed_intervals(summary)
    parts.append(f"<h2>Intervals missing the SL target ({len(missed)})</h2>" + _html_table(
        ["interval start", "sl_offered", "offered"],
        [[m.label, fmt("sl_offered", m.sl_offered), f"{m.offered:.1f}"] for m in missed]))
    parts.append("<h2>Replications</h2>" + _html_table(
        ["seed", "calls", "wall s"],
        [[str(r.seed), str(len(r.calls)), f"{r.wall_s:.2f}"] for r in results]))
    parts.append("</body></html>\n")
    Path(path).write_text("\n".join(parts), encoding="utf-8")
