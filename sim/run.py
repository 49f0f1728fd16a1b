"""Replications: independent seeds, common random numbers across scenarios, processes in parallel.

Replication ``i`` of base seed ``s`` draws its traffic, its staffing absences and its caller and
agent behaviour from separate children of ``SeedSequence(s).spawn(n)[i]``. Two scenarios run
with the same base seed therefore see the same callers (common random numbers), which makes
their difference far less noisy than their separate confidence intervals suggest.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from acd import shipped
from sim.engine import DRAIN_S, Simulation
from sim.qlreplay import QueueLogOptions, load_plan, replay_behaviour
from sim.records import RunResult
from sim.scenario import Scenario, load_scenario
from sim.staffing import build_timeline
from sim.traffic import Arrival, load_call_log, load_traffic


@dataclass(frozen=True)
class RunSpec:
    """What to simulate: a scenario file with top-level overrides, and an optional replay log.

    With ``queue_log_path`` both the calls and the staffing come from an Asterisk queue_log
    (names mapped by ``queue_log_options``); the scenario's shifts are not used.
    """

    scenario_path: str
    overrides: dict[str, Any]
    replay_path: str | None = None
    queue_log_path: str | None = None
    queue_log_options: QueueLogOptions | None = None


def replication_seeds(base_seed: int, n: int) -> list[np.random.SeedSequence]:
    """The seed sequence of each replication."""
    return list(np.random.SeedSequence(base_seed).spawn(n))


def arrivals_for(scenario: Scenario, replay_path: str | None, rng: np.random.Generator
                 ) -> tuple[list[Arrival], datetime, float]:
    """The replication's arrivals, start and horizon: forecast traffic, or a replayed call log.

    A replayed log with clock times starts the run at its first call and lasts until its last.
    """
    spec = scenario.spec
    cfg = scenario.center.config
    known = (cfg.queues, cfg.languages, cfg.countries)
    if replay_path is not None:
        log = load_call_log(replay_path, *known, default_language=cfg.center.default_language)
        start = log.origin or spec.start
        calls = list(log.arrivals(start, None))
        horizon = max((c.t for c in calls), default=0.0) + 1.0
        return calls, start, horizon
    traffic = load_traffic(scenario.traffic_path, *known)
    calls = list(traffic.arrivals(spec.start, spec.days, rng, spec.volume_scale))
    return calls, spec.start, spec.days * 86400.0


def run_one(spec: RunSpec, seed_seq: np.random.SeedSequence,
            progress: Callable[[float], None] | None = None) -> RunResult:
    """Run one replication."""
    scenario = load_scenario(spec.scenario_path, **spec.overrides)
    traffic_ss, staffing_ss, engine_ss = seed_seq.spawn(3)
    s = scenario.spec
    if spec.queue_log_path is not None:
        plan = load_plan(spec.queue_log_path, scenario.center.config, scenario.center.agents,
                         spec.queue_log_options)
        sim = Simulation(scenario.center, plan.arrivals, list(plan.timeline),
                         replay_behaviour(s.behaviour), plan.start, plan.horizon_s,
                         s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]))
        return sim.run(progress)
    arrivals, start, horizon = arrivals_for(scenario, spec.replay_path,
                                            np.random.default_rng(traffic_ss))
    timeline = build_timeline(scenario.center.config, scenario.center.agents, s.staffing,
                              start, horizon + DRAIN_S, np.random.default_rng(staffing_ss))
    sim = Simulation(scenario.center, arrivals, timeline, s.behaviour, start, horizon,
                     s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]))
    return sim.run(progress)


_progress_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _progress_queue
    _progress_queue = queue


def _worker(args: tuple[RunSpec, np.random.SeedSequence, int]) -> RunResult:
    spec, seed_seq, index = args
    queue = _progress_queue

    def progress(fraction: float) -> None:
        if queue is not None:
            queue.put((index, fraction))

    return run_one(spec, seed_seq, progress)


def run_replications(spec: RunSpec, replications: int, base_seed: int, jobs: int | None = None,
                     on_progress: Callable[[int, float], None] | None = None
                     ) -> list[RunResult]:
    """Run ``replications`` replications, in ``jobs`` processes; results in replication order."""
    seeds = replication_seeds(base_seed, replications)
    jobs = max(1, min(jobs or os.cpu_count() or 1, replications))
    if jobs == 1:
        results = []
        for i, ss in enumerate(seeds):
            def progress(fraction: float, i: int = i) -> None:
                if on_progress is not None:
                    on_progress(i, fraction)
            results.append(run_one(spec, ss, progress))
        return results
    ctx = mp.get_context("spawn")
    queue = ctx.Manager().Queue() if on_progress is not None else None
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(queue,)) as pool:
        pending = pool.map_async(_worker, [(spec, ss, i) for i, ss in enumerate(seeds)])
        while not pending.ready():
            pending.wait(0.2)
            while queue is not None and not queue.empty():
                i, fraction = queue.get()
                if on_progress is not None:
                    on_progress(i, fraction)
        results = pending.get()
    return list(results)


@dataclass
class PlainProgress:
    """Progress as plain lines for logs (cron, CI): one per 10% done, or per minute if slower.

    Call it with the work done so far, in the units of ``total`` (replications).
    """

    what: str
    total: float
    stream: TextIO
    every_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _start: float = field(init=False)
    _last_s: float = field(init=False)
    _last_step: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._start = self._last_s = self.clock()

    def __call__(self, done: float) -> None:
        now = self.clock()
        step = int(10 * done / self.total) if self.total > 0 else 10
        if step <= self._last_step and now - self._last_s < self.every_s:
            return
        self._last_step, self._last_s = max(step, self._last_step), now
        print(f"{self.what}: {100 * done / self.total:3.0f}% ({done:.1f} of {self.total:g}), "
              f"{now - self._start:.0f} s elapsed", file=self.stream, flush=True)


def default_scenario() -> Path:
    """The reference scenario shipped with the project."""
    return shipped.reference_scenario()
