"""Staffing per interval, queue and language: seeded by Erlang C or A, confirmed by simulation.

Demand comes from the scenario's forecast (expected calls per interval and queue, and per queue
and caller language from the traffic mix, before any over-dispersion), AHT is mean talk (the
language's own where given) + wrap-up, patience the traffic file's mean. Each queue, and each
(queue, language) group, is sized as its own pool; multi-skill and multi-lingual agents are
counted in every group they serve, so the scheduled column over-counts shared agents. The
confirmation (:mod:`sim.confirm`) runs candidates through the center simulation, where routing
across groups (expansion steps) is visible.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from rich.console import Console

from acd.config.load import LoadedCenter, center_from_data
from acd.core.model import AgentProfile
from sim.engine import Simulation
from sim.erlang import ErlangA, agents_for_service_level, service_level_c
from sim.executor import Executor
from sim.mmc import START
from sim.records import ANSWERED
from sim.scenario import Behaviour, DistSpec, Scenario
from sim.staffing import StaffAction, build_timeline
from sim.traffic import Arrival, QueueHandling, load_traffic

if TYPE_CHECKING:
    from sim.confirm import Searcher
    from sim.plots import Plot
    from sim.refine import Refinement

Model = Literal["A", "C"]
#: ``StaffRow.language`` of a queue's row (every language of the queue).
ALL_LANGUAGES = "all"
#: An interval is judged by the search when its group expects at least this many calls (fewer
#: make its simulated SL mostly noise); a group with no such interval keeps Erlang's counts.
MIN_JUDGED_CALLS = 5.0
#: Where a row's required count comes from: Erlang's per-interval count, the groups' minimum
#: (``min_agents``), Erlang times the group's confirmed factor, or the per-interval refinement.
SOURCES = ("erlang", "minimum", "factor", "refined")
#: Default rounds of the per-interval refinement after ``--confirm`` (0: off): the reference
#: Monday stops moving after three (docs/planning.md), and each round costs about three
#: candidates.
REFINE_ROUNDS = 3
POOLING_NOTE = ("Each queue and queue/language group is sized as its own pool; shared agents "
                "count in every group they serve. Pooling is only visible in `acd sim run` "
                "and `--confirm`.")
#: Said when the scenario takes a site down: sizing and confirmation leave its outages out.
OUTAGES_NOTE = ("The scenario's site outages are left out: agents are sized and confirmed as "
                "logged in. `acd sim run` shows what an outage costs.")
#: Simulated time before SL is measured in a confirmation run (the pool starts empty).
WARM_UP_S = 3600.0


@dataclass(frozen=True)
class Demand:
    """Expected calls per interval (rows) and queue (columns), with each queue's handling."""

    starts: list[datetime]
    interval_s: float
    queues: tuple[str, ...]
    calls: np.ndarray
    aht_s: dict[str, float]
    wrap_s: dict[str, float]
    patience_s: dict[str, float | None]
    handling: dict[str, QueueHandling]
    #: Offset of interval 0 from the scenario start (<= 0), seconds.
    offset_s: float
    #: The (queue, language) groups with demand: the pools a language with few speakers needs.
    cells: tuple[tuple[str, str], ...] = ()
    #: Expected calls per interval (rows) and group (columns, in ``cells`` order).
    cell_calls: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    #: AHT per group: the language's own mean talk (if the traffic file gives one) + wrap-up.
    cell_aht_s: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def cell_aht(self) -> np.ndarray:
        """AHT per group as an array in ``cells`` order, seconds."""
        return np.array([self.cell_aht_s[c] for c in self.cells])

    @property
    def cell_load(self) -> np.ndarray:
        """Offered load per interval (rows) and group (columns), Erlangs."""
        return self.cell_calls * self.cell_aht[None, :] / self.interval_s


