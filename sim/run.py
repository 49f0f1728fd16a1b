"""Replications: independent seeds, common random numbers across scenarios, processes in parallel.

Replication ``i`` of base seed ``s`` draws its traffic, its staffing absences and its caller and
agent behaviour from separate children of ``SeedSequence(s).spawn(n)[i]``. Two scenarios run
with the same base seed therefore see the same callers (common random numbers), which makes
their difference far less noisy than their separate confidence intervals suggest.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from acd import shipped
from acd.config.schema import CenterConfig
from sim.engine import DRAIN_S, Simulation
from sim.executor import Executor, LocalExecutor
from sim.qlreplay import QueueLogOptions, load_plan, replay_behaviour
from sim.records import RunResult
from sim.scenario import Scenario, deep_merge, load_scenario
from sim.staffing import build_timeline
from sim.traffic import Arrival, ArrivalBatch, load_call_log, load_traffic


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
    #: Multiplies every agent group's head count (``1.05`` = 5% more agents).
    agent_scale: float = 1.0
    #: Return each replication's call log (``RunResult.calls``); without it a run keeps only
    #: per-interval tallies and waits, so its memory grows with intervals, not calls.
    keep_calls: bool = True
    #: Write each replication's call rows to this CSV file (see :func:`calls_csv_path`).
    calls_csv: str | None = None


def calls_csv_path(path: str, index: int) -> str:
    """Where replication ``index`` (0-based) writes its call rows: ``path`` for the first,
    ``<stem>-r<n>.<suffix>`` beside it for replication n >= 2."""
    if index == 0:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-r{index + 1}{p.suffix}"))


def scaled_agent_groups(config: CenterConfig, factor: float) -> dict[str, dict[str, Any]]:
    """Center overrides with every agent group's ``count`` times ``factor`` (rounded, >= 1).

    A group's language mix is scaled by largest remainders so that it still adds up; groups whose
    extensions would then overlap the next group's are moved up past it.
    """
    out: dict[str, dict[str, Any]] = {}
    next_free = 0
    for name, group in sorted(config.agent_groups.items(), key=lambda kv: kv[1].first_extension):
        count = max(1, round(group.count * factor))
        change: dict[str, Any] = {"count": count}
        if group.language_mix:
            shares = [b.count * count / group.count for b in group.language_mix]
            sizes = [max(1, math.floor(x)) for x in shares]
            by_remainder = sorted(range(len(sizes)), key=lambda i: sizes[i] - shares[i])
            for i in itertools.islice(itertools.cycle(by_remainder), count - sum(sizes)):
                sizes[i] += 1
            while sum(sizes) > count:  # only when the ">= 1" rule added agents
                sizes[sizes.index(max(sizes))] -= 1
            change["language_mix"] = [{"count": n, "languages": list(b.languages)}
                                      for n, b in zip(sizes, group.language_mix, strict=True)]
        first = max(group.first_extension, next_free)
        if first != group.first_extension:
            change["first_extension"] = first
        next_free = first + count
        out[name] = change
    return out


def load_run_scenario(spec: RunSpec) -> Scenario:
    """The scenario of a run: the file with its overrides, agent groups scaled if asked."""
    scenario = load_scenario(spec.scenario_path, **spec.overrides)
    if spec.agent_scale == 1.0:
        return scenario
    groups = scaled_agent_groups(scenario.center.config, spec.agent_scale)
    merged = deep_merge(scenario.spec.center_overrides, {"agent_groups": groups})
    return load_scenario(spec.scenario_path, **{**spec.overrides, "center_overrides": merged})


def replication_seeds(base_seed: int, n: int) -> list[np.random.SeedSequence]:
    """The seed sequence of each replication."""
    return list(np.random.SeedSequence(base_seed).spawn(n))


def arrivals_for(scenario: Scenario, replay_path: str | None, rng: np.random.Generator
                 ) -> tuple[list[Arrival] | ArrivalBatch, datetime, float]:
    """The replication's arrivals, start and horizon: forecast traffic (as columns, which the
    simulation turns into callers a block at a time), or a replayed call log.

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
    # The draws of traffic.arrivals(), kept as columns: a year is 1.8 million callers.
    batch = traffic.forecast(spec.start, spec.days).generate(rng, spec.volume_scale)
    return batch, spec.start, spec.days * 86400.0


