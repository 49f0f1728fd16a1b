"""The report's plots: inline SVG with clock-time axes in the center's time zone.

Figures are drawn with the Agg-free :class:`~matplotlib.figure.Figure` API (no pyplot, no global
backend) and saved as SVG with text kept as text, so the tick labels ("09:00") and titles stay
readable, searchable and checkable in the page. Every x axis is local clock time of the zone
the report is for; shares are drawn in percent and clipped to [0, 100].
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.colors import BoundaryNorm, Colormap, ListedColormap, Normalize
from matplotlib.figure import Figure

from sim.kpi import ALL, MET, Summary, ratio
from sim.records import BUSY, READY, RunResult
from sim.rollup import (
    Calendar,
    CalendarRollups,
    Rollup,
    calendar,
    day_grid,
    is_multi_day,
    period_sums,
    run_periods,
    run_seconds,
    worst_period,
    zone_label,
)

#: Wait percentiles shown in the report.
PERCENTILES = (50, 80, 90, 95, 99)


@dataclass(frozen=True)
class Plot:
    """One figure: its title (also the figure's caption) and its inline SVG markup."""

    key: str
    title: str
    svg: str


def zone_of(summary: Summary, timezone: str) -> ZoneInfo | None:
    """The report's zone: ``timezone`` if it names one, else None (the run start's offset)."""
    return ZoneInfo(timezone) if timezone else None


def interval_times(summary: Summary, start_s: np.ndarray, tz: ZoneInfo | None) -> np.ndarray:
    """The middle of each interval as matplotlib date numbers (the axes show them in ``tz``)."""
    start = datetime.fromisoformat(summary.start_iso)
    if tz is not None:
        start = start.astimezone(tz)
    half = summary.interval_s / 2
    return np.asarray(mdates.date2num([start + timedelta(seconds=float(s) + half)
                                       for s in start_s]), dtype=float)


def _svg(fig: Figure) -> str:
    """The figure as SVG markup without the XML prolog, text kept as <text> elements."""
    FigureCanvasSVG(fig)
    buf = io.StringIO()
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "acd-report"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _time_axis(ax: Axes, tz: ZoneInfo | None, zone_name: str) -> None:
    """Clock-time ticks in the report's zone, concise across day boundaries."""
    locator = mdates.AutoDateLocator(tz=tz, minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
    ax.set_xlabel(f"local time ({zone_name})")


def _figure(title: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(10, 3.4))
    ax = fig.subplots()
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig, ax


def _pct(values: np.ndarray) -> np.ndarray:
    return 100 * np.clip(values, 0.0, 1.0)


def sl_plot(summary: Summary, tz: ZoneInfo | None, zone_name: str) -> Plot:
    """The center's SL per interval with its 95% CI (clipped to [0, 100%]) and the target."""
    table = summary.intervals[ALL]
    x = interval_times(summary, table.start_s, tz)
    sl, half = table.mean["sl_offered"][0], np.nan_to_num(table.half_width["sl_offered"][0])
    title = f"Service level per interval (answered within {summary.threshold_s:g} s)"
    return _sl_band("sl", title, x, sl, half, summary.target, tz, zone_name)


def _sl_band(key: str, title: str, x: np.ndarray, sl: np.ndarray, half: np.ndarray,
             target: float, tz: ZoneInfo | None, zone_name: str) -> Plot:
    """SL at ``x`` (matplotlib date numbers) with its 95% CI band (clipped to [0, 100%]) and
    the target line."""
    fig, ax = _figure(title)
    ax.fill_between(x, _pct(sl - half), _pct(sl + half), alpha=0.25, label="95% CI")
    ax.plot(x, _pct(sl), marker=".", label="SL (mean)")
    ax.axhline(100 * target, color="red", linestyle="--", label=f"target {100 * target:g}%")
    ax.set(ylabel="SL %", ylim=(0, 101))
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="lower left", fontsize="small")
    return Plot(key, title, _svg(fig))


def sl_by_queue_plot(summary: Summary, tz: ZoneInfo | None, zone_name: str) -> Plot | None:
    """SL per interval of each queue (intervals without calls left blank)."""
    table = summary.intervals.get("queue")
    if table is None:
        return None
    x = interval_times(summary, table.start_s, tz)
    title = "Service level per interval by queue (intervals averaging at least one call)"
    fig, ax = _figure(title)
    for g, queue in enumerate(table.groups):
        # Intervals with under one call on average give 0% or 100% at random: leave them out.
        sl = np.where(table.mean["offered"][g] >= 1.0, table.mean["sl_offered"][g], np.nan)
        if np.isfinite(sl).any():
            ax.plot(x, _pct(sl), marker=".", label=queue)
    ax.axhline(100 * summary.target, color="red", linestyle="--", label="center target")
    ax.set(ylabel="SL %", ylim=(0, 101))
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="lower left", fontsize="small", ncol=5)
    return Plot("sl_queue", title, _svg(fig))


