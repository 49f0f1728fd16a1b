"""Reports of a simulation summary: a rich terminal view, JSON, CSV tables and one HTML file.

Every report starts from the verdict (SL and answer rate against their targets), then the
tables by queue, language, country and site, then the intervals that miss the SL target.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from zoneinfo import ZoneInfo

import jinja2
import numpy as np
from rich.console import Console
from rich.table import Table

from sim.kpi import (
    ALL,
    INCONCLUSIVE,
    INTERVAL_KPI_NAMES,
    KPI_NAMES,
    MET,
    NOT_MET,
    SHARE_KPIS,
    Estimate,
    GroupVerdict,
    IntervalSummary,
    Summary,
    Verdict,
    ci_bounds,
)
from sim.plots import (
    DAILY_AFTER_DAYS,
    PERCENTILES,
    Plot,
    all_plots,
    day_plots,
    is_daily,
    scoped_ids,
)
from sim.records import RunResult
from sim.rollup import (
    JUDGED,
    ROLLUP_COUNTS,
    ROLLUP_RATIOS,
    TOO_FEW,
    CalendarRollups,
    Rollup,
    is_multi_day,
    rollup_dict,
    run_periods,
    worst_period,
    zone_label,
)

#: KPIs shown as percentages (the shares); the rest are seconds or call counts.
PERCENT_KPIS = SHARE_KPIS
SECONDS_KPIS = frozenset({"asa_s", "mean_wait_s", "aht_s", "callback_work_wait_s"})
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


@dataclass(frozen=True)
class Provenance:
    """Where a run's results come from; written into the report, summary.json and each CSV."""

    run_id: str
    scenario: str
    scenario_name: str
    source: str
    overrides: dict[str, str] = field(default_factory=dict)
    seed: int = 1
    replications: int = 1
    version: str = ""
    build: str = ""
    created: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return {"run_id": self.run_id, "scenario": self.scenario,
                "scenario_name": self.scenario_name, "source": self.source,
                "overrides": dict(self.overrides), "seed": self.seed,
                "replications": self.replications, "version": self.version,
                "build": self.build, "created": self.created}

    def csv_cells(self) -> dict[str, str]:
        """The columns appended to every CSV row."""
        overrides = " ".join(f"{k}={v}" for k, v in self.overrides.items())
        return {"run_id": self.run_id, "scenario": self.scenario, "overrides": overrides,
                "seed": str(self.seed), "version": self.version, "build": self.build}


def provenance_rows(provenance: Provenance | None, summary: Summary) -> list[tuple[str, str]]:
    """Label and value of each provenance item, as the report shows them."""
    rows = []
    if provenance is not None:
        rows += [("scenario", f"{provenance.scenario_name} ({provenance.scenario})"),
                 ("traffic", provenance.source),
                 ("overrides", ", ".join(f"{k}={v}" for k, v in provenance.overrides.items())
                  or "none"),
                 ("seed", str(provenance.seed)),
                 ("version", provenance.version), ("router build", provenance.build),
                 ("run", f"{provenance.run_id}, created {provenance.created}")]
    rows += [("replications", f"{summary.n_replications} (seeds "
                              f"{', '.join(map(str, summary.seeds))}); 95% CI from Student t "
                              f"({summary.t_source})"),
             ("intervals", f"{summary.interval_s / 60:g} min from {summary.start_iso}"),
             ("clock times", zone_label(summary))]
    return rows


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
    """The 95% CI half-width of an estimate in the KPI's unit; ``-`` when every replication
    gave the same value (no spread: a CI of 0 would claim a certainty the runs cannot give)."""
    return "-" if est.half_width == 0 else fmt_spread(kpi, est.half_width)


def fmt_ci(kpi: str, est: Estimate, sep: str = " ± ") -> str:
    """Mean and CI for people: ``90.9% ± 0.4``, or the clipped range ``66.7% [0.0-100.0]`` when
    the symmetric interval would leave [0, 100%]; the mean alone when the replications do not
    differ; ``-`` when undefined."""
    if not math.isfinite(est.mean):
        return "-"
    if not math.isfinite(est.half_width) or est.half_width == 0:
        return fmt(kpi, est.mean)  # one replication, or no spread: no CI to show
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
    """Wall-clock start of an interval in the summary's zone (else the start's offset)."""
    try:
        start = datetime.fromisoformat(summary.start_iso)
    except ValueError:
        hours, rest = divmod(int(start_s), 3600)
        return f"+{hours:02d}:{rest // 60:02d}"
    when = start + timedelta(seconds=float(start_s))
    if summary.timezone and when.tzinfo is not None:
        when = when.astimezone(ZoneInfo(summary.timezone))
    return when.strftime("%Y-%m-%d %H:%M")


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


