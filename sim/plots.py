"""The report's plots: inline SVG with clock-time axes in the center's time zone.

Figures are drawn with the Agg-free :class:`~matplotlib.figure.Figure` API (no pyplot, no global
backend) and saved as SVG with text kept as text, so the tick labels ("09:00") and titles stay
readable, searchable and checkable in the page. Every x axis is local clock time of the zone
the report is for; shares are drawn in percent and clipped to [0, 100].
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from sim.kpi import ALL, Summary
from sim.records import RunResult

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
    fig, ax = _figure(title)
    ax.fill_between(x, _pct(sl - half), _pct(sl + half), alpha=0.25, label="95% CI")
    ax.plot(x, _pct(sl), marker=".", label="SL (mean)")
    ax.axhline(100 * summary.target, color="red", linestyle="--",
               label=f"target {100 * summary.target:g}%")
    ax.set(ylabel="SL %", ylim=(0, 101))
    _time_axis(ax, tz, zone_name)
    ax.legend(loc="lower left", fontsize="small")
    return Plot("sl", title, _svg(fig))


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


def wait_percentiles(results: Sequence[RunResult], n_intervals: int, interval_s: float
                     ) -> np.ndarray:
    """Percentiles of the wait of offered calls per interval, pooled over replications:
    shape (len(PERCENTILES), n_intervals), NaN where an interval has no calls."""
    out = np.full((len(PERCENTILES), n_intervals), np.nan)
    logs = [r.wait_log() for r in results]  # calls offered from the start on
    waits = np.concatenate([w.wait_s for w in logs])
    queued = np.concatenate([w.queued_s for w in logs])
    index = np.minimum(np.floor(queued / interval_s).astype(np.int64), n_intervals - 1)
    order = np.argsort(index, kind="stable")
    index, waits = index[order], waits[order]
    bounds = np.searchsorted(index, np.arange(n_intervals + 1))
    for i in range(n_intervals):
        chunk = waits[bounds[i]:bounds[i + 1]]
        if chunk.size:
            out[:, i] = np.percentile(chunk, PERCENTILES)
    return out


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


def all_plots(summary: Summary, results: Sequence[RunResult], timezone: str) -> list[Plot]:
    """Every plot the report shows, in reading order."""
    tz = zone_of(summary, timezone)
    zone_name = timezone or f"UTC{datetime.fromisoformat(summary.start_iso).strftime('%z')}"
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