@dataclass(frozen=True)
class StaffRow:
    """One interval of one queue (``language`` "all") or of one (queue, language) group:
    demand, Erlang staffing, scheduled staffing, confirmation by the center simulation."""

    interval_start: str
    queue: str
    calls: float
    aht_s: float
    erlang_agents: int
    erlang_sl: float
    scheduled_agents: float
    scheduled_sl: float
    confirmed_agents: int | None = None
    confirmed_sl: float | None = None
    language: str = ALL_LANGUAGES
    #: 95% CI of the confirmed (simulated) SL.
    confirmed_sl_low: float | None = None
    confirmed_sl_high: float | None = None
    #: The planned count where it is not Erlang's (the minimum, a factor or a refinement).
    planned_agents: int | None = None
    #: Where the required count comes from: one of :data:`SOURCES`.
    source: str = "erlang"

    @property
    def required_agents(self) -> int:
        """The planned count where there is one, else the confirmed, else Erlang's."""
        if self.planned_agents is not None:
            return self.planned_agents
        return self.erlang_agents if self.confirmed_agents is None else self.confirmed_agents

    @property
    def gap(self) -> float:
        """Required minus scheduled agents: > 0 is a shortfall, < 0 a surplus."""
        return self.required_agents - self.scheduled_agents


@dataclass(frozen=True)
class ConfirmSummary:
    """How ``--confirm`` searched: per group its factor on Erlang, and what it cost."""

    scale: dict[tuple[str, str], float]
    #: Per group, SL over its judged intervals together: (mean, low, high) of the 95% CI.
    group_sl: dict[tuple[str, str], tuple[float, float, float]]
    candidates: int
    replications_run: int
    replications_final: int
    wall_s: float
    #: Median and largest 95% CI half-width of SL over the judged intervals of the result (a
    #: small group judged as a whole: its pooled SL's).
    median_half_width: float
    max_half_width: float
    #: The per-interval refinement after the factor search, when it ran.
    refinement: Refinement | None = None
    #: CPU seconds of all the replications (factor search and refinement).
    cpu_s: float = 0.0


@dataclass(frozen=True)
class Minimum:
    """What the groups' minimum staffing adds: a group gets at least ``agents`` wherever it
    expects a call; with 0, none where it expects fewer than :data:`MIN_JUDGED_CALLS`."""

    agents: int
    #: Agent-intervals the minimum adds over a minimum of 0, and in how many group-intervals.
    added: int
    cells: int
    #: Offered load of those group-intervals, agent-intervals (what their calls keep busy).
    load: float
    #: Agent-intervals over the day: the language groups' (with the minimum) and the queues'.
    language_total: int
    queue_total: int


@dataclass(frozen=True)
class StaffPlan:
    """The staffing table (per queue, and per queue and language) and how it was made."""

    scenario: str
    model: Model
    rows: list[StaffRow]
    interval_s: float
    language_rows: list[StaffRow] = field(default_factory=list)
    confirmation: ConfirmSummary | None = None
    minimum: Minimum | None = None


def demand(scenario: Scenario, days: float | None = None) -> Demand:
    """Expected calls per interval and queue from the scenario's traffic forecast."""
    spec = scenario.spec
    cfg = scenario.center.config
    traffic = load_traffic(scenario.traffic_path, cfg.queues, cfg.languages, cfg.countries)
    forecast = traffic.forecast(spec.start, days or spec.days)
    queues = tuple(sorted({s.queue for s in forecast.streams}))
    calls = np.zeros((forecast.expected.shape[0], len(queues)))
    talk_mean: dict[str, float] = {}
    weight: dict[str, float] = {}
    cell_calls: dict[tuple[str, str], np.ndarray] = {}
    cell_talk: dict[tuple[str, str], float] = {}
    for j, s in enumerate(forecast.streams):
        calls[:, queues.index(s.queue)] += forecast.expected[:, j]
        h = forecast.handling[s.queue]
        talk = h.talk_by_language.get(s.language, h.talk).mean
        share = float(forecast.expected[:, j].sum())
        talk_mean[s.queue] = talk_mean.get(s.queue, 0.0) + share * talk
        weight[s.queue] = weight.get(s.queue, 0.0) + share
        if share > 0:
            key = (s.queue, s.language)
            cell_calls[key] = cell_calls.get(key, 0.0) + forecast.expected[:, j]
            cell_talk[key] = talk
    keep = 1.0 if spec.behaviour.ivr_flow else 1.0 - spec.behaviour.ivr_abandon_probability
    calls *= spec.volume_scale * keep
    wrap = {q: (w.mean if (w := forecast.handling[q].wrap) is not None
                else float(cfg.queues[q].wrap_up_s)) for q in queues}
    aht = {q: talk_mean[q] / max(weight[q], 1e-12) + wrap[q] for q in queues}
    cells = tuple(sorted(cell_calls))
    by_cell = (np.stack([cell_calls[c] for c in cells], axis=1) if cells
               else np.zeros((calls.shape[0], 0))) * (spec.volume_scale * keep)
    patience = {q: (p.mean if (p := forecast.handling[q].patience) is not None else None)
                for q in queues}
    starts = [spec.start + timedelta(seconds=forecast.offset_s + i * forecast.interval_s)
              for i in range(calls.shape[0])]
    return Demand(starts, forecast.interval_s, queues, calls, aht, wrap, patience,
                  dict(forecast.handling), forecast.offset_s, cells, by_cell,
                  {c: cell_talk[c] + wrap[c[0]] for c in cells})