def print_summary(summary: Summary, console: Console | None = None, worst: int = 20,
                  results: Sequence[RunResult] = (),
                  periods: CalendarRollups | None = None) -> None:
    """Print the verdict, the overall KPIs, the tables by group, the missed intervals, the
    verdicts by group and, for a run of more than a day, the weeks that are not MET (judged
    with a CI across the replications' ``results`` when given; ``periods``: the run's
    roll-ups, see :func:`~sim.rollup.run_periods`)."""
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
    weeks = run_periods(summary, results, periods).get("weekly", [])
    for line in weekly_miss_lines(weeks):
        console.print(line, markup=False, highlight=False)


#: Most groups the terminal's week-by-week view lists (weekly.csv has them all).
WEEK_GROUPS = 5


def _week_miss_line(rows: Sequence[Rollup], judged: int) -> str:
    """E.g. ``3 NOT MET, 1 INCONCLUSIVE of 5 weeks; worst 2026-W11: SL 80.1% ± 1.2, CAR
    97.0% ± 0.3``: the worst is :func:`sim.rollup.worst_period` of those weeks."""
    counts = ", ".join(f"{n} {status}" for status in (NOT_MET, INCONCLUSIVE)
                       if (n := sum(r.status == status for r in rows)))
    worst = worst_period(rows) or rows[0]
    kpis = ", ".join(f"{LABELS[k]} {fmt_ci(k, worst.estimates[k], ' ± ')}" for k in JUDGED)
    partial = " (partial)" if worst.period.partial else ""
    return f"{counts} of {judged} weeks; worst {worst.period.label}{partial}: {kpis}"


def weekly_miss_lines(weeks: Sequence[Rollup], groups: int = WEEK_GROUPS) -> list[str]:
    """The weeks NOT MET or INCONCLUSIVE, a line per group (the center first, then the queues
    and languages with the most weeks NOT MET), at most ``groups`` of them, and where the rest
    is; no lines for a run without weeks."""
    if not weeks:
        return []
    misses: dict[tuple[str, str], list[Rollup]] = {}
    judged: dict[tuple[str, str], int] = {}
    for w in weeks:
        judged[w.dim, w.group] = judged.get((w.dim, w.group), 0) + (w.status != TOO_FEW)
        if w.status in (NOT_MET, INCONCLUSIVE):
            misses.setdefault((w.dim, w.group), []).append(w)
    if not misses:
        return ["Week by week: every judged week MET for the center, queues and languages "
                "(weekly.csv)"]
    order = sorted(misses, key=lambda k: (k[0] != "center", -sum(
        w.status == NOT_MET for w in misses[k]), -len(misses[k])))
    lines = ["Weeks not MET (95% CI across replications; every week in weekly.csv):"]
    for dim, group in order[:groups]:
        name = "center" if dim == "center" else f"{dim} {group}"
        lines.append(f"  {name}: {_week_miss_line(misses[dim, group], judged[dim, group])}")
    if len(order) > groups:
        lines.append(f"  ... and {len(order) - groups} more group(s) (weekly.csv)")
    return lines


# --- JSON and CSV -------------------------------------------------------------------------

def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _estimate_dict(est: Estimate, kpi: str = "") -> dict[str, Any]:
    low, high = ci_bounds(kpi, est)
    return {"mean": _clean(est.mean), "sd": _clean(est.sd),
            "half_width": _clean(est.half_width), "low": _clean(low), "high": _clean(high),
            "n": est.n}


#: Decimals of per-interval values in summary.json: means keep six; a CI half-width needs no
#: more than 0.01 percentage point (shares) or a thousandth (seconds, calls).
MEAN_DECIMALS = 6