def sl_heatmap(summary: Summary, dim: str, tz: ZoneInfo | None, zone_name: str) -> Plot | None:
    """SL per interval and group as a heatmap (grey: no calls), groups with calls only."""
    table = summary.intervals.get(dim)
    if table is None:
        return None
    offered = table.mean["offered"]
    rows = [g for g in range(len(table.groups)) if np.nansum(offered[g]) > 0]
    if not rows:
        return None
    sl = _pct(table.mean["sl_offered"][rows])
    edges = interval_times(summary, np.append(table.start_s, table.start_s[-1]
                                              + summary.interval_s) - summary.interval_s / 2,
                           tz)
    title = f"Service level per interval by {dim} (grey: no calls)"
    fig = Figure(figsize=(10, 0.9 + 0.28 * len(rows)))
    ax = fig.subplots()
    ax.set_title(title)
    cmap = ListedColormap(["#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac"]
                          ).with_extremes(bad="#dddddd")
    mesh = ax.pcolormesh(edges, np.arange(len(rows) + 1),
                         np.ma.masked_invalid(sl), cmap=cmap, vmin=0, vmax=100, rasterized=True)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [table.groups[g] for g in rows])
    ax.invert_yaxis()
    _time_axis(ax, tz, zone_name)
    fig.colorbar(mesh, ax=ax, label="SL %", pad=0.01)
    return Plot(f"sl_{dim}", title, _svg(fig))


