"""Staffing per interval and queue: seeded by Erlang C or A, confirmed by simulation.

Demand comes from the scenario's forecast (expected calls per interval and queue, before any
over-dispersion), AHT is mean talk + wrap-up per queue, patience the traffic file's mean. Each
queue is sized as its own pool; multi-skill agents are counted in every queue they serve, so
the scheduled column over-counts shared agents and pooling is only visible in ``acd sim run``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from acd.config.load import LoadedCenter, center_from_data
from sim.engine import Simulation
from sim.erlang import ErlangA, agents_for_service_level, service_level_c
from sim.executor import Executor, LocalExecutor
from sim.mmc import START
from sim.records import ANSWERED
from sim.scenario import Behaviour, DistSpec, Scenario
from sim.staffing import StaffAction, build_timeline
from sim.traffic import Arrival, QueueHandling, load_traffic

Model = Literal["A", "C"]
POOLING_NOTE = ("Each queue is sized as its own pool; multi-skill agents count in every queue "
                "they serve. Multi-skill pooling is only visible in `acd sim run`.")
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


@dataclass(frozen=True)
class StaffRow:
    """One interval of one queue: demand, Erlang staffing, scheduled staffing, confirmation."""

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


@dataclass(frozen=True)
class StaffPlan:
    """The staffing table and how it was made."""

    scenario: str
    model: Model
    rows: list[StaffRow]
    interval_s: float


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
    for j, s in enumerate(forecast.streams):
        calls[:, queues.index(s.queue)] += forecast.expected[:, j]
        h = forecast.handling[s.queue]
        talk = h.talk_by_language.get(s.language, h.talk).mean
        share = float(forecast.expected[:, j].sum())
        talk_mean[s.queue] = talk_mean.get(s.queue, 0.0) + share * talk
        weight[s.queue] = weight.get(s.queue, 0.0) + share
    keep = 1.0 if spec.behaviour.ivr_flow else 1.0 - spec.behaviour.ivr_abandon_probability
    calls *= spec.volume_scale * keep
    wrap = {q: (w.mean if (w := forecast.handling[q].wrap) is not None
                else float(cfg.queues[q].wrap_up_s)) for q in queues}
    aht = {q: talk_mean[q] / max(weight[q], 1e-12) + wrap[q] for q in queues}
    patience = {q: (p.mean if (p := forecast.handling[q].patience) is not None else None)
                for q in queues}
    starts = [spec.start + timedelta(seconds=forecast.offset_s + i * forecast.interval_s)
              for i in range(calls.shape[0])]
    return Demand(starts, forecast.interval_s, queues, calls, aht, wrap, patience,
                  dict(forecast.handling), forecast.offset_s)


def scheduled(scenario: Scenario, d: Demand) -> np.ndarray:
    """Mean agents per interval and queue with the queue's skill, logged in and not paused.

    Absence is applied as its expected share rather than drawn.
    """
    center = scenario.center
    staffing = scenario.spec.staffing
    edges = d.offset_s + np.arange(len(d.starts) + 1) * d.interval_s
    plain = staffing.model_copy(update={"absence_rate": 0.0})
    timeline = build_timeline(center.config, center.agents, plain, scenario.spec.start,
                              float(edges[-1]), np.random.default_rng(0))
    skill_of = [center.config.queues[q].skill for q in d.queues]
    out = np.zeros((len(d.starts), len(d.queues)))
    profiles = {a.id: a for a in center.agents}
    for agent, segments in _available(timeline).items():
        cols = [k for k, skill in enumerate(skill_of) if skill in profiles[agent].skills]
        if not cols:
            continue
        for t0, t1 in segments:
            lo = np.clip(edges[:-1], t0, t1)
            hi = np.clip(edges[1:], t0, t1)
            out[:, cols] += (hi - lo)[:, None]
    return out / d.interval_s * (1.0 - staffing.absence_rate)


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


#: The arguments of one :func:`confirm` search.
ConfirmArgs = tuple[float, QueueHandling, float, int, float, float, Sequence[int]]


def plan(scenario: Scenario, days: float | None = None, model: Model = "A",
         confirm_mode: Literal["none", "busiest", "all"] = "none", busiest: int = 3,
         replications: int = 3, seed: int = 1, executor: Executor | None = None
         ) -> StaffPlan:
    """The staffing table: Erlang per interval and queue, scheduled staffing, confirmations.

    ``busiest`` intervals per queue are confirmed by simulation (``confirm_mode="busiest"``),
    or every interval with calls (``"all"``), on ``executor`` (default: in this process).
    """
    d = demand(scenario, days)
    have = scheduled(scenario, d)
    cfg = scenario.center.config
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(replications)]
    to_confirm: set[tuple[int, int]] = set()
    if confirm_mode != "none":
        for k in range(len(d.queues)):
            order = np.argsort(-d.calls[:, k], kind="stable")
            chosen = order if confirm_mode == "all" else order[:busiest]
            to_confirm |= {(int(i), k) for i in chosen if d.calls[i, k] > 0}
    rows: list[StaffRow] = []
    searches: list[tuple[int, ConfirmArgs]] = []
    for i, start in enumerate(d.starts):
        for k, q in enumerate(d.queues):
            sl_def = cfg.sl_for(q)
            rate = d.calls[i, k] / d.interval_s
            aht, patience = d.aht_s[q], d.patience_s[q]
            use = model if patience else "C"
            need = agents_for_service_level(rate, aht, sl_def.threshold_s, sl_def.target, use,
                                            patience) if rate > 0 else 0
            sched = float(have[i, k])
            row = StaffRow(start.isoformat(), q, float(d.calls[i, k]), aht, need,
                           erlang_sl(rate, aht, need, sl_def.threshold_s, use, patience),
                           sched, erlang_sl(rate, aht, int(sched), sl_def.threshold_s, use,
                                            patience) if sched >= 1 or rate == 0 else 0.0)
            if (i, k) in to_confirm:
                searches.append((len(rows), (rate, d.handling[q], d.wrap_s[q], need,
                                             sl_def.threshold_s, sl_def.target, seeds)))
            rows.append(row)
    # Each confirmation is a search of its own: they run side by side on the executor.
    runner = executor if executor is not None else LocalExecutor(1)
    found = runner.map(_confirm_task, [args for _, args in searches],
                       [f"confirmation of {rows[at].queue} at {rows[at].interval_start} "
                        f"(seed {seed})" for at, _ in searches])
    for (at, _), (n, sl) in zip(searches, found, strict=True):
        rows[at] = StaffRow(**{**rows[at].__dict__, "confirmed_agents": n, "confirmed_sl": sl})
    return StaffPlan(scenario.path, model, rows, d.interval_s)


def _confirm_task(args: ConfirmArgs, progress: Callable[[float], None]) -> tuple[int, float]:
    """:func:`confirm` as an executor task (module level, so that it pickles by name)."""
    return confirm(*args)


def write_csv(path: str | Path, staff: StaffPlan) -> None:
    """One CSV row per interval and queue."""
    names = [f.name for f in fields(StaffRow)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in staff.rows:
            w.writerow(["" if (v := getattr(row, n)) is None else
                        (f"{v:.4f}" if isinstance(v, float) else v) for n in names])