def scheduled(scenario: Scenario, d: Demand) -> np.ndarray:
    """Mean agents per interval and queue with the queue's skill, logged in and not paused.

    Absence is applied as its expected share rather than drawn.
    """
    return _scheduled(scenario, d, _queue_columns(scenario, d))


def scheduled_cells(scenario: Scenario, d: Demand) -> np.ndarray:
    """Mean agents per interval and (queue, language) group who have the queue's skill and
    speak the language, logged in and not paused (a multi-lingual agent counts in each)."""
    return _scheduled(scenario, d, _cell_columns(scenario, d))


def _scheduled_both(scenario: Scenario, d: Demand) -> tuple[np.ndarray, np.ndarray]:
    """:func:`scheduled` and :func:`scheduled_cells` from one roster timeline."""
    queue_columns = _queue_columns(scenario, d)
    both = _scheduled(scenario, d, [*queue_columns, *_cell_columns(scenario, d)])
    return both[:, :len(queue_columns)], both[:, len(queue_columns):]


def _queue_columns(scenario: Scenario, d: Demand) -> list[str | tuple[str, str]]:
    """The skill of each of the demand's queues."""
    return [scenario.center.config.queues[q].skill for q in d.queues]


def _cell_columns(scenario: Scenario, d: Demand) -> list[str | tuple[str, str]]:
    """The (skill, language) of each of the demand's (queue, language) groups."""
    queues = scenario.center.config.queues
    return [(queues[q].skill, lang) for q, lang in d.cells]


def _scheduled(scenario: Scenario, d: Demand,
               columns: Sequence[str | tuple[str, str]]) -> np.ndarray:
    """Mean agents per interval counted in each column: a skill, or a skill and a language."""
    center = scenario.center
    staffing = scenario.spec.staffing
    edges = d.offset_s + np.arange(len(d.starts) + 1) * d.interval_s
    plain = staffing.model_copy(update={"absence_rate": 0.0})
    timeline = build_timeline(center.config, center.agents, plain, scenario.spec.start,
                              float(edges[-1]), np.random.default_rng(0))
    out = np.zeros((len(d.starts), len(columns)))
    profiles = {a.id: a for a in center.agents}
    for agent, segments in _available(timeline).items():
        cols = [k for k, col in enumerate(columns) if _counts_in(profiles[agent], col)]
        if not cols:
            continue
        for t0, t1 in segments:
            # Only the intervals the segment overlaps (the others would add exact zeros).
            i0 = max(int(np.searchsorted(edges, t0, side="right")) - 1, 0)
            i1 = min(int(np.searchsorted(edges, t1, side="left")), len(d.starts))
            if i1 <= i0:
                continue
            lo = np.clip(edges[i0:i1], t0, t1)
            hi = np.clip(edges[i0 + 1:i1 + 1], t0, t1)
            out[i0:i1, cols] += (hi - lo)[:, None]
    return out / d.interval_s * (1.0 - staffing.absence_rate)


def _counts_in(agent: AgentProfile, column: str | tuple[str, str]) -> bool:
    """Whether ``agent`` has the column's skill (and speaks its language)."""
    if isinstance(column, str):
        return column in agent.skills
    return column[0] in agent.skills and column[1] in agent.languages


def _available(timeline: Sequence[StaffAction]) -> dict[str, list[tuple[float, float]]]:
    """Per agent, the time segments logged in and not paused."""
    since: dict[str, float] = {}
    out: dict[str, list[tuple[float, float]]] = {}
    for act in timeline:
        if act.action in ("login", "ready"):
            since.setdefault(act.agent, act.t)
        elif act.agent in since:
            out.setdefault(act.agent, []).append((since.pop(act.agent), act.t))
    for agent, t0 in since.items():
        out.setdefault(agent, []).append((t0, math.inf))
    return out