def _pooled_waits(results: Sequence[RunResult], n_intervals: int, interval_s: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The waits of offered calls pooled over replications, and the interval each was
    offered in."""
    logs = [r.wait_log() for r in results]  # calls offered from the start on
    waits = np.concatenate([w.wait_s for w in logs])
    queued = np.concatenate([w.queued_s for w in logs])
    return waits, np.minimum(np.floor(queued / interval_s).astype(np.int64), n_intervals - 1)


def _percentiles_by(waits: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
    """:data:`PERCENTILES` of the waits in each bucket ``0..n-1`` of ``index``: shape
    (len(PERCENTILES), n), NaN where a bucket is empty."""
    out = np.full((len(PERCENTILES), n), np.nan)
    order = np.argsort(index, kind="stable")
    index, waits = index[order], waits[order]
    bounds = np.searchsorted(index, np.arange(n + 1))
    for i in range(n):
        chunk = waits[bounds[i]:bounds[i + 1]]
        if chunk.size:
            out[:, i] = np.percentile(chunk, PERCENTILES)
    return out


def wait_percentiles(results: Sequence[RunResult], n_intervals: int, interval_s: float
                     ) -> np.ndarray:
    """Percentiles of the wait of offered calls per interval, pooled over replications:
    shape (len(PERCENTILES), n_intervals), NaN where an interval has no calls."""
    waits, index = _pooled_waits(results, n_intervals, interval_s)
    return _percentiles_by(waits, index, n_intervals)


def wait_plot(summary: Summary, results: Sequence[RunResult], tz: ZoneInfo | None,
              zone_name: str) -> Plot:
    """Wait percentiles of offered calls per interval, with the SL threshold."""
    table = summary.intervals[ALL]
    x = interval_times(summary, table.start_s, tz)
    pct = wait_percentiles(results, table.start_s.size, summary.interval_s)
    title = "Wait in queue per interval: percentiles of offered calls"
    fig, ax = _figure(title)
    for k, p in enumerate(PERCENTILES):
        if p in (50, 90, 95):
            ax.plot(x, pct[k], marker=".", label=f"p{p}")
    ax.axhline(summary.threshold_s, color="red", linestyle="--",
               label=f"SL threshold {summary.threshold_s:g} s")
    ax.set(ylabel="wait, s")
    ax.set_ylim(bottom=0)
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("wait", title, _svg(fig))


def volume_plot(summary: Summary, tz: ZoneInfo | None, zone_name: str) -> Plot:
    """Offered, answered and abandoned calls per interval (means over replications)."""
    table = summary.intervals[ALL]
    x = interval_times(summary, table.start_s, tz)
    title = "Offered, answered and abandoned calls per interval"
    fig, ax = _figure(title)
    for k in ("offered", "answered", "abandoned"):
        ax.plot(x, table.mean[k][0], label=k)
    ax.set(ylabel="calls per interval (mean)")
    ax.set_ylim(bottom=0)
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("volume", title, _svg(fig))


def depth_plot(summary: Summary, results: Sequence[RunResult], tz: ZoneInfo | None,
               zone_name: str) -> Plot | None:
    """Calls waiting per interval, all queues together: mean over replications and the peak."""
    means = [r.queue_depth_mean for r in results if r.queue_depth_mean is not None]
    peaks = [r.queue_depth_max for r in results if r.queue_depth_max is not None]
    n = summary.intervals[ALL].start_s.size
    if not means or len({m.shape for m in means}) != 1:
        return None
    mean = np.mean([m.sum(axis=1) for m in means], axis=0)[:n]
    peak = np.max([p.max(axis=1) for p in peaks], axis=0)[:n]
    x = interval_times(summary, np.arange(mean.size) * summary.interval_s, tz)
    title = "Queue depth per interval"
    fig, ax = _figure(title)
    ax.plot(x, mean, label="waiting, all queues (mean)")
    ax.plot(x, peak, linestyle="--", label="largest single queue (peak)")
    ax.set(ylabel="calls waiting")
    ax.set_ylim(bottom=0)
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("depth", title, _svg(fig))


def occupancy_plot(summary: Summary, tz: ZoneInfo | None, zone_name: str) -> Plot | None:
    """Agent occupancy per interval per site and for all sites."""
    table = summary.intervals.get("site")
    if table is None:
        return None
    x = interval_times(summary, table.start_s, tz)
    title = "Agent occupancy per interval per site"
    fig, ax = _figure(title)
    for g, site in enumerate(table.groups):
        ax.plot(x, _pct(table.mean["occupancy"][g]), label=site)
    ax.plot(x, _pct(summary.intervals[ALL].mean["occupancy"][0]), color="black",
            linestyle=":", label="all sites")
    ax.set(ylabel="occupancy %", ylim=(0, 101))
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="lower left", fontsize="small")
    return Plot("occupancy", title, _svg(fig))


def all_plots(summary: Summary, results: Sequence[RunResult], timezone: str,
              periods: CalendarRollups | None = None) -> list[Plot]:
    """Every plot the report shows, in reading order: per interval, or per day for a run
    longer than :data:`DAILY_AFTER_DAYS` (``periods``: the run's roll-ups, as
    :func:`daily_plots` takes them)."""
    if is_daily(summary):
        return daily_plots(summary, results, timezone, periods)
    tz = zone_of(summary, timezone)
    zone_name = zone_label(summary, timezone)
    plots = [sl_plot(summary, tz, zone_name), sl_by_queue_plot(summary, tz, zone_name),
             sl_heatmap(summary, "language", tz, zone_name), wait_plot(summary, results, tz,
                                                                       zone_name),
             volume_plot(summary, tz, zone_name), depth_plot(summary, results, tz, zone_name),
             occupancy_plot(summary, tz, zone_name)]
    return [p for p in plots if p is not None]


_ID = re.compile(r'\bid="([^"]+)"')


def scoped_ids(svg: str, prefix: str) -> str:
    """Prefix every id (and its references) so that several SVGs can share one page."""
    ids = set(_ID.findall(svg))
    for name in sorted(ids, key=len, reverse=True):
        svg = svg.replace(f'id="{name}"', f'id="{prefix}-{name}"')
        svg = svg.replace(f"#{name})", f"#{prefix}-{name})").replace(
            f'"#{name}"', f'"#{prefix}-{name}"')
    return svg


def gap_heatmap(starts: Sequence[datetime], interval_s: float, labels: Sequence[str],
                gap: np.ndarray, tz: ZoneInfo | None, zone_name: str, clip: float = 5.0
                ) -> Plot:
    """Required minus scheduled agents per interval (columns) and group (rows of ``gap``):
    red a shortfall, blue a surplus, colours clipped at ``clip`` agents either way."""
    edges = np.asarray(mdates.date2num([*starts, starts[-1] + timedelta(seconds=interval_s)]),
                       dtype=float)
    title = "Required minus scheduled agents per interval by queue/language (red: short)"
    fig = Figure(figsize=(10, 0.9 + 0.28 * len(labels)))
    ax = fig.subplots()
    ax.set_title(title)
    mesh = ax.pcolormesh(edges, np.arange(len(labels) + 1), np.clip(gap, -clip, clip),
                         cmap="RdBu_r", vmin=-clip, vmax=clip, rasterized=True)
    ax.set_yticks(np.arange(len(labels)) + 0.5, list(labels))
    ax.invert_yaxis()
    _time_axis(ax, tz, zone_name)
    fig.colorbar(mesh, ax=ax, label=f"agents (clipped at ±{clip:g})", pad=0.01)
    return Plot("staffing_gap", title, _svg(fig))


# --- Day x time of day (runs of more than one day) -------------------------------------------

#: Cells without calls.
NO_CALLS = "#dddddd"
#: Below the SL target, from far below to just below; then at or above it.
_BELOW = ("#67001f", "#b2182b", "#ef8a62", "#fddbc7")
_ABOVE = ("#92c5de", "#2166ac")
#: Queues and languages shown in the small multiple of the worst groups.
WORST_GROUPS = 4


def sl_scale(target: float) -> tuple[Colormap, BoundaryNorm]:
    """Colours for SL in percent, fixed to 0-100%: reds below the target (darker further
    below), blues at or above it, grey where there were no calls."""
    t = 100 * target
    below = [0.0, *[v for v in (t - 30, t - 15, t - 5, t) if v > 0]]
    above = [v for v in ((t + 100) / 2, 100.0) if v > t]
    colours = [*_BELOW[len(_BELOW) - (len(below) - 1):], *_ABOVE[:len(above)]]
    cmap = ListedColormap(colours).with_extremes(bad=NO_CALLS)
    return cmap, BoundaryNorm([*below, *above], cmap.N)


def _date_nums(dates: Iterable[date], hours: float = 0.0) -> np.ndarray:
    """``hours`` past midnight of each local date as matplotlib date numbers (the date axes
    are drawn in local dates, so no zone is attached)."""
    return np.asarray(mdates.date2num([datetime.combine(d, datetime.min.time())
                                       + timedelta(hours=hours) for d in dates]), dtype=float)


def _date_edges(dates: Sequence[date]) -> np.ndarray:
    """Cell edges of consecutive local dates: each one's midnight, then the last one's end."""
    return _date_nums([*dates, dates[-1] + timedelta(days=1)])


def _day_edges(cal: Calendar, interval_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges: hours of the day across, matplotlib date numbers of local dates down."""
    hours = np.arange(cal.n_columns + 1) * interval_s / 3600
    return np.minimum(hours, 24.0), _date_edges(cal.dates)


def _day_axes(ax: Axes, cal: Calendar, days: np.ndarray, zone_name: str, compact: bool) -> None:
    """Clock time of day across (HH:MM every 3 hours), dates down: every day for up to three
    weeks, Mondays up to four months (weeks ruled off), the first of each month beyond."""
    ax.set_xticks(np.arange(0, 25, 3 if not compact else 6),
                  [f"{h:02d}:00" for h in range(0, 25, 3 if not compact else 6)])
    ax.set_xlim(0, 24)
    ax.set_xlabel(f"local time of day ({zone_name})")
    n = len(cal.dates)
    if n <= (14 if compact else 21):
        shown = list(range(n))
        labels = [cal.dates[i].strftime("%a %d %b") for i in shown]
    elif n <= 124:
        shown = [i for i, d in enumerate(cal.dates) if d.weekday() == 0]
        labels = [cal.dates[i].strftime("Mon %d %b") for i in shown]
    else:
        shown = [i for i, d in enumerate(cal.dates) if d.day == 1]
        labels = [cal.dates[i].strftime("%b %Y") for i in shown]
    ax.set_yticks([days[i] + 0.5 for i in shown], labels,
                  fontsize="x-small" if compact or n > 21 else "small")
    if n <= 124:
        for i, d in enumerate(cal.dates):
            if d.weekday() == 0 and i > 0:
                ax.axhline(days[i], color="white", linewidth=1.2)
    ax.set_ylim(days[-1], days[0])  # the first day at the top
    ax.set_ylabel("date" if not compact else "")


def _day_height(n_days: int, compact: bool = False) -> float:
    """Figure (or panel) height in inches: a line per day up to a page's worth."""
    if compact:
        return float(np.clip(1.0 + 0.12 * n_days, 2.0, 4.5))
    return float(np.clip(1.4 + 0.2 * n_days, 2.6, 9.0))


def _sl_mesh(fig: Figure, ax: Axes, cal: Calendar, sl: np.ndarray, target: float,
             interval_s: float, zone_name: str, compact: bool = False) -> None:
    """One SL heatmap (percent, NaN = no calls) with its colour bar marking the target."""
    hours, days = _day_edges(cal, interval_s)
    cmap, norm = sl_scale(target)
    mesh = ax.pcolormesh(hours, days, np.ma.masked_invalid(100 * sl), cmap=cmap, norm=norm,
                         rasterized=True)
    _day_axes(ax, cal, days, zone_name, compact)
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, spacing="proportional",
                       label="SL %" if compact else "SL % (grey: no calls)")
    t = 100 * target
    bar.set_ticks([0, 50, t, 100], labels=["0", "50", f"target {t:g}", "100"])
    bar.ax.axhline(t, color="black", linewidth=2)


