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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from acd.core.model import AgentProfile
from sim.scenario import Outage, outage_window
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