def erlang_sl(rate: float, aht: float, agents: int, threshold: float, model: Model,
              patience: float | None) -> float:
    """``sl_offered`` of ``agents`` by Erlang C, or by Erlang A when a patience is known."""
    if rate <= 0:
        return 1.0
    if model == "A" and patience:
        return float(ErlangA(rate, aht, agents, patience).sl_offered(threshold))
    return float(service_level_c(rate, aht, agents, threshold))


def pool_center(agents: int, wrap_s: float, threshold_s: float, target: float) -> LoadedCenter:
    """A one-queue, one-skill center of ``agents`` identical agents (a queue as its own pool)."""
    data = {
        "center": {"name": "pool", "default_language": "en", "default_queue": "q",
                   "service_level": {"threshold_s": threshold_s, "target": target}},
        "sites": {"s": {"name": "Site", "timezone": "UTC"}},
        "languages": {"en": {"name": "English"}},
        "countries": {"XX": {"name": "Anywhere", "language": "en", "home_site": "s"}},
        "skills": {"k": {"name": "Skill"}},
        "queues": {"q": {"skill": "k", "wrap_up_s": wrap_s, "ring_timeout_s": 300,
                         "max_length": 100_000, "max_wait_s": 86_400}},
        "agent_groups": {"g": {"site": "s", "supervisor": "-", "count": max(agents, 1),
                               "skills": {"k": 5}, "level_spread": 0, "languages": ["en"],
                               "first_extension": 1000}},
    }
    return center_from_data(data, "<pool>")


def simulated_sl(rate: float, handling: QueueHandling, wrap_s: float, agents: int,
                 threshold_s: float, target: float, seeds: Sequence[int],
                 calls: int = 2000) -> float:
    """Steady-state ``sl_offered`` of one queue as its own pool, pooled over ``seeds``.

    Each replication runs a warm-up hour, then about ``calls`` calls (4 to 48 hours) at the
    interval's constant rate, with the queue's own talk and patience distributions.
    """
    if agents <= 0:
        return 0.0
    horizon = WARM_UP_S + min(48 * 3600.0, max(4 * 3600.0, calls / rate))
    center = pool_center(agents, wrap_s, threshold_s, target)
    behaviour = Behaviour(answer_delay=DistSpec(dist="constant", value=0.0),
                          rona_probability=0.0, callback_accept_probability=0.0,
                          ivr_time=DistSpec(dist="constant", value=0.0),
                          ivr_abandon_probability=0.0)
    within = offered = 0
    for seed in seeds:
        # The same seeds for every agent count: common random numbers make the search steady.
        rng = np.random.default_rng(seed)
        n = int(rng.poisson(rate * horizon))
        t = np.sort(rng.uniform(0.0, horizon, n))
        talk = handling.talk.sample(rng, n)
        patience = (handling.patience.sample(rng, n) if handling.patience is not None
                    else np.full(n, math.inf))
        arrivals = [Arrival(float(t[i]), "q", "en", "XX", None, 0, float(talk[i]),
                            float(patience[i])) for i in range(n)]
        timeline = [StaffAction(0.0, "login", a.id) for a in center.agents[:agents]]
        result = Simulation(center, arrivals, timeline, behaviour, START, horizon, 3600.0,
                            seed).run()
        c = result.calls
        assert c is not None  # Simulation keeps the call log unless told not to
        counted = ~np.isnan(c.queued_s) & (c.queued_s >= WARM_UP_S)
        offered += int(counted.sum())
        within += int((counted & (c.outcome == ANSWERED) & (c.wait_s <= threshold_s)).sum())
    return within / offered if offered else 1.0


def confirm(rate: float, handling: QueueHandling, wrap_s: float, seed_agents: int,
            threshold_s: float, target: float, seeds: Sequence[int], max_steps: int = 50
            ) -> tuple[int, float]:
    """Smallest agents whose simulated SL meets ``target``, searching from the Erlang seed."""
    def sl(n: int) -> float:
        return simulated_sl(rate, handling, wrap_s, n, threshold_s, target, seeds)

    n = max(1, seed_agents)
    current = sl(n)
    if current >= target:
        while n > 1:
            lower = sl(n - 1)
            if lower < target:
                break
            n, current = n - 1, lower
        return n, current
    for _ in range(max_steps):
        n += 1
        current = sl(n)
        if current >= target:
            break
    return n, current