def day_sl_heatmap(summary: Summary, cal: Calendar, zone_name: str) -> Plot:
    """The center's SL per day (rows) and clock time of day (columns)."""
    _groups, offered, within = day_grid(summary, cal)
    title = (f"Service level by day and time of day (answered within "
             f"{summary.threshold_s:g} s; grey: no calls)")
    fig = Figure(figsize=(10, _day_height(len(cal.dates))))
    ax = fig.subplots()
    ax.set_title(title)
    _sl_mesh(fig, ax, cal, ratio(within[0], offered[0]), summary.target, summary.interval_s,
             zone_name)
    return Plot("day_sl", title, _svg(fig))


def day_volume_heatmap(summary: Summary, cal: Calendar, zone_name: str) -> Plot:
    """The center's offered calls per day and clock time of day (grey: none)."""
    _groups, offered, _within = day_grid(summary, cal)
    title = "Offered calls by day and time of day (mean per replication; grey: no calls)"
    fig = Figure(figsize=(10, _day_height(len(cal.dates))))
    ax = fig.subplots()
    ax.set_title(title)
    hours, days = _day_edges(cal, summary.interval_s)
    grid = np.where(offered[0] > 0, offered[0], np.nan)
    cmap = mpl.colormaps["viridis"].with_extremes(bad=NO_CALLS)
    top = float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0
    mesh = ax.pcolormesh(hours, days, np.ma.masked_invalid(grid), cmap=cmap,
                         norm=Normalize(0, top), rasterized=True)
    _day_axes(ax, cal, days, zone_name, compact=False)
    fig.colorbar(mesh, ax=ax, pad=0.01,
                 label=f"offered calls per {summary.interval_s / 60:g} min")
    return Plot("day_volume", title, _svg(fig))