def half_width_decimals(kpi: str) -> int:
    """Decimals of a per-interval CI half-width of ``kpi`` in summary.json."""
    return 4 if kpi in PERCENT_KPIS else 3


def _json_row(row: np.ndarray, decimals: int = MEAN_DECIMALS) -> list[float | int | None]:
    """One group's intervals for JSON: rounded to ``decimals`` (plenty per interval, and they
    keep year-long documents small), whole numbers without ``.0``, NaN as null."""
    return [None if v != v else int(v) if v.is_integer() else v
            for v in np.round(row, decimals).tolist()]


def _json_rows(arr: np.ndarray, decimals: int = MEAN_DECIMALS
               ) -> list[list[float | int | None]] | None:
    """A (groups, intervals) table for JSON, a row per group; None when no group has a value
    in any interval (with one replication every CI half-width, by site most KPIs), rather
    than a table of nulls."""
    return [_json_row(row, decimals) for row in arr] if np.isfinite(arr).any() else None


def _interval_dict(table: IntervalSummary) -> dict[str, Any]:
    return {"groups": list(table.groups), "start_s": table.start_s.tolist(),
            "targets": list(table.targets),
            "mean": {k: _json_rows(v) for k, v in table.mean.items()},
            "half_width": {k: _json_rows(v, half_width_decimals(k))
                           for k, v in table.half_width.items()}}


def summary_to_dict(summary: Summary, provenance: Provenance | None = None,
                    results: Sequence[RunResult] = (),
                    periods: CalendarRollups | None = None) -> dict[str, Any]:
    """The summary as plain JSON types (NaN becomes null), with its provenance if given; a run
    of more than one day also has its ``weekly`` and ``daily`` roll-ups (judged with a CI
    across the replications' ``results`` when given; ``periods``: those roll-ups, see
    :func:`~sim.rollup.run_periods`)."""
    return {**_head_dict(summary, provenance, run_periods(summary, results, periods)),
            "intervals": {dim: _interval_dict(t) for dim, t in summary.intervals.items()}}


def _head_dict(summary: Summary, provenance: Provenance | None,
               periods: CalendarRollups) -> dict[str, Any]:
    """Everything :func:`summary_to_dict` gives but the per-interval tables."""
    rolled = {name: [rollup_dict(r) for r in rows] for name, rows in periods.items()}
    return {
        **({"provenance": provenance.as_dict()} if provenance is not None else {}),
        "timezone": summary.timezone,
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
                      "value": _estimate_dict(v.value, v.kpi), "line": verdict_line(summary, v)}
                     for v in summary.verdicts],
        "min_offered": summary.min_offered,
        "group_verdicts": [
            {"dim": g.dim, "group": g.group, "volume": g.volume, "status": g.status,
             "kpis": {v.kpi: {"target": v.target, "status": v.status,
                              "value": _estimate_dict(v.value, v.kpi)} for v in g.verdicts}}
            for g in summary.group_verdicts],
        "unjudged": [{"dim": d, "group": g, "volume": v} for d, g, v in summary.unjudged],
        "overall": {k: _estimate_dict(e, k) for k, e in summary.overall.items()},
        "groups": {dim: {g: {k: _estimate_dict(e, k) for k, e in row.items()}
                         for g, row in groups.items()}
                   for dim, groups in summary.groups.items()},
        "group_targets": summary.group_targets,
        **rolled,
    }


def write_json(path: str | Path, summary: Summary, provenance: Provenance | None = None,
               results: Sequence[RunResult] = (),
               periods: CalendarRollups | None = None) -> None:
    """Write the whole summary as one JSON document (NaN as null; ``periods``: the run's
    roll-ups, see :func:`~sim.rollup.run_periods`).

    The per-interval tables are written a row at a time, so a year of intervals never sits in
    memory as Python lists; the bytes are those of ``json.dumps(summary_to_dict(...))``.
    """
    head = {**_head_dict(summary, provenance, run_periods(summary, results, periods)),
            "intervals": {}}
    text = json.dumps(head, allow_nan=False)
    with Path(path).open("w", encoding="utf-8") as fh:
        fh.write(text[:text.rindex("{}")] + "{")
        for d, (dim, table) in enumerate(summary.intervals.items()):
            fh.write((", " if d else "") + json.dumps(dim) + ": ")
            _write_interval_json(fh, table)
        fh.write("}}\n")