def plan(scenario: Scenario, days: float | None = None, model: Model = "A",
         confirm_mode: Literal["none", "busiest", "all"] = "none", busiest: int = 3,
         replications: int = 3, seed: int = 1, executor: Executor | None = None,
         max_replications: int = 30, half_width: float = 0.02,
         refine_rounds: int = REFINE_ROUNDS, min_agents: int = 1,
         on_batch: Callable[[int], None] | None = None) -> StaffPlan:
    """The staffing table: Erlang per interval, queue and language, scheduled staffing, and
    (``confirm_mode``) the agents the center simulation confirms (:mod:`sim.confirm`), refined
    interval by interval for up to ``refine_rounds`` rounds (:mod:`sim.refine`).

    The search judges each group on its ``busiest`` intervals and its queue's
    (``confirm_mode="busiest"``) or on every interval with calls (``"all"``); it runs
    ``replications`` to ``max_replications`` per candidate on ``executor`` (default: this
    process). The refinement judges every interval where a group expects enough calls. A group
    gets at least ``min_agents`` wherever it expects a call (:class:`Minimum`). ``on_batch``
    is told the replications of each batch the confirmation runs, as it ends.
    """
    d = demand(scenario, days)
    have, have_cells = _scheduled_both(scenario, d)  # the roster's timeline is built once
    cfg = scenario.center.config
    rows: list[StaffRow] = []
    for i, start in enumerate(d.starts):
        for k, q in enumerate(d.queues):
            rows.append(_row(start.isoformat(), q, ALL_LANGUAGES, float(d.calls[i, k]),
                             d.aht_s[q], d.patience_s[q], float(have[i, k]), model, scenario,
                             d.interval_s))
    cell_rows: list[StaffRow] = []
    for i, start in enumerate(d.starts):
        for k, (q, lang) in enumerate(d.cells):
            row = _row(start.isoformat(), q, lang, float(d.cell_calls[i, k]),
                       d.cell_aht_s[(q, lang)], d.patience_s[q], float(have_cells[i, k]),
                       model, scenario, d.interval_s)
            floor = with_minimum(row.erlang_agents, row.calls, min_agents)
            if floor != row.erlang_agents:
                row = replace(row, planned_agents=floor, source="minimum")
            cell_rows.append(row)
    n, m = len(d.starts), len(d.cells)
    floored = np.array([r.required_agents for r in cell_rows], dtype=np.int64).reshape(n, m)
    minimum = _minimum(d, cell_rows, rows, floored, min_agents)
    if confirm_mode == "none" or not d.cells:
        return StaffPlan(scenario.path, model, rows, d.interval_s, cell_rows, minimum=minimum)
    from sim.confirm import Groups, Searcher, local, search

    shown_q = np.zeros((n, len(d.queues)), dtype=bool)
    for k in range(len(d.queues)):
        order = np.argsort(-d.calls[:, k], kind="stable")
        chosen = order if confirm_mode == "all" else order[:busiest]
        shown_q[[int(i) for i in chosen if d.calls[i, k] > 0], k] = True
    judged = np.zeros((n, m), dtype=bool)
    pooled = np.zeros(m, dtype=bool)
    enough = d.cell_calls >= MIN_JUDGED_CALLS
    for k, (q, _lang) in enumerate(d.cells):
        if not enough[:, k].any():  # a small group: judged on all its calls together
            judged[:, k] = d.cell_calls[:, k] > 0
            pooled[k] = True
        elif confirm_mode == "all":
            judged[:, k] = enough[:, k]
        else:
            own = np.argsort(-d.cell_calls[:, k], kind="stable")[:busiest]
            judged[own, k] = True
            judged[:, k] |= shown_q[:, d.queues.index(q)]
            judged[:, k] &= enough[:, k]
    queues = tuple(sorted(cfg.queues))
    searcher = Searcher(scenario, days, Groups(d.cells, d.offset_s, d.interval_s, n),
                        np.array([cfg.sl_for(q).target for q, _ in d.cells]),
                        np.array([cfg.sl_for(q).target for q in queues]), judged, pooled,
                        local(executor), seed,
                        max(2, replications), max(replications, max_replications), half_width,
                        on_batch=on_batch)
    found = search(searcher, floored, min_agents)
    counts, final, refinement = found.counts, found.final, None
    searched: np.ndarray = np.asarray(judged.any(axis=0), dtype=bool)
    factor_cpu_s = searcher.cpu_s
    if refine_rounds > 0:
        refinement = _refine(searcher, d, scenario, found.counts, floored, min_agents,
                             refine_rounds)
        counts, final = refinement.counts, refinement.final
        judged = searcher.judged
    cells_ev, queue_ev = final.cells, final.queues
    shown_cells = judged.copy()
    if confirm_mode == "busiest":  # a small group's row is shown at its busiest intervals
        for g in np.flatnonzero(pooled).tolist():
            top = np.argsort(-d.cell_calls[:, g], kind="stable")[:busiest]
            shown_cells[:, g] = False
            shown_cells[top, g] = d.cell_calls[top, g] > 0
    # Each queue's (queue, language) groups, the same in every interval.
    groups_of = {q: [c for c, (cq, _) in enumerate(d.cells) if cq == q] for q in d.queues}
    for i in range(n):
        for k in range(m):
            at = i * m + k
            if searched[k]:
                cell_rows[at] = replace(cell_rows[at], planned_agents=int(counts[i, k]),
                                        source="refined" if counts[i, k] != found.counts[i, k]
                                        else "factor")
            if shown_cells[i, k]:
                cell_rows[at] = _confirmed(cell_rows[at], int(counts[i, k]),
                                           cells_ev.mean[i, k], cells_ev.low[i, k],
                                           cells_ev.high[i, k])
        for k, q in enumerate(d.queues):
            if shown_q[i, k]:
                at = i * len(d.queues) + k
                col = queues.index(q)
                agents = int(counts[i, groups_of[q]].sum())
                moved = bool((counts[i, groups_of[q]] != found.counts[i, groups_of[q]]).any())
                rows[at] = replace(_confirmed(rows[at], agents, queue_ev.mean[i, col],
                                              queue_ev.low[i, col], queue_ev.high[i, col]),
                                   source="refined" if moved else "factor")
    # The CIs the verdicts rest on: per judged interval, or pooled for a small group.
    pooled_ev = final.pooled
    half = np.concatenate([((cells_ev.high - cells_ev.low) / 2)[judged & ~pooled],
                           ((pooled_ev.high - pooled_ev.low) / 2)[pooled]])
    half = half[np.isfinite(half)]
    group_sl = {c: (float(pooled_ev.mean[k]), float(pooled_ev.low[k]),
                    float(pooled_ev.high[k])) for k, c in enumerate(d.cells)}
    summary = ConfirmSummary(found.scale, group_sl,
                             found.candidates + (refinement.candidates if refinement else 0),
                             found.replications_run
                             + (refinement.replications_run if refinement else 0),
                             final.cells.replications,
                             found.wall_s + (refinement.wall_s if refinement else 0.0),
                             float(np.median(half)) if half.size else math.nan,
                             float(half.max()) if half.size else math.nan, refinement,
                             factor_cpu_s + (refinement.cpu_s if refinement else 0.0))
    return StaffPlan(scenario.path, model, rows, d.interval_s, cell_rows, summary, minimum)