def worst_groups(summary: Summary, limit: int = WORST_GROUPS) -> list[tuple[str, str, float,
                                                                           float]]:
    """Up to ``limit`` judged queues and languages that are not MET, those with the most calls
    short of their SL target first (offered x (target - SL): a big queue a little below
    outweighs a tiny language far below): (dimension, group, SL, target)."""
    rows = []
    for g in summary.group_verdicts:
        verdict = g.get("sl_offered")
        if g.dim in ("queue", "language") and g.status != MET and verdict is not None \
                and np.isfinite(verdict.value.mean):
            short = g.volume * (verdict.target - verdict.value.mean)
            rows.append((short, g.dim, g.group, verdict.value.mean, verdict.target))
    rows.sort(key=lambda r: -r[0])
    return [(dim, group, sl, target) for _short, dim, group, sl, target in rows[:limit]]


def day_sl_groups_heatmap(summary: Summary, cal: Calendar, zone_name: str) -> Plot | None:
    """SL per day and clock time of day of the queues and languages with the most calls short
    of their target, one panel each (coloured against its own target); None when all are MET."""
    worst = worst_groups(summary)
    if not worst:
        return None
    title = (f"Service level by day and time of day: the {len(worst)} queue(s) and "
             "language(s) with the most calls short of target")
    ncols = 1 if len(worst) == 1 else 2
    nrows = -(-len(worst) // ncols)
    fig = Figure(figsize=(10, 0.5 + nrows * _day_height(len(cal.dates), compact=True)),
                 layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    grids = {dim: day_grid(summary, cal, dim) for dim in {w[0] for w in worst}}
    for ax, (dim, group, sl, target) in zip(axes, worst, strict=False):
        names, offered, within = grids[dim]
        g = names.index(group)
        ax.set_title(f"{dim} {group}: SL {100 * sl:.1f}% (target {100 * target:g}%)",
                     fontsize="medium")
        _sl_mesh(fig, ax, cal, ratio(within[g], offered[g]), target, summary.interval_s,
                 zone_name, compact=True)
    for ax in axes[len(worst):]:
        ax.set_visible(False)
    return Plot("day_sl_groups", title, _svg(fig))


def day_plots(summary: Summary, timezone: str) -> list[Plot]:
    """The day x time-of-day heatmaps of a run of more than one day (none for a shorter run)."""
    if not is_multi_day(summary):
        return []
    cal = calendar(summary)
    zone_name = zone_label(summary, timezone)
    plots = [day_sl_heatmap(summary, cal, zone_name), day_volume_heatmap(summary, cal, zone_name),
             day_sl_groups_heatmap(summary, cal, zone_name)]
    return [p for p in plots if p is not None]


# --- Day by day (runs of more than a week) ---------------------------------------------------

#: Runs longer than this many days draw their line plots a point per local date, not per
#: interval: a week of half-hour intervals is 336 points a line, still readable; a year's
#: 17,520 are not (and made most of a 12 MB page).
DAILY_AFTER_DAYS = 7.0


def is_daily(summary: Summary) -> bool:
    """True when the run is longer than :data:`DAILY_AFTER_DAYS` (its plots are per day)."""
    return run_seconds(summary) > DAILY_AFTER_DAYS * 86_400 + 1e-6


def _date_axis(ax: Axes, zone_name: str) -> None:
    """Local dates across, concise (months, then days as the run gets shorter)."""
    locator = mdates.AutoDateLocator(minticks=6, maxticks=14)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(f"local date ({zone_name})")


def _day_series(days: Sequence[Rollup], dim: str, group: str
                ) -> tuple[np.ndarray, list[Rollup]]:
    """One group's days: noon of each local date as a matplotlib date number, and the rows."""
    rows = [r for r in days if r.dim == dim and r.group == group]
    return _date_nums([r.period.first for r in rows], hours=12), rows


def _values(rows: Sequence[Rollup], kpi: str) -> np.ndarray:
    return np.array([r.values[kpi] for r in rows], dtype=float)


def _rate_per_day(days: Sequence[Rollup], kpi: str, target: float,
                  key: str, title: str, zone_name: str, by_queue: bool = False) -> Plot:
    """A share per day: the center (with its 95% CI across replications as a band, if any)
    or each queue, and the target."""
    fig, ax = _figure(title)
    if by_queue:
        for queue in dict.fromkeys(r.group for r in days if r.dim == "queue"):
            x, rows = _day_series(days, "queue", queue)
            ax.plot(x, _pct(_values(rows, kpi)), marker=".", markersize=3, linewidth=1,
                    label=queue)
    else:
        x, rows = _day_series(days, "center", ALL)
        ci = np.array([r.ci(kpi) for r in rows], dtype=float)
        if np.isfinite(ci).any():
            ax.fill_between(x, 100 * ci[:, 0], 100 * ci[:, 1], alpha=0.25,
                            label="95% CI across replications")
        ax.plot(x, _pct(_values(rows, kpi)), marker=".", markersize=3, linewidth=1,
                label=f"{'SL' if kpi == 'sl_offered' else 'CAR'} of the day")
    ax.axhline(100 * target, color="red", linestyle="--", label=f"target {100 * target:g}%")
    ax.set(ylabel="%", ylim=(0, 101))
    _date_axis(ax, zone_name)
    ax.legend(loc="lower left", fontsize="small", ncol=6 if by_queue else 3)
    return Plot(key, title, _svg(fig))


def daily_volume_plot(days: Sequence[Rollup], zone_name: str) -> Plot:
    """Offered, answered and abandoned calls per local date (means per replication)."""
    title = "Offered, answered and abandoned calls per day"
    fig, ax = _figure(title)
    x, rows = _day_series(days, "center", ALL)
    for k in ("offered", "answered", "abandoned"):
        ax.plot(x, _values(rows, k), linewidth=1, label=k)
    ax.set(ylabel="calls per day (mean)")
    ax.set_ylim(bottom=0)
    _date_axis(ax, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("daily_volume", title, _svg(fig))


def daily_asa_plot(summary: Summary, days: Sequence[Rollup], zone_name: str) -> Plot:
    """ASA per local date of the center and each queue, with the SL threshold."""
    title = "Average speed of answer per day"
    fig, ax = _figure(title)
    x, rows = _day_series(days, "center", ALL)
    ax.plot(x, _values(rows, "asa_s"), color="black", linewidth=1.5, label="center")
    for queue in dict.fromkeys(r.group for r in days if r.dim == "queue"):
        xq, rq = _day_series(days, "queue", queue)
        ax.plot(xq, _values(rq, "asa_s"), linewidth=0.8, label=queue)
    ax.axhline(summary.threshold_s, color="red", linestyle="--",
               label=f"SL threshold {summary.threshold_s:g} s")
    ax.set(ylabel="ASA, s")
    ax.set_ylim(bottom=0)
    _date_axis(ax, zone_name)
    ax.legend(loc="upper left", fontsize="small", ncol=7)
    return Plot("daily_asa", title, _svg(fig))


def daily_language_heatmap(days: Sequence[Rollup], zone_name: str) -> Plot | None:
    """SL per local date (columns) and language (rows), grey where a day had no calls."""
    names = list(dict.fromkeys(r.group for r in days if r.dim == "language"))
    if not names:
        return None
    first = [r for r in days if r.dim == "center"]
    edges = _date_edges([r.period.first for r in first])
    sl = np.stack([_values(_day_series(days, "language", n)[1], "sl_offered") for n in names])
    title = "Service level per day by language (grey: no calls)"
    fig = Figure(figsize=(10, 0.9 + 0.28 * len(names)))
    ax = fig.subplots()
    ax.set_title(title)
    cmap, norm = sl_scale(min((r.sl_target for r in days if r.dim == "language"), default=0.8))
    mesh = ax.pcolormesh(edges, np.arange(len(names) + 1), np.ma.masked_invalid(_pct(sl)),
                         cmap=cmap, norm=norm, rasterized=True)
    ax.set_yticks(np.arange(len(names)) + 0.5, names)
    ax.invert_yaxis()
    _date_axis(ax, zone_name)
    fig.colorbar(mesh, ax=ax, label="SL %", pad=0.01)
    return Plot("daily_sl_language", title, _svg(fig))


def daily_wait_plot(summary: Summary, results: Sequence[RunResult], cal: Calendar,
                    zone_name: str) -> Plot:
    """Wait percentiles of offered calls per local date, pooled over replications."""
    waits, interval = _pooled_waits(results, cal.row.size, summary.interval_s)
    pct = _percentiles_by(waits, cal.row[interval], len(cal.dates))
    x = _noon_of_dates(cal)
    title = "Wait in queue per day: percentiles of offered calls"
    fig, ax = _figure(title)
    for k, p in enumerate(PERCENTILES):
        if p in (50, 90, 95):
            ax.plot(x, pct[k], linewidth=1, label=f"p{p}")
    ax.axhline(summary.threshold_s, color="red", linestyle="--",
               label=f"SL threshold {summary.threshold_s:g} s")
    ax.set(ylabel="wait, s")
    ax.set_ylim(bottom=0)
    _date_axis(ax, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("daily_wait", title, _svg(fig))


def _noon_of_dates(cal: Calendar) -> np.ndarray:
    """Noon of each local date of the calendar as matplotlib date numbers."""
    return _date_nums(cal.dates, hours=12)


def _per_date(values: np.ndarray, cal: Calendar) -> np.ndarray:
    """Per-interval values (intervals first) summed per local date."""
    return period_sums(values.T, cal.row, len(cal.dates)).T


def daily_occupancy_plot(results: Sequence[RunResult], cal: Calendar, zone_name: str
                         ) -> Plot | None:
    """Agent occupancy per local date and site, and of all sites: busy seconds over busy and
    ready seconds of the day, pooled over replications."""
    agents = [r.agent_time for r in results if r.agent_time.seconds.size]
    if not agents or len({a.seconds.shape for a in agents}) != 1:
        return None
    busy = np.sum([_per_date(a.seconds[:, :, BUSY], cal) for a in agents], axis=0)
    ready = np.sum([_per_date(a.seconds[:, :, READY], cal) for a in agents], axis=0)
    x = _noon_of_dates(cal)
    title = "Agent occupancy per day per site"
    fig, ax = _figure(title)
    for j, site in enumerate(agents[0].sites):
        ax.plot(x, _pct(ratio(busy[:, j], busy[:, j] + ready[:, j])), linewidth=1, label=site)
    ax.plot(x, _pct(ratio(busy.sum(axis=1), (busy + ready).sum(axis=1))), color="black",
            linestyle=":", label="all sites")
    ax.set(ylabel="occupancy %", ylim=(0, 101))
    _date_axis(ax, zone_name)
    ax.legend(loc="lower left", fontsize="small")
    return Plot("daily_occupancy", title, _svg(fig))


def daily_depth_plot(results: Sequence[RunResult], cal: Calendar, zone_name: str
                     ) -> Plot | None:
    """Calls waiting per local date: the day's largest single queue (peak over replications)
    and the mean of all queues together at the day's busiest interval."""
    means = [r.queue_depth_mean for r in results if r.queue_depth_mean is not None]
    peaks = [r.queue_depth_max for r in results if r.queue_depth_max is not None]
    if not means or len({m.shape for m in means}) != 1:
        return None
    n = min(means[0].shape[0], cal.row.size)
    mean = np.mean([m.sum(axis=1) for m in means], axis=0)[:n]
    peak = np.max([p.max(axis=1) for p in peaks], axis=0)[:n]
    busiest = np.full(len(cal.dates), np.nan)
    largest = np.full(len(cal.dates), np.nan)
    np.fmax.at(busiest, cal.row[:n], mean)
    np.fmax.at(largest, cal.row[:n], peak)
    title = "Queue depth per day"
    fig, ax = _figure(title)
    x = _noon_of_dates(cal)
    ax.plot(x, busiest, linewidth=1, label="waiting, all queues (mean, busiest interval)")
    ax.plot(x, largest, linestyle="--", linewidth=1, label="largest single queue (peak)")
    ax.set(ylabel="calls waiting")
    ax.set_ylim(bottom=0)
    _date_axis(ax, zone_name)
    ax.legend(loc="upper left", fontsize="small")
    return Plot("daily_depth", title, _svg(fig))


def worst_week_sl_plot(summary: Summary, weeks: Sequence[Rollup], cal: Calendar,
                       tz: ZoneInfo | None, zone_name: str) -> Plot | None:
    """The center's SL per interval over its worst judged week (:func:`sim.rollup.worst_period`,
    the week the terminal names), with its 95% CI and the target: the per-interval view, for
    the week that needs it."""
    worst = worst_period([w for w in weeks if w.dim == "center"])
    if worst is None:
        return None
    in_week = (np.asarray(cal.dates) >= worst.period.first) & (
        np.asarray(cal.dates) <= worst.period.last)
    rows = np.flatnonzero(in_week[cal.row])
    table = summary.intervals[ALL]
    x = interval_times(summary, table.start_s[rows], tz)
    sl = table.mean["sl_offered"][0][rows]
    half = np.nan_to_num(table.half_width["sl_offered"][0][rows])
    title = (f"Service level per interval in the worst week, {worst.period.label} "
             f"(SL {100 * worst.values['sl_offered']:.1f}%)")
    return _sl_band("worst_week_sl", title, x, sl, half, summary.target, tz, zone_name)


def daily_plots(summary: Summary, results: Sequence[RunResult], timezone: str,
                periods: CalendarRollups | None = None) -> list[Plot]:
    """The line plots of a run longer than :data:`DAILY_AFTER_DAYS`: a point per local date
    from the daily roll-ups, then the worst week interval by interval (``periods``: the run's
    :func:`~sim.rollup.run_periods`)."""
    tz = zone_of(summary, timezone)
    cal = calendar(summary)
    zone_name = zone_label(summary, timezone)
    found = run_periods(summary, results, periods)
    days = found["daily"]
    plots = [
        _rate_per_day(days, "sl_offered", summary.target, "daily_sl",
                      f"Service level per day (answered within {summary.threshold_s:g} s)",
                      zone_name),
        _rate_per_day(days, "sl_offered", summary.target, "daily_sl_queue",
                      "Service level per day by queue", zone_name, by_queue=True),
        daily_language_heatmap(days, zone_name),
        _rate_per_day(days, "answer_rate", summary.answer_rate_target, "daily_car",
                      "Answer rate (CAR) per day", zone_name),
        daily_asa_plot(summary, days, zone_name),
        daily_wait_plot(summary, results, cal, zone_name) if results else None,
        daily_volume_plot(days, zone_name),
        daily_depth_plot(results, cal, zone_name),
        daily_occupancy_plot(results, cal, zone_name),
        worst_week_sl_plot(summary, found["weekly"], cal, tz, zone_name),
    ]
    return [p for p in plots if p is not None]