def _write_interval_json(fh: TextIO, table: IntervalSummary) -> None:
    """One dimension's interval table as :func:`_interval_dict` gives it, row by row."""
    fh.write('{"groups": ' + json.dumps(list(table.groups)) + ', "start_s": '
             + json.dumps(table.start_s.tolist()) + ', "targets": '
             + json.dumps(list(table.targets)))
    for part, values in (("mean", table.mean), ("half_width", table.half_width)):
        fh.write(f', "{part}": {{')
        for k, (name, arr) in enumerate(values.items()):
            fh.write((", " if k else "") + json.dumps(name) + ": ")
            if not np.isfinite(arr).any():
                fh.write("null")
                continue
            fh.write("[")
            decimals = MEAN_DECIMALS if part == "mean" else half_width_decimals(name)
            for g in range(arr.shape[0]):  # a group at a time: never the whole table as lists
                fh.write((", " if g else "")
                         + json.dumps(_json_row(arr[g], decimals), allow_nan=False))
            fh.write("]")
        fh.write("}")
    fh.write("}")


def _csv_value(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""


def _estimate_columns() -> list[str]:
    return [c for k in KPI_NAMES for c in (k, f"{k}_sd", f"{k}_hw")]


def _estimate_cells(row: dict[str, Estimate]) -> list[str]:
    return [_csv_value(v) for k in KPI_NAMES for v in (row[k].mean, row[k].sd, row[k].half_width)]


def _interval_rows(summary: Summary, table: IntervalSummary) -> Iterator[list[str]]:
    """One row per (group, interval), a group at a time; six significant digits keep
    week-long tables small."""
    labels = [interval_label(summary, float(start)) for start in table.start_s]
    for g, group in enumerate(table.groups):
        # Stack to (intervals, columns) once: indexing numpy scalars per cell is slow.
        cube = np.stack([a[g] for k in INTERVAL_KPI_NAMES
                         for a in (table.mean[k], table.half_width[k])], axis=-1)
        for i, cells in enumerate(cube.tolist()):
            yield [str(i), labels[i], group, *["" if v != v else f"{v:.6g}" for v in cells]]


def write_csv(directory: str | Path, summary: Summary, provenance: Provenance | None = None,
              results: Sequence[RunResult] = (),
              periods: CalendarRollups | None = None) -> list[Path]:
    """Write ``overall.csv``, ``by_<dim>.csv`` and ``intervals[_by_<dim>].csv`` (empty cell =
    undefined; interval starts in the summary's zone), and for a run of more than a day
    ``weekly.csv`` and ``daily.csv`` (CIs across ``results`` when given; ``periods``: those
    roll-ups, see :func:`~sim.rollup.run_periods`); with a provenance
    every row ends with its columns (run id, scenario, overrides, seed, version, build).
    Return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    extra = provenance.csv_cells() if provenance is not None else {}

    def write(name: str, header: list[str], rows: Iterable[list[str]]) -> None:
        path = out / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([*header, *extra])
            writer.writerows([*row, *extra.values()] for row in rows)
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
    for name, rows in run_periods(summary, results, periods).items():
        write(f"{name}.csv", [*ROLLUP_HEADER, "replications"],
              [[*_rollup_cells(r), str(summary.n_replications)] for r in rows])
    return written


#: Columns of ``weekly.csv`` and ``daily.csv`` (before the replications and provenance).
ROLLUP_HEADER = ("period", "first_day", "last_day", "partial", "dim", "group", *ROLLUP_COUNTS,
                 *ROLLUP_RATIOS, *[f"{k}_ci_{end}" for k in JUDGED for end in ("low", "high")],
                 "sl_target", "answer_rate_target", "verdict")


def _rollup_cells(r: Rollup) -> list[str]:
    return [r.period.label, r.period.first.isoformat(), r.period.last.isoformat(),
            "partial" if r.period.partial else "", r.dim, r.group,
            *[_csv_value(r.values[k]) for k in (*ROLLUP_COUNTS, *ROLLUP_RATIOS)],
            *[_csv_value(v) for k in JUDGED for v in r.ci(k)],
            repr(r.sl_target), repr(r.answer_rate_target), r.status]


# --- HTML ---------------------------------------------------------------------------------

def wait_table(results: Sequence[RunResult], dims: Sequence[str] = ("queue", "language")
               ) -> list[tuple[str, float, list[float]]]:
    """Wait percentiles of offered calls, pooled over replications: the center, then each group
    of ``dims`` with calls, as (label, calls per replication, percentiles in seconds)."""
    n = max(len(results), 1)
    logs = [r.wait_log() for r in results]
    waits = np.concatenate([w.wait_s for w in logs])
    rows = [("center", waits.size / n,
             np.percentile(waits, PERCENTILES).tolist() if waits.size else [math.nan] * 5)]
    for dim in dims:
        names: tuple[str, ...] = getattr(logs[0], _NAMES[dim])
        codes = np.concatenate([np.asarray(getattr(w, dim)) for w in logs])
        for g, name in enumerate(names):
            chunk = waits[codes == g]
            if chunk.size:
                rows.append((f"{dim} {name}", chunk.size / n,
                             np.percentile(chunk, PERCENTILES).tolist()))
    return rows


_NAMES = {"queue": "queues", "language": "languages"}


def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("sim", "templates"),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2")


def _html_group_rows(summary: Summary, dim: str) -> tuple[list[str], list[list[str]]]:
    columns = SITE_COLUMNS if dim == "site" else GROUP_COLUMNS
    rows = [[g, *[fmt_ci(k, row[k]) for k in columns]] for g, row in summary.groups[dim].items()]
    return [dim, *columns], rows


def _verdict_rows(summary: Summary) -> list[dict[str, str]]:
    rows = []
    for g in summary.group_verdicts:
        sl = g.get("sl_offered") or g.get("sl_answered")
        car = g.get("answer_rate")
        rows.append({
            "group": group_label(g), "calls": f"{g.volume:.0f}",
            "sl": "-" if sl is None else fmt_ci(sl.kpi, sl.value)
            + (" (answered)" if sl.kpi == "sl_answered" else ""),
            "sl_target": "-" if sl is None else f"{100 * sl.target:g}%",
            "car": "-" if car is None else fmt_ci(car.kpi, car.value),
            "car_target": "-" if car is None else f"{100 * car.target:g}%",
            "status": g.status, "css": _CSS_CLASS[g.status]})
    return rows


_CSS_CLASS = {MET: "met", NOT_MET: "missed", INCONCLUSIVE: "unsure", TOO_FEW: ""}


def _calls(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "-"


def _ci_text(r: Rollup, kpi: str) -> str:
    """A period's 95% CI as ``[78.0-82.3%]``, ``-`` without one (one replication)."""
    low, high = r.ci(kpi)
    return "-" if not math.isfinite(low) else f"[{100 * low:.1f}-{100 * high:.1f}%]"


def _weekly_rows(weeks: Sequence[Rollup]) -> list[dict[str, Any]]:
    """The center's weeks for the report's table, partial weeks marked."""
    return [{"cells": [w.period.label + (" (partial)" if w.period.partial else ""),
                       f"{w.period.first:%a %d %b} - {w.period.last:%a %d %b %Y}",
                       _calls(w.values["offered"]), _calls(w.values["answered"]),
                       fmt("sl_offered", w.values["sl_offered"]), _ci_text(w, "sl_offered"),
                       fmt("answer_rate", w.values["answer_rate"]), _ci_text(w, "answer_rate"),
                       *[fmt(k, w.values[k]) for k in ROLLUP_RATIOS[2:]], w.status],
             "css": _CSS_CLASS[w.status]} for w in weeks if w.dim == "center"]


def _weeks_by_group(weeks: Sequence[Rollup]) -> list[list[str]]:
    """Per queue and language: weeks judged, weeks NOT MET (partial ones among them) and the
    worst week's SL; the groups with most weeks missed first within each dimension."""
    rows: list[tuple[str, int, list[str]]] = []
    groups: dict[tuple[str, str], list[Rollup]] = {}
    for w in weeks:
        if w.dim != "center":
            groups.setdefault((w.dim, w.group), []).append(w)
    for (dim, group), rs in groups.items():
        judged = [r for r in rs if r.status != TOO_FEW]
        missed = [r for r in judged if r.status == NOT_MET]
        unsure = sum(r.status == INCONCLUSIVE for r in judged)
        worst = min(judged, key=lambda r: r.values["sl_offered"] - r.sl_target, default=None)
        rows.append((dim, -len(missed), [
            f"{dim} {group}", str(len(judged)),
            f"{len(missed)}" + (f" ({sum(r.period.partial for r in missed)} partial)"
                                if any(r.period.partial for r in missed) else ""),
            str(unsure),
            "-" if worst is None else worst.period.label,
            "-" if worst is None else fmt("sl_offered", worst.values["sl_offered"]),
            f"{100 * rs[0].sl_target:g}%"]))
    order = {"queue": 0, "language": 1}
    return [cells for _dim, _neg, cells in sorted(rows, key=lambda r: (order[r[0]], r[1]))]


def write_html(path: str | Path, results: Sequence[RunResult], summary: Summary,
               provenance: Provenance | None = None, extra_plots: Sequence[Plot] = (),
               periods: CalendarRollups | None = None) -> None:
    """Write one self-contained HTML report from the package's jinja2 template: provenance,
    verdicts, plots (inline SVG in clock time; ``extra_plots`` after them; a run of more than
    one day first gets heatmaps by date and time of day and weekly roll-ups), tables, wait
    percentiles, missed intervals (``periods``: the run's roll-ups, see
    :func:`~sim.rollup.run_periods`)."""
    periods = run_periods(summary, results, periods)
    plots = [Plot(p.key, p.title, scoped_ids(p.svg, p.key))
             for p in [*all_plots(summary, results, summary.timezone, periods), *extra_plots]]
    # Runs of more than a day: day x time-of-day heatmaps and week-by-week tables.
    days = [Plot(p.key, p.title, scoped_ids(p.svg, p.key))
            for p in day_plots(summary, summary.timezone)]
    weeks = periods.get("weekly", [])
    missed = missed_intervals(summary)
    qualified = int(np.sum(summary.intervals[ALL].mean["offered"][0] >= summary.min_volume))
    html = _template().render(
        title=f"ACD simulation report: {provenance.scenario_name}" if provenance
        else "ACD simulation report",
        provenance=provenance_rows(provenance, summary),
        verdict_lines=[(line, _CSS_CLASS[v.status])
                       for line, v in zip(verdict_lines(summary), summary.verdicts, strict=True)],
        overall_verdict=overall_verdict_line(summary),
        overall_css="met" if summary.meets_target else "missed",
        verdicts=_verdict_rows(summary), min_offered=f"{summary.min_offered:g}",
        unjudged=[f"{d} {g} ({v:.0f})" for d, g, v in summary.unjudged],
        plots=plots, multi_day=is_multi_day(summary), daily=is_daily(summary),
        daily_after=f"{DAILY_AFTER_DAYS:g}", day_plots=days, weekly=_weekly_rows(weeks),
        weekly_header=["week", "days", "offered", "answered", "SL", "SL 95% CI", "CAR",
                       "CAR 95% CI", "abandon rate", "ASA", "verdict"],
        weeks_by_group=_weeks_by_group(weeks),
        answer_rate_target=f"{100 * summary.answer_rate_target:g}",
        threshold=f"{summary.threshold_s:g}",
        overall=[[k, fmt_ci(k, e), fmt_spread(k, e.sd), str(e.n)]
                 for k, e in summary.overall.items()],
        groups=[(dim, *_html_group_rows(summary, dim)) for dim in summary.groups],
        percentiles=[f"p{p}" for p in PERCENTILES],
        waits=[[label, f"{calls:.0f}", *[fmt("asa_s", v) for v in values]]
               for label, calls, values in wait_table(results)],
        missed=[[m.label, fmt("sl_offered", m.sl_offered), f"{m.offered:.1f}"] for m in missed],
        qualified=qualified, min_volume=summary.min_volume, target=f"{100 * summary.target:g}",
        zone=zone_label(summary),
        replications=[[str(r.seed), f"{r.calls_simulated:,}", f"{r.wall_s:.2f}"]
                      for r in results],
        t_source=summary.t_source, interval_min=f"{summary.interval_s / 60:g}",
    )
    Path(path).write_text(html, encoding="utf-8")