def with_minimum(erlang: int, calls: float, minimum: int) -> int:
    """A group-interval's count under the groups' minimum: at least ``minimum`` agents where it
    expects a call; with a minimum of 0, none where it expects fewer than
    :data:`MIN_JUDGED_CALLS` calls (its callers wait for the routing's expansion steps)."""
    if calls <= 0:
        return 0
    if minimum == 0 and calls < MIN_JUDGED_CALLS:
        return 0
    return max(erlang, minimum)


def _minimum(d: Demand, cell_rows: Sequence[StaffRow], rows: Sequence[StaffRow],
             floored: np.ndarray, minimum: int) -> Minimum:
    """What the minimum adds over none, against the queues' own requirement."""
    erlang = np.array([r.erlang_agents for r in cell_rows], dtype=np.int64).reshape(
        floored.shape)
    bare = np.where(d.cell_calls >= MIN_JUDGED_CALLS, erlang, 0)
    added = floored - bare
    load = d.cell_load
    return Minimum(minimum, int(added.sum()), int((added > 0).sum()),
                   float(load[added > 0].sum()), int(floored.sum()),
                   int(sum(r.erlang_agents for r in rows)))


def _refine(searcher: Searcher, d: Demand, scenario: Scenario, seed: np.ndarray,
            floored: np.ndarray, minimum: int, rounds: int) -> Refinement:
    """The per-interval refinement of the factor search's ``seed``, judged on every interval
    where a group (not judged as a whole) expects :data:`MIN_JUDGED_CALLS` calls or more."""
    from sim.refine import Cells, refine

    cfg = scenario.center.config
    judged = np.where(searcher.pooled[None, :], searcher.judged,
                      d.cell_calls >= MIN_JUDGED_CALLS)
    searcher.rejudge(judged, searcher.pooled)
    queues = sorted({q for q, _ in d.cells})
    cells = Cells(floored, d.cell_load, d.cell_aht,
                  np.array([float(cfg.sl_for(q).threshold_s) for q, _ in d.cells]),
                  np.array([queues.index(q) for q, _ in d.cells]), minimum)
    return refine(searcher, seed, cells, rounds)


