"""Site outages in a scenario: a site's agents go unavailable between two times, then return.

An outage of a site (its PBX, its network) makes every agent of that site unavailable from
``from`` until ``until``: a ringing offer goes back to the queue, calls in progress and their
wrap-up finish, and no new offer reaches them (they are logged out; a logout on a call waits for
its end, as the router does for every logout). When the site comes back, every agent whose
shift is still on logs in again, paused if their break is under way. Shift changes and breaks
that fall inside the outage are kept track of but not played. Calls then go where routing
allows: to the other site once a queue's expansion adds it, or they wait, abandon or overflow.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from acd.core.model import AgentProfile
from sim.kpi import Dimension, Estimate, IntervalTable, estimate, kpis_per_interval
from sim.records import RunResult
from sim.scenario import Outage, Scenario, outage_window
from sim.staffing import StaffAction


@dataclass(frozen=True)
class OutageWindow:
    """One outage in seconds from the run's start."""

    site: str
    from_s: float
    until_s: float


def windows(outages: Sequence[Outage], sites_tz: dict[str, str], start: datetime
            ) -> list[OutageWindow]:
    """The scenario's outages in seconds from ``start`` (clock times in the site's zone)."""
    out = []
    for o in outages:
        begin, end = outage_window(o, sites_tz[o.site], start)
        out.append(OutageWindow(o.site, (begin - start).total_seconds(),
                                (end - start).total_seconds()))
    return out


def apply_outages(timeline: Sequence[StaffAction], agents: Sequence[AgentProfile],
                  outages: Sequence[OutageWindow]) -> list[StaffAction]:
    """``timeline`` with each outage's site logged out through it and back in after it.

    Overlapping outages of one site make one. At the same instant a site's going down or
    coming back comes before the timeline's own actions.
    """
    if not outages:
        return list(timeline)
    site_of = {a.id: a.site for a in agents}
    # Marks sort before actions of the same instant (-1 < 0), then in the order given.
    events: list[tuple[float, int, int, StaffAction | tuple[str, str]]] = [
        (act.t, 0, i, act) for i, act in enumerate(timeline)]
    for i, w in enumerate(outages):
        events.append((w.from_s, -1, 2 * i, ("down", w.site)))
        events.append((w.until_s, -1, 2 * i + 1, ("up", w.site)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    # The state each agent's own timeline has it in: None (out), "" (ready) or a pause reason.
    state: dict[str, str | None] = {}
    down: dict[str, int] = {}
    out: list[StaffAction] = []
    for t, _order, _i, event in events:
        if isinstance(event, tuple):
            what, site = event
            before = down.get(site, 0)
            down[site] = before + (1 if what == "down" else -1)
            if (what == "down" and before == 0) or (what == "up" and down[site] == 0):
                for agent, now in state.items():
                    if now is not None and site_of.get(agent) == site:
                        out.append(StaffAction(t, "logout", agent) if what == "down"
                                   else StaffAction(t, "login", agent, now or None))
            continue
        act = event
        if act.action == "login":
            state[act.agent] = act.reason or ""
        elif act.action == "logout":
            state[act.agent] = None
        elif act.action == "pause" and state.get(act.agent) is not None:
            state[act.agent] = act.reason or "break"
        elif act.action == "ready" and state.get(act.agent) is not None:
            state[act.agent] = ""
        if down.get(site_of.get(act.agent, ""), 0) == 0:
            out.append(act)
    return out


@dataclass(frozen=True)
class OutageRow:
    """A group's service level during one outage and over the rest of the run (95% CIs).

    Languages are judged on ``sl_offered``; sites, which only answered calls have, on
    ``sl_answered``, with ``calls`` the calls they answered (per replication, mean).
    """

    outage: str
    dimension: str
    group: str
    kpi: str
    calls: float
    during: Estimate
    rest: Estimate


def outage_rows(scenario: Scenario, results: Sequence[RunResult]) -> list[OutageRow]:
    """Per outage, the SL of each site and language during it against the rest of the run."""
    if not scenario.spec.outages or not results:
        return []
    zones = {name: site.timezone for name, site in scenario.center.config.sites.items()}
    start = datetime.fromisoformat(results[0].start_iso)
    dims: tuple[Dimension, ...] = ("site", "language")
    tables = {dim: [kpis_per_interval(r, dim) for r in results] for dim in dims}
    rows = []
    for outage, w in zip(scenario.spec.outages, windows(scenario.spec.outages, zones, start),
                         strict=True):
        label = f"{w.site} {outage.from_}-{outage.until}"
        for dim, per_run in tables.items():
            first = per_run[0]
            inside = (first.start_s + results[0].interval_s > w.from_s) & \
                (first.start_s < w.until_s)
            kpi, num, den = (("sl_answered", "answered_within", "answered") if dim == "site"
                             else ("sl_offered", "answered_within", "offered"))
            for g, group in enumerate(first.groups):
                calls = float(np.mean([np.nansum(t.values[den][g][inside]) for t in per_run]))
                if not any(np.nansum(t.values[den][g]) for t in per_run):
                    continue  # a group without calls in the whole run (a site down says 0)
                rows.append(OutageRow(
                    label, dim, group, kpi, calls,
                    estimate([_share(t, num, den, g, inside) for t in per_run]),
                    estimate([_share(t, num, den, g, ~inside) for t in per_run])))
    return rows


def _share(table: IntervalTable, num: str, den: str, group: int, mask: np.ndarray) -> float:
    """``num / den`` of one group summed over the intervals in ``mask`` (NaN without calls)."""
    d = float(np.nansum(table.values[den][group][mask]))
    return float(np.nansum(table.values[num][group][mask])) / d if d else math.nan


def print_outages(rows: Sequence[OutageRow], console: Console) -> None:
    """The table of :func:`outage_rows`: each site and language during each outage."""
    from sim.report import fmt_ci

    table = Table("outage", "group", "kpi", "calls in it", "SL during ± CI", "SL rest of run",
                  title="Service level during each outage (sites: of the calls they answered)",
                  title_justify="left")
    for r in rows:
        table.add_row(r.outage, f"{r.dimension} {r.group}", r.kpi, f"{r.calls:.0f}",
                      fmt_ci(r.kpi, r.during), fmt_ci(r.kpi, r.rest))
    console.print(table)


def write_outages(path: Path, rows: Sequence[OutageRow]) -> None:
    """The rows of :func:`outage_rows` as CSV (shares; half-widths of 95% CIs)."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["outage", "dimension", "group", "kpi", "calls", "during", "during_hw",
                      "rest", "rest_hw"])
        for r in rows:
            out.writerow([r.outage, r.dimension, r.group, r.kpi, f"{r.calls:.1f}",
                          *(f"{v:.6f}" if math.isfinite(v) else "" for v in (
                              r.during.mean, r.during.half_width, r.rest.mean,
                              r.rest.half_width))])