def run_one(spec: RunSpec, seed_seq: np.random.SeedSequence,
            progress: Callable[[float], None] | None = None) -> RunResult:
    """Run one replication."""
    scenario = load_run_scenario(spec)
    # spawn() counts its children: a fresh copy gives the same three whatever ran before, so
    # one seed sequence object can serve every point of a sweep in one process.
    fresh = np.random.SeedSequence(seed_seq.entropy, spawn_key=seed_seq.spawn_key,
                                   pool_size=seed_seq.pool_size)
    traffic_ss, staffing_ss, engine_ss = fresh.spawn(3)
    s = scenario.spec
    index = seed_seq.spawn_key[-1] if seed_seq.spawn_key else 0
    csv_path = None if spec.calls_csv is None else calls_csv_path(spec.calls_csv, index)
    if spec.queue_log_path is not None:
        plan = load_plan(spec.queue_log_path, scenario.center.config, scenario.center.agents,
                         spec.queue_log_options)
        sim = Simulation(scenario.center, plan.arrivals, list(plan.timeline),
                         replay_behaviour(s.behaviour), plan.start, plan.horizon_s,
                         s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]),
                         spec.keep_calls, csv_path)
        return sim.run(progress)
    arrivals, start, horizon = arrivals_for(scenario, spec.replay_path,
                                            np.random.default_rng(traffic_ss))
    timeline = build_timeline(scenario.center.config, scenario.center.agents, s.staffing,
                              start, horizon + DRAIN_S, np.random.default_rng(staffing_ss))
    sim = Simulation(scenario.center, arrivals, timeline, s.behaviour, start, horizon,
                     s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]),
                     spec.keep_calls, csv_path)
    return sim.run(progress)


def _replication(task: tuple[RunSpec, np.random.SeedSequence],
                 progress: Callable[[float], None]) -> RunResult:
    """One replication as an executor task (module level, so that it pickles by name)."""
    spec, seed_seq = task
    return run_one(spec, seed_seq, progress)


def replication_name(index: int, base_seed: int) -> str:
    """How a failed replication is named: ``--seed base_seed -r index+1`` reruns it (last)."""
    return f"replication {index} (0-based) of seed {base_seed}"


def portable(spec: RunSpec) -> RunSpec:
    """``spec`` with absolute file paths, valid on a worker whatever its working directory."""
    def absolute(path: str | None) -> str | None:
        return None if path is None else os.path.abspath(path)

    return replace(spec, scenario_path=os.path.abspath(spec.scenario_path),
                   replay_path=absolute(spec.replay_path),
                   queue_log_path=absolute(spec.queue_log_path),
                   calls_csv=absolute(spec.calls_csv))


def run_replications(spec: RunSpec, replications: int, base_seed: int, jobs: int | None = None,
                     on_progress: Callable[[int, float], None] | None = None,
                     executor: Executor | None = None) -> list[RunResult]:
    """Run ``replications`` replications, in ``jobs`` local processes or on ``executor``;
    results in replication order, the same whichever ran them."""
    return run_specs([spec], replications, base_seed, jobs, on_progress, executor)[0]


def run_specs(specs: Sequence[RunSpec], replications: int, base_seed: int,
              jobs: int | None = None, on_progress: Callable[[int, float], None] | None = None,
              executor: Executor | None = None, labels: Sequence[str] | None = None
              ) -> list[list[RunResult]]:
    """The replications of several specs, all submitted at once, on the same seeds (common
    random numbers); per spec, its results in replication order. ``on_progress`` gets the
    index of a task in spec-major order; ``labels`` name the specs in a failure."""
    seeds = replication_seeds(base_seed, replications)
    runner = executor if executor is not None else LocalExecutor(
        max(1, jobs or os.cpu_count() or 1))
    tasks = [(portable(spec), ss) for spec in specs for ss in seeds]
    names = [(f"{labels[k]}: " if labels else "") + replication_name(i, base_seed)
             for k in range(len(specs)) for i in range(replications)]
    flat = runner.map(_replication, tasks, names, on_progress)
    return [flat[k * replications:(k + 1) * replications] for k in range(len(specs))]


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


@dataclass
class DayProgress:
    """Progress of long runs per simulated day: a line on ``stream`` each time a replication
    has simulated one more whole day of its ``days`` (the drain after the last arrival is not
    counted). Call it with the replication's index and fraction done, as executors report."""

    days: float
    stream: TextIO
    clock: Callable[[], float] = time.monotonic
    _start: float = field(init=False)
    _reached: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._start = self.clock()

    def day(self, fraction: float) -> int:
        """Whole simulated days behind a replication ``fraction`` done."""
        simulated = fraction * (self.days * 86400.0 + DRAIN_S)
        return min(int(simulated // 86400.0), math.ceil(self.days))

    def __call__(self, index: int, fraction: float) -> None:
        day = self.day(fraction)
        if day <= self._reached.get(index, 0):
            return
        self._reached[index] = day
        print(f"simulating: replication {index + 1}, day {day} of {self.days:g} done, "
              f"{self.clock() - self._start:.0f} s elapsed", file=self.stream, flush=True)


def default_scenario() -> Path:
    """The reference scenario shipped with the project."""
    return shipped.reference_scenario()