def _row(start: str, queue: str, language: str, calls: float, aht: float,
         patience: float | None, sched: float, model: Model, scenario: Scenario,
         interval_s: float) -> StaffRow:
    """One row of the table: Erlang's smallest staffing and the scheduled agents' SL."""
    sl_def = scenario.center.config.sl_for(queue)
    rate = calls / interval_s
    use: Model = model if patience else "C"
    need = _erlang_need(rate, aht, sl_def.threshold_s, sl_def.target, use, patience)
    return StaffRow(start, queue, calls, aht, need,
                    _erlang_sl(rate, aht, need, sl_def.threshold_s, use, patience), sched,
                    _erlang_sl(rate, aht, int(sched), sl_def.threshold_s, use, patience)
                    if sched >= 1 or rate == 0 else 0.0, language=language)


# A forecast repeats its week (and a roster its shifts), so the intervals of a long run ask
# Erlang the same questions again and again: remember the answers (pure functions of floats).
@lru_cache(maxsize=1 << 16)
def _erlang_need(rate: float, aht: float, threshold_s: float, target: float, model: Model,
                 patience: float | None) -> int:
    """Erlang's smallest staffing meeting the target (0 without calls)."""
    if rate <= 0:
        return 0
    return agents_for_service_level(rate, aht, threshold_s, target, model, patience)


_erlang_sl = lru_cache(maxsize=1 << 16)(erlang_sl)


