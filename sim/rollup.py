"""Calendar views of a multi-day run: a day x time-of-day grid and daily and weekly roll-ups.

Everything here starts from a summary's per-interval tables (means over replications), so it
works for runs that keep no call log. Each interval is placed by its start in the report's zone:
its local date (a row of the grid, its day and ISO week) and its clock time of day (a column).
Roll-ups add the counts up and divide sums, never average ratios: SL = sum of calls answered
within the threshold / sum of offered calls. Counts are means per replication, so with several
replications the ratios are those of the pooled calls. ASA weights each interval's ASA by its
answered calls (exact with one replication).

A period's verdict is the run's verdict on a smaller scale: given the replications' results,
each replication's SL and answer rate over the period (its own sums of calls), a 95% Student t
CI across replications (clipped to [0, 100%]) and :func:`sim.kpi.judge` against the targets
(MET, NOT MET, INCONCLUSIVE when the CI straddles a target); one replication has no CI and the
value decides. From a summary alone (no per-replication tallies) the pooled values decide.
With fewer than ``min_offered`` offered calls per replication a period gets no verdict.

Where the clock is put back (end of summer time) two intervals share a cell of the grid and
are added up; where it jumps forward the skipped hour has no interval and stays blank.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import cast
from zoneinfo import ZoneInfo

import numpy as np

from sim.kpi import (
    ALL,
    Dimension,
    Estimate,
    GroupVerdict,
    IntervalSummary,
    IntervalTable,
    Summary,
    Verdict,
    ci_bounds,
    judge,
    kpis_per_interval,
    ratio,
    replication_moments,
)
from sim.records import RunResult

#: The verdict of a period with too few offered calls to judge.
TOO_FEW = "TOO FEW CALLS"
#: Dimensions rolled up besides the center (by site only answered calls are defined).
ROLLUP_DIMS = ("queue", "language")
#: Counts summed per period, then the ratios built from them.
ROLLUP_COUNTS = ("offered", "answered", "answered_within", "abandoned")
ROLLUP_RATIOS = ("sl_offered", "answer_rate", "abandon_rate", "asa_s")
#: KPIs judged per period, with a CI across replications (as the run's verdict judges them).
JUDGED = ("sl_offered", "answer_rate")
_DAY_S = 86_400.0
_EPS = 1e-9


def report_zone(summary: Summary) -> tzinfo:
    """The zone clock times are shown in: the summary's IANA zone, else the start's offset
    (a start without one is read as UTC)."""
    if summary.timezone:
        return ZoneInfo(summary.timezone)
    return datetime.fromisoformat(summary.start_iso).tzinfo or UTC


def zone_label(summary: Summary, timezone: str = "") -> str:
    """How the report names its clock: ``timezone`` (the one asked for), else the summary's
    IANA zone, else the start's UTC offset (``UTC+03:00``; ``UTC`` for a start without one)."""
    if timezone or summary.timezone:
        return timezone or summary.timezone
    offset = report_zone(summary).utcoffset(None) or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}" if minutes else "UTC"


def run_seconds(summary: Summary) -> float:
    """How long the summarised run is: its intervals times their length."""
    return float(summary.intervals[ALL].start_s.size * summary.interval_s)


def is_multi_day(summary: Summary) -> bool:
    """True when the run spans more than one day (the calendar views are shown then only)."""
    return run_seconds(summary) > _DAY_S + _EPS


@dataclass(frozen=True)
class Calendar:
    """Where each interval falls in the report's zone: ``row[i]`` indexes ``dates`` (local
    dates, every one from the first to the last), ``column[i]`` the interval-long slot of the
    day its local start is in (``n_columns`` slots from midnight)."""

    dates: tuple[date, ...]
    row: np.ndarray
    column: np.ndarray
    n_columns: int
    zone: tzinfo
    start: datetime
    end: datetime

    @property
    def cell(self) -> np.ndarray:
        """Each interval's flat index into a (dates, columns) grid."""
        return self.row * self.n_columns + self.column


