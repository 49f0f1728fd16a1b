"""Turn a scenario's shift patterns into a timeline of logins, breaks and logouts per agent.

Deterministic apart from absence: agents are spread evenly over a group's shifts, days off
rotate through the week, and breaks are staggered so a group never leaves for lunch all at once.

Everything an agent gets is the agent's own, so that two scenarios compared on the same seeds
(common random numbers) differ only where they differ. The ``k``-th agent of a group keeps its
shift, days off and break stagger whatever the size of the group (:func:`shift_slots` never
moves earlier agents when one is added), and whether it is absent on a calendar day comes
from the agent's own stream, keyed by the replication's seed and the agent's id, at the day's
ordinal (:func:`absent_days`), the same whatever other agents exist, in whatever order, and
whatever day the run starts on.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np

from acd.config.schema import CenterConfig
from acd.core.model import AgentProfile
from sim.scenario import Shift, Staffing

Action = Literal["login", "pause", "ready", "logout"]
# Order of actions at the same instant: leave before join.
_ORDER = {"logout": 0, "pause": 1, "ready": 2, "login": 3}


@dataclass(frozen=True, slots=True)
class StaffAction:
    """At ``t`` seconds from the run's start, ``agent`` does ``action`` (pause with ``reason``;
    a login with a ``reason`` starts paused, on a break already under way)."""

    t: float
    action: Action
    agent: str
    reason: str | None = None


def allocate(shares: list[float], n: int) -> list[int]:
    """Largest-remainder allocation of ``n`` agents over shifts with relative ``shares``."""
    total = sum(shares)
    exact = [s / total * n for s in shares]
    counts = [math.floor(e) for e in exact]
    for i in sorted(range(len(shares)), key=lambda i: exact[i] - counts[i],
                    reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def shift_slots(shares: list[float], n: int) -> list[int]:
    """The shift of each of a group's ``n`` agents, the ``k``-th agent's the same for every
    ``n > k``: adding agents never moves the agents already there.

    Agent ``k`` takes the shift whose head count under :func:`allocate` grows from ``k`` to
    ``k + 1`` agents: where largest remainders add one seat at a time, the first ``n`` agents
    fill exactly ``allocate(shares, n)``, and each shift's agents are spread evenly through the
    group (over its days off and its language blocks). Where they cannot be reached without
    moving an earlier agent (the Alabama paradox: a shift losing a seat as the group grows), the
    agent goes where the counts are furthest below them, so each shift stays within one agent
    of its exact share.
    """
    return list(_shift_slots(tuple(shares), n))


@lru_cache(maxsize=256)
def _shift_slots(shares: tuple[float, ...], n: int) -> tuple[int, ...]:
    total = sum(shares)
    counts = [0] * len(shares)
    out = []
    for k in range(n):
        target = allocate(list(shares), k + 1)
        slot = max(range(len(shares)), key=lambda s: (
            target[s] - counts[s], shares[s] / total * (k + 1) - counts[s], -s))
        counts[slot] += 1
        out.append(slot)
    return tuple(out)


def absence_root(seed: np.random.SeedSequence | np.random.Generator) -> np.ndarray:
    """The 128 bits every agent's absence stream of a replication derives from: drawn from the
    replication's staffing seed sequence (a generator stands for the seed sequence it was
    seeded with, never for its current state)."""
    ss = seed.bit_generator.seed_seq if isinstance(seed, np.random.Generator) else seed
    if not isinstance(ss, np.random.SeedSequence):
        raise TypeError("absences need a generator seeded from a numpy SeedSequence")
    return ss.generate_state(4)


def agent_key(agent: str) -> list[int]:
    """A stable 128-bit key of an agent id (BLAKE2b, so unlike ``hash()`` the same in every
    process and every run), as four 32-bit words."""
    digest = hashlib.blake2b(agent.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def absent_days(root: np.ndarray, agent: str, first: date, days: int, rate: float
                ) -> np.ndarray:
    """Whether ``agent`` is absent on each of ``days`` calendar days from ``first``.

    The agent has its own Philox stream, seeded with the replication's ``root`` and the
    agent's :func:`agent_key`; day ``d`` uses the stream at counter ``d.toordinal()`` (one
    Philox block of four words per day, the first of which is the day's uniform). A day's draw
    is thus fixed by the seed, the agent and the date alone.
    """
    bits = np.random.Philox(np.random.SeedSequence([*root.tolist(), *agent_key(agent)]))
    bits.advance(first.toordinal())
    uniforms = np.random.Generator(bits).random(4 * days)[::4]
    return uniforms < rate


def build_timeline(config: CenterConfig, agents: list[AgentProfile], staffing: Staffing,
                   start: datetime, horizon_s: float,
                   seed: np.random.SeedSequence | np.random.Generator) -> list[StaffAction]:
    """Every staffing action in ``[0, horizon_s)``, time-ordered.

    Absences are drawn per agent and calendar day from ``seed`` (:func:`absent_days`); a
    generator passed instead stands for the seed sequence it was made from. The same as
    ``shift_plan(config, agents, staffing, start, horizon_s).timeline(seed)``.
    """
    return shift_plan(config, agents, staffing, start, horizon_s).timeline(seed)


@dataclass(frozen=True)
class ShiftPlan:
    """Every agent's shifts and breaks over a run, before absences: what is the same for every
    replication of a scenario. :meth:`timeline` draws one replication's absences and leaves out
    the absent days' actions.

    ``actions`` is already time-ordered; ``owner[i]`` is the (agent, day) cell of action ``i``
    in the flat ``len(agents) x days`` absence grid, agents in the order of ``agent_ids``.
    """

    actions: tuple[StaffAction, ...]
    owner: np.ndarray
    agent_ids: tuple[str, ...]
    first_days: tuple[date, ...]
    days: int
    rate: float

    def timeline(self, seed: np.random.SeedSequence | np.random.Generator
                 ) -> list[StaffAction]:
        """The time-ordered actions of the replication whose staffing stream is ``seed``."""
        if not self.rate or not self.actions:
            return list(self.actions)
        root = absence_root(seed)
        absent = np.concatenate([absent_days(root, agent, first, self.days, self.rate)
                                 for agent, first in zip(self.agent_ids, self.first_days,
                                                         strict=True)])
        # Leaving out actions keeps the order of the rest: a stable sort of the kept actions
        # alone would put them in the same order.
        return list(itertools.compress(self.actions, (~absent[self.owner]).tolist()))


def shift_plan(config: CenterConfig, agents: list[AgentProfile], staffing: Staffing,
               start: datetime, horizon_s: float) -> ShiftPlan:
    """The shifts and breaks of every agent in ``[0, horizon_s)``, absences not drawn yet."""
    by_group: dict[str, list[AgentProfile]] = {}
    for a in agents:
        by_group.setdefault(a.group, []).append(a)
    actions: list[StaffAction] = []
    owner: list[int] = []
    agent_ids: list[str] = []
    first_days: list[date] = []
    days = math.ceil(horizon_s / 86400) + 2
    for group, members in by_group.items():
        site = config.agent_groups[group].site
        tz = ZoneInfo(config.sites[site].timezone)
        shifts = staffing.group_shifts.get(group) or staffing.shifts.get(site, [])
        if not shifts:
            continue
        slots = shift_slots([s.share for s in shifts], len(members))
        first_day = start.astimezone(tz).date() - timedelta(days=1)
        for k, agent in enumerate(members):
            cell = len(agent_ids) * days
            agent_ids.append(agent.id)
            first_days.append(first_day)
            shift = shifts[slots[k]]
            off = {(k + j) % 7 for j in range(7 - staffing.work_days_per_week)}
            stagger = _stagger(k, staffing.break_stagger_minutes)
            for d in range(days):
                day = first_day + timedelta(days=d)
                if day.weekday() in off:
                    continue
                found = _shift_actions(agent.id, shift, day, tz, start, horizon_s, staffing,
                                       stagger)
                actions.extend(found)
                owner.extend([cell + d] * len(found))
    order = sorted(range(len(actions)), key=lambda i: (actions[i].t, _ORDER[actions[i].action],
                                                       actions[i].agent))
    return ShiftPlan(tuple(actions[i] for i in order),
                     np.array([owner[i] for i in order], dtype=np.intp), tuple(agent_ids),
                     tuple(first_days), days, staffing.absence_rate)


def _stagger(k: int, minutes: float) -> float:
    # Offsets -1, -0.5, 0, 0.5, 1 of the stagger, cycling through the group.
    return ((k % 5) - 2) / 2 * minutes * 60


def _shift_actions(agent: str, shift: Shift, day: object, tz: ZoneInfo, start: datetime,
                   horizon_s: float, staffing: Staffing, stagger: float) -> list[StaffAction]:
    hh, mm = (int(x) for x in shift.start.split(":"))
    begin = datetime.combine(day, time(hh, mm), tzinfo=tz)  # type: ignore[arg-type]
    t0 = (begin - start).total_seconds()
    t1 = t0 + shift.hours * 3600
    if t1 <= 0 or t0 >= horizon_s:
        return []
    out = [StaffAction(max(t0, 0.0), "login", agent)]
    for br in sorted(staffing.breaks, key=lambda b: b.after_h):
        b0 = t0 + br.after_h * 3600 + stagger
        b1 = b0 + br.minutes * 60
        if b0 <= t0 or b1 >= t1 or b1 <= 0 or b0 >= horizon_s:
            continue
        if b0 <= 0:
            # Under way when the run starts: the agent is there, on its break.
            out[0] = StaffAction(0.0, "login", agent, br.reason)
        elif out[-1].action == "ready" and b0 <= out[-1].t + 1e-3:
            # Back to back (to float rounding): go straight from one break into the next (a
            # ready and a pause at the same instant would be played pause first, leaving the
            # agent ready).
            out[-1] = StaffAction(b0, "pause", agent, br.reason)
        else:
            out.append(StaffAction(b0, "pause", agent, br.reason))
        out.append(StaffAction(b1, "ready", agent))
    if t1 < horizon_s:
        out.append(StaffAction(t1, "logout", agent))
    return out