def _confirmed(row: StaffRow, agents: int, sl: float, low: float, high: float) -> StaffRow:
    """``row`` with the confirmed agents and their simulated SL (NaN: no calls simulated)."""
    def value(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    return replace(row, confirmed_agents=agents, confirmed_sl=value(sl),
                   confirmed_sl_low=value(low), confirmed_sl_high=value(high))


#: Columns of ``staff.csv`` and ``staff_language.csv``.
CSV_COLUMNS = ("interval_start", "queue", "language", "calls", "aht_s", "erlang_agents",
               "erlang_sl", "scheduled_agents", "scheduled_sl", "confirmed_agents",
               "confirmed_sl", "confirmed_sl_low", "confirmed_sl_high", "required_agents",
               "source", "gap")


def write_csv(path: str | Path, staff: StaffPlan, by_language: bool = False) -> None:
    """One CSV row per interval and queue, or (``by_language``) per interval, queue and
    language; ``gap`` is required minus scheduled agents."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for row in staff.language_rows if by_language else staff.rows:
            w.writerow(["" if (v := getattr(row, n)) is None else
                        (f"{v:.4f}" if isinstance(v, float) else v) for n in CSV_COLUMNS])


def print_languages(staff: StaffPlan, console: Console) -> None:
    """Per queue and language: peak demand, required and scheduled agents, the shortfall."""
    from rich.table import Table

    from sim.confirm import ci_text

    if not staff.language_rows:
        return
    hours = staff.interval_s / 3600
    scale = staff.confirmation.scale if staff.confirmation is not None else {}
    group_sl = staff.confirmation.group_sl if staff.confirmation is not None else {}
    table = Table("queue", "language", "calls", "peak required", "peak scheduled",
                  "agent-h required", "agent-h scheduled", "intervals short", "factor",
                  "simulated SL (95% CI)",
                  title=f"Erlang {staff.model} staffing per queue and language "
                        "(required: confirmed where simulated, else Erlang)")
    by_group: dict[tuple[str, str], list[StaffRow]] = {}
    for r in staff.language_rows:  # one pass: a long run has a row per interval and group
        by_group.setdefault((r.queue, r.language), []).append(r)
    for (q, lang), rows in sorted(by_group.items()):
        peak = max(rows, key=lambda r: r.calls)
        short = sum(1 for r in rows if r.gap > 0)
        factor = scale.get((q, lang))
        table.add_row(q, lang, f"{sum(r.calls for r in rows):.1f}", str(peak.required_agents),
                      f"{peak.scheduled_agents:.1f}",
                      f"{sum(r.required_agents for r in rows) * hours:.0f}",
                      f"{sum(r.scheduled_agents for r in rows) * hours:.0f}", str(short),
                      "-" if factor is None else f"{factor:.2f}",
                      ci_text(*group_sl.get((q, lang), (math.nan,) * 3)))
    console.print(table)
    if staff.minimum is not None:
        console.print(minimum_text(staff.minimum, hours), markup=False, highlight=False)


def minimum_text(low: Minimum, hours: float) -> str:
    """What the groups' minimum adds, and why the languages need more than their queues."""
    without = low.language_total - low.added
    if low.agents == 0:
        head = (f"minimum 0 (--min-agents): no agents where a group expects fewer than "
                f"{MIN_JUDGED_CALLS:g} calls; their callers wait for the routing's expansion")
    else:
        head = (f"minimum {low.agents} agent(s) per group wherever it expects a call "
                f"(--min-agents): {low.added} agent-intervals ({low.added * hours:.0f} agent-h) "
                f"in {low.cells} group-intervals with few calls, whose calls keep only "
                f"{low.load * hours:.1f} agent-h busy (with 0 they would wait for the "
                "routing's expansion)")
    return (f"{head}. The languages, each as its own pool, need "
            f"{low.language_total * hours:.0f} agent-h by Erlang with the minimum "
            f"({without * hours:.0f} without it); the queues, each as one pool, "
            f"{low.queue_total * hours:.0f}.")


#: Groups shown in the report's gap heatmap expect at least this many calls over the run.
GAP_MIN_CALLS = 10.0


def gap_matrix(scenario: Scenario, model: Model = "A", min_agents: int = 1
               ) -> tuple[list[datetime], float, list[str], np.ndarray] | None:
    """Interval starts, the interval's length, ``queue/language`` labels and Erlang-required
    (with the groups' minimum) minus scheduled agents, a row per group with at least
    :data:`GAP_MIN_CALLS` calls: the language rows of :func:`plan` without building them (a
    long run has a row per interval and group). None when no group has that many calls."""
    d = demand(scenario)
    shown = [k for k, _ in sorted(enumerate(d.cells), key=lambda kc: kc[1])
             if d.cell_calls[:, k].sum() >= GAP_MIN_CALLS]
    if not shown or not d.starts:
        return None
    have = scheduled_cells(scenario, d)
    cfg = scenario.center.config
    gap = np.empty((len(shown), len(d.starts)))
    for row, k in enumerate(shown):
        q = d.cells[k][0]
        sl_def = cfg.sl_for(q)
        patience = d.patience_s[q]
        use: Model = model if patience else "C"
        aht = d.cell_aht_s[d.cells[k]]
        for i in range(len(d.starts)):
            calls = float(d.cell_calls[i, k])
            need = _erlang_need(calls / d.interval_s, aht, sl_def.threshold_s, sl_def.target,
                                use, patience)
            gap[row, i] = with_minimum(need, calls, min_agents) - float(have[i, k])
    return (list(d.starts), d.interval_s, [f"{d.cells[k][0]}/{d.cells[k][1]}" for k in shown],
            gap)


def gap_plot(scenario: Scenario, model: Model = "A") -> Plot | None:
    """The report's heatmap of Erlang-required minus scheduled agents per interval and
    (queue, language) group with at least :data:`GAP_MIN_CALLS` calls, in the center's zone."""
    from zoneinfo import ZoneInfo

    from sim.plots import gap_heatmap

    found = gap_matrix(scenario, model)
    if found is None:
        return None
    starts, interval_s, labels, gap = found
    zone = next(iter(scenario.center.config.sites.values())).timezone
    return gap_heatmap(starts, interval_s, labels, gap, ZoneInfo(zone), zone)