def calendar(summary: Summary) -> Calendar:
    """Local date and clock-time slot of every interval of the summary."""
    zone = report_zone(summary)
    start = datetime.fromisoformat(summary.start_iso)
    if start.tzinfo is None:
        start = start.replace(tzinfo=zone)
    starts = summary.intervals[ALL].start_s
    local = [(start + timedelta(seconds=float(s))).astimezone(zone) for s in starts]
    first = local[0].date()
    row = np.fromiter(((t.date() - first).days for t in local), dtype=np.int64, count=len(local))
    seconds = np.fromiter((t.hour * 3600 + t.minute * 60 + t.second for t in local),
                          dtype=float, count=len(local))
    n_columns = math.ceil(_DAY_S / summary.interval_s - _EPS)
    column = np.minimum((seconds // summary.interval_s).astype(np.int64), n_columns - 1)
    dates = tuple(first + timedelta(days=d) for d in range(int(row[-1]) + 1))
    end = start + timedelta(seconds=run_seconds(summary))
    return Calendar(dates, row, column, n_columns, zone, start, end)


def _counts(table: IntervalSummary, name: str) -> np.ndarray:
    """A count per (group, interval), 0 where undefined (no replication reached it)."""
    return np.nan_to_num(table.mean[name], nan=0.0)


def day_grid(summary: Summary, cal: Calendar, dim: str = ALL
             ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Offered and answered-within-threshold calls per (group, local date, slot of the day),
    means per replication summed over the intervals that fall in each cell."""
    table = summary.intervals[dim]
    n_cells = len(cal.dates) * cal.n_columns
    shape = (len(table.groups), len(cal.dates), cal.n_columns)
    grids = []
    for name in ("offered", "answered_within"):
        counts = _counts(table, name)
        grids.append(np.stack([np.bincount(cal.cell, weights=counts[g], minlength=n_cells)
                               for g in range(shape[0])]).reshape(shape))
    return table.groups, grids[0], grids[1]


@dataclass(frozen=True)
class Period:
    """One day or ISO week of the run: its label, the local dates the run covers in it, and
    whether the run covers all of it (else it is partial)."""

    label: str
    first: date
    last: date
    partial: bool


@dataclass(frozen=True)
class Rollup:
    """A group's calls and KPIs over one period, and its verdict against its targets."""

    period: Period
    dim: str
    group: str
    values: dict[str, float]
    sl_target: float
    answer_rate_target: float
    status: str
    #: SL and answer rate over replications (mean of each replication's own ratio, 95% CI
    #: half-width; NaN half-width: one replication, or no per-replication tallies).
    estimates: dict[str, Estimate] = field(default_factory=dict)

    def ci(self, kpi: str) -> tuple[float, float]:
        """The 95% CI of ``kpi`` (a judged one, a share) as :func:`sim.kpi.ci_bounds` clips
        it; NaN when there is none."""
        est = self.estimates.get(kpi)
        return (math.nan, math.nan) if est is None else ci_bounds(kpi, est)


def _periods(cal: Calendar, weekly: bool) -> tuple[list[Period], np.ndarray]:
    """The periods the run touches, in order, and each interval's period index."""
    def key(d: date) -> tuple[int, int]:
        iso = d.isocalendar()
        return (iso.year, iso.week) if weekly else (d.toordinal(), 0)

    keys = [key(d) for d in cal.dates]
    firsts = [i for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    bounds = [*firsts, len(keys)]
    periods = []
    for lo, hi in itertools.pairwise(bounds):
        first, last = cal.dates[lo], cal.dates[hi - 1]
        if weekly:
            year, week = keys[lo]
            label = f"{year}-W{week:02d}"
            begin = first - timedelta(days=first.weekday())
            end = begin + timedelta(days=7)
        else:
            label, begin, end = first.isoformat(), first, first + timedelta(days=1)
        # Midnight in the zone: a whole period is from its first midnight to its last.
        opens = datetime.combine(begin, datetime.min.time(), cal.zone)
        closes = datetime.combine(end, datetime.min.time(), cal.zone)
        partial = cal.start > opens or cal.end < closes
        periods.append(Period(label, first, last, partial))
    index_of_date = np.zeros(len(cal.dates), dtype=np.int64)
    for p, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        index_of_date[lo:hi] = p
    return periods, index_of_date[cal.row]


def period_sums(rows: np.ndarray, index: np.ndarray, n_periods: int) -> np.ndarray:
    """Per-interval values (groups, intervals) summed into (groups, periods) by each
    interval's period ``index``; NaN (no replication reached it) adds nothing."""
    n = min(rows.shape[1], index.size)  # a shorter replication: its own intervals only
    return np.stack([np.bincount(index[:n], weights=row[:n], minlength=n_periods)
                     for row in np.nan_to_num(rows, nan=0.0)])


def rolled_dims(summary: Summary) -> list[str]:
    """The dimensions rolled up that the summary has: the center, then ``ROLLUP_DIMS``."""
    return [d for d in (ALL, *ROLLUP_DIMS) if d in summary.intervals]


def replication_tables(results: Sequence[RunResult], dims: Sequence[str]
                       ) -> dict[str, list[IntervalTable]]:
    """Each replication's per-interval table by each of ``dims``, built once for the weekly
    and the daily roll-ups alike."""
    return {dim: [kpis_per_interval(r, None if dim == ALL else cast(Dimension, dim))
                  for r in results] for dim in dims}


def replicate_estimates(tables: Sequence[IntervalTable], index: np.ndarray,
                        n_periods: int) -> dict[str, list[list[Estimate]]]:
    """SL and answer rate of each group (rows) and period (columns) over replications (their
    per-interval ``tables``): each replication's ratio of its own sums of calls over the
    period, then their mean and 95% Student t CI half-width (NaN for one replication; periods
    without calls left out)."""
    per_rep: dict[str, list[np.ndarray]] = {k: [] for k in JUDGED}
    for table in tables:
        sums = {k: period_sums(table.values[k], index, n_periods)
                for k in ("offered", "answered", "answered_within")}
        per_rep["sl_offered"].append(ratio(sums["answered_within"], sums["offered"]))
        per_rep["answer_rate"].append(ratio(sums["answered"], sums["offered"]))
    out: dict[str, list[list[Estimate]]] = {}
    for k, stacks in per_rep.items():
        # (replications, groups, periods): the run's own mean, sd and t interval over axis 0.
        mean, sd, half, n = replication_moments(np.stack(stacks))
        out[k] = [[Estimate(float(mean[g, p]), float(sd[g, p]), float(half[g, p]), int(n[g, p]))
                   for p in range(n_periods)] for g in range(mean.shape[0])]
    return out


def period_status(dim: str, group: str, offered: float, estimates: dict[str, Estimate],
                  sl_target: float, car_target: float, min_offered: float) -> str:
    """A period's verdict as the run's groups get theirs (:class:`sim.kpi.GroupVerdict` from
    :func:`sim.kpi.judge` of SL and answer rate); no verdict below ``min_offered`` calls."""
    if not offered >= min_offered:
        return TOO_FEW
    targets = {"sl_offered": sl_target, "answer_rate": car_target}
    return GroupVerdict(dim, group, offered, tuple(
        Verdict(k, estimates[k], targets[k], judge(estimates[k], targets[k]))
        for k in JUDGED)).status


def rollups(summary: Summary, weekly: bool = True, cal: Calendar | None = None,
            results: Sequence[RunResult] = (),
            tables: dict[str, list[IntervalTable]] | None = None) -> list[Rollup]:
    """Per ISO week (``weekly``) or per local date: the center, then every queue and language
    with calls in the run, period by period; with the replications' ``results`` each period's
    SL and answer rate get a 95% CI across them and are judged on it (``tables``: their
    :func:`replication_tables`, when already built)."""
    cal = cal or calendar(summary)
    periods, index = _periods(cal, weekly)
    out: list[Rollup] = []
    dims = rolled_dims(summary)
    if results and tables is None:
        tables = replication_tables(results, dims)
    for dim in dims:
        table = summary.intervals[dim]
        sums = {k: period_sums(_counts(table, k), index, len(periods)) for k in ROLLUP_COUNTS}
        asa = np.nan_to_num(table.mean["asa_s"] * table.mean["answered"], nan=0.0)
        waited = period_sums(asa, index, len(periods))
        ratios = {"sl_offered": ratio(sums["answered_within"], sums["offered"]),
                  "answer_rate": ratio(sums["answered"], sums["offered"]),
                  "abandon_rate": ratio(sums["abandoned"], sums["offered"]),
                  "asa_s": ratio(waited, sums["answered"])}
        reps = replicate_estimates(tables[dim], index, len(periods)) if tables else None
        name = "center" if dim == ALL else dim
        for g, group in enumerate(table.groups):
            if dim != ALL and sums["offered"][g].sum() <= 0:
                continue
            target = table.targets[g]
            for p, period in enumerate(periods):
                values = {k: float(v[g, p]) for k, v in (*sums.items(), *ratios.items())}
                estimates = ({k: reps[k][g][p] for k in JUDGED} if reps is not None else
                             {k: Estimate(values[k], math.nan, math.nan, 0) for k in JUDGED})
                status = period_status(name, group, values["offered"], estimates, target,
                                       summary.answer_rate_target, summary.min_offered)
                out.append(Rollup(period, name, group, values, target,
                                  summary.answer_rate_target, status, estimates))
    return out


def judged_sl(r: Rollup) -> float:
    """The SL a period's verdict went by: the mean of the replications' own SLs where there
    is one, else the pooled SL."""
    est = r.estimates.get("sl_offered")
    return est.mean if est is not None else r.values["sl_offered"]


def worst_period(rows: Sequence[Rollup]) -> Rollup | None:
    """The period furthest below its SL target among ``rows`` that were judged, by the SL the
    verdict went by; whole periods first (a partial week is only the worst when the run has no
    whole one). The terminal and the report name the same week through this."""
    judged = [r for r in rows if r.status != TOO_FEW and math.isfinite(judged_sl(r))]
    whole = [r for r in judged if not r.period.partial] or judged
    return min(whole, key=lambda r: judged_sl(r) - r.sl_target, default=None)


def rollup_dict(r: Rollup) -> dict[str, object]:
    """A roll-up row as plain JSON types (undefined ratios as None)."""
    return {"period": r.period.label, "first_day": r.period.first.isoformat(),
            "last_day": r.period.last.isoformat(), "partial": r.period.partial,
            "dim": r.dim, "group": r.group,
            **{k: (v if math.isfinite(v) else None) for k, v in r.values.items()},
            **{f"{k}_ci_{end}": (v if math.isfinite(v) else None)
               for k in JUDGED for end, v in zip(("low", "high"), r.ci(k), strict=True)},
            "sl_target": r.sl_target, "answer_rate_target": r.answer_rate_target,
            "status": r.status}


#: A run's roll-ups by name (``weekly`` and ``daily``), as :func:`calendar_rollups` gives them.
CalendarRollups = dict[str, list[Rollup]]


def calendar_rollups(summary: Summary, results: Sequence[RunResult] = ()) -> CalendarRollups:
    """The ``weekly`` and ``daily`` roll-ups of a run of more than one day (judged with a CI
    across ``results`` when given); none for a shorter run. Whatever writes a run's outputs
    computes them once and hands them to each report (their ``periods`` parameter)."""
    if not is_multi_day(summary):
        return {}
    cal = calendar(summary)
    tables = replication_tables(results, rolled_dims(summary)) if results else None
    return {"weekly": rollups(summary, weekly=True, cal=cal, results=results, tables=tables),
            "daily": rollups(summary, weekly=False, cal=cal, results=results, tables=tables)}


def run_periods(summary: Summary, results: Sequence[RunResult],
                periods: CalendarRollups | None) -> CalendarRollups:
    """The run's weekly and daily roll-ups: ``periods`` when the caller computed them (once
    for the terminal, summary.json, the CSVs and the report of a run), else
    :func:`calendar_rollups` of ``summary`` and ``results``."""
    return calendar_rollups(summary, results) if periods is None else periods
