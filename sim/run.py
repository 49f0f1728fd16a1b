"""Replications: independent seeds, common random numbers across scenarios, processes in parallel.

Replication ``i`` of base seed ``s`` draws its traffic, its staffing absences and its caller and
agent behaviour from separate children of ``SeedSequence(s).spawn(n)[i]``. Two scenarios run
with the same base seed therefore see the same callers (common random numbers), which makes
their difference far less noisy than their separate confidence intervals suggest. Absences are
drawn per agent and calendar day (:func:`sim.staffing.absent_days`), so an agent present in
both scenarios is absent on the same days in both, however many agents either has.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import math
import os
import pickle
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from acd import shipped
from acd.config.load import LoadedCenter
from acd.config.roster import expand_group
from acd.config.schema import CenterConfig
from acd.core.model import AgentProfile
from sim.engine import DRAIN_S, Simulation
from sim.executor import Executor, LocalExecutor, freeze_process
from sim.outage import apply_outages, windows
from sim.qlreplay import QueueLogOptions, load_plan, replay_behaviour
from sim.recorder import CALL_BATCH
from sim.records import CallLog, RunResult
from sim.scenario import Behaviour, Scenario, deep_merge, load_scenario
from sim.staffing import ShiftPlan, StaffAction, shift_plan
from sim.traffic import Arrival, ArrivalBatch, load_call_log, load_traffic
from sim.traffic.censored import fit_patience, redraw_unobserved, scale_calls
from sim.traffic.forecast import ForecastSource


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
    #: Seconds simulated before the start with the same traffic, left out of the results.
    warmup_s: float = 0.0
    #: Return each replication's call log (``RunResult.calls``); without it a run keeps only
    #: per-interval tallies and waits, so its memory grows with intervals, not calls.
    keep_calls: bool = True
    #: Write each replication's call rows to this CSV file (see :func:`calls_csv_path`).
    calls_csv: str | None = None
    #: Keep the loaded scenario, its forecast and shift plan in the process for its later
    #: replications of this spec (:func:`kept_set_up`). :func:`run_specs` turns it off
    #: for a spec run once: its plan would only hold memory through the run (about 70 MB for
    #: 400 days of the reference center).
    keep_set_up: bool = True


def calls_csv_path(path: str, index: int) -> str:
    """Where replication ``index`` (0-based) writes its call rows: ``path`` for the first,
    ``<stem>-r<n>.<suffix>`` beside it for replication n >= 2."""
    if index == 0:
        return path
    p = Path(path)
    return str(p.with_name(f"{p.stem}-r{index + 1}{p.suffix}"))


def scaled_agent_groups(config: CenterConfig, factor: float) -> dict[str, dict[str, Any]]:
    """Center overrides with every agent group's ``count`` times ``factor`` (rounded, >= 1).

    A group's language mix is scaled by largest remainders so that it still adds up; a group that
    grows keeps its blocks and gets the added agents' blocks after them, so that its agents keep
    their ids, languages, shifts and absences (common random numbers when comparing), while a
    group that shrinks has its blocks scaled down in place. Groups whose extensions would then
    overlap the next group's are moved up past it.
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
            if all(n >= b.count for n, b in zip(sizes, group.language_mix, strict=True)):
                # A group that grows keeps its blocks and appends the added agents' own, so
                # every agent it had keeps its languages (blocks are positional).
                change["language_mix"] = [
                    *({"count": b.count, "languages": list(b.languages)}
                      for b in group.language_mix),
                    *({"count": n - b.count, "languages": list(b.languages)}
                      for n, b in zip(sizes, group.language_mix, strict=True) if n > b.count)]
            else:
                change["language_mix"] = [{"count": n, "languages": list(b.languages)}
                                          for n, b in zip(sizes, group.language_mix,
                                                          strict=True)]
        first = max(group.first_extension, next_free)
        if first != group.first_extension:
            change["first_extension"] = first
        next_free = first + count
        out[name] = change
    return out


def load_run_scenario(spec: RunSpec) -> Scenario:
    """The scenario of a run: the file with its overrides, agent groups scaled if asked.

    Agents of a group that grows stay who they were (:func:`grown_roster`).
    """
    scenario = load_scenario(spec.scenario_path, **spec.overrides)
    if spec.agent_scale == 1.0:
        return scenario
    groups = scaled_agent_groups(scenario.center.config, spec.agent_scale)
    merged = deep_merge(scenario.spec.center_overrides, {"agent_groups": groups})
    scaled = load_scenario(spec.scenario_path,
                           **{**spec.overrides, "center_overrides": merged})
    agents = grown_roster(scenario.center.agents, scaled.center)
    return replace(scaled, center=replace(scaled.center, agents=agents))


def grown_roster(before: Sequence[AgentProfile], scaled: LoadedCenter) -> list[AgentProfile]:
    """The roster of ``scaled`` in which each group that grew keeps the agents it had.

    The roster spreads a group's newcomers evenly over its size, so growing a group would turn
    some of its agents into newcomers and others back (with their skill levels): when
    comparing, those agents would no longer be paired. Here an agent of ``before`` keeps its
    profile (languages, newcomer, levels; extension and endpoint as scaled), and the added
    agents take the newcomers the grown group has beyond the old one's, spread evenly among
    them, so the group still has its share of newcomers. Groups that shrink are left as
    scaled: their language blocks and newcomers are spread over the smaller group.
    """
    old = {a.id: a for a in before}
    out: list[AgentProfile] = []
    for name, group in scaled.config.agent_groups.items():
        members = [a for a in scaled.agents if a.group == name]
        kept = [a for a in members if a.id in old]
        if len(kept) < sum(1 for a in before if a.group == name):
            out.extend(members)  # shrunk
            continue
        added = len(members) - len(kept)
        extra = sum(a.newcomer for a in members) - sum(old[a.id].newcomer for a in kept)
        extra = min(max(extra, 0), added)
        as_newcomer = expand_group(name, group.model_copy(update={"newcomer_share": 1.0}))
        as_tenured = expand_group(name, group.model_copy(update={"newcomer_share": 0.0}))
        j = 0
        for i, agent in enumerate(members):
            if agent.id in old:
                out.append(replace(old[agent.id], extension=agent.extension,
                                   endpoint=agent.endpoint))
                continue
            newcomer = (j + 1) * extra // added > j * extra // added
            out.append((as_newcomer if newcomer else as_tenured)[i])
            j += 1
    return out


#: Scenarios a process keeps for the replications it runs (:func:`kept_set_up`). A sweep's
#: tasks come point by point, so a few suffice; each holds its shift plan, 5 MB for 30 days of
#: the reference center (about 60 MB for a year).
SCENARIO_CACHE_SIZE = 4
#: A file as last read: its path and a digest of its contents (empty: it could not be read).
FileStamp = tuple[str, bytes]


@dataclass
class KeptSetUp:
    """A scenario loaded for replications, the stamps of the files it was read from, and what
    every replication of it draws from: traffic forecasts and shift plans, per window (filled
    by :func:`arrivals_for` and :func:`simulation_for` when handed the entry)."""

    files: tuple[FileStamp, ...]
    scenario: Scenario
    forecasts: dict[tuple[datetime, float], ForecastSource] = field(default_factory=dict)
    plans: dict[tuple[datetime, float], ShiftPlan] = field(default_factory=dict)


_shared: OrderedDict[tuple[str, bytes, float], KeptSetUp] = OrderedDict()
#: A Dask worker may run tasks in several threads.
_shared_lock = threading.Lock()


def _stamp(path: str) -> FileStamp:
    # The contents, not the modification time: a file rewritten within the file system's
    # clock tick, at the same size, would look unchanged by its time.
    try:
        with open(path, "rb") as f:
            return (path, hashlib.blake2b(f.read(), digest_size=16).digest())
    except OSError:
        return (path, b"")


def kept_set_up(spec: RunSpec) -> KeptSetUp:
    """The scenario of :func:`load_run_scenario`, kept by this process for its later
    replications of the same spec while the files it was read from (scenario, center, traffic,
    call flow) keep their contents (a digest of each, read again for every replication: a
    fraction of a millisecond for the reference files); a changed file is loaded again. Hand
    the entry to :func:`simulation_for` to keep the forecast and the shift plan too.

    Every replication of a scenario loads, validates and expands the same files and builds the
    same shift plan and traffic forecast: about a seventh of a 30-day replication's CPU. The
    scenario is shared: treat it as read-only (the simulation does)."""
    key = (os.path.abspath(spec.scenario_path), pickle.dumps(spec.overrides), spec.agent_scale)
    with _shared_lock:
        entry = _shared.get(key)
    if entry is not None and all(_stamp(f[0]) == f for f in entry.files):
        with _shared_lock:
            if key in _shared:
                _shared.move_to_end(key)
        return entry
    scenario = load_run_scenario(spec)
    paths = [os.path.abspath(scenario.path), os.path.abspath(scenario.center.path),
             str(scenario.traffic_path)]
    if scenario.spec.behaviour.ivr_flow:
        paths.append(os.path.abspath(scenario.spec.behaviour.ivr_flow))
    entry = KeptSetUp(tuple(_stamp(p) for p in paths), scenario)
    with _shared_lock:
        _shared[key] = entry
        _shared.move_to_end(key)
        while len(_shared) > SCENARIO_CACHE_SIZE:
            _shared.popitem(last=False)
    return entry


def clear_shared() -> None:
    """Forget every scenario :func:`kept_set_up` kept in this process."""
    with _shared_lock:
        _shared.clear()


def replication_seeds(base_seed: int, n: int) -> list[np.random.SeedSequence]:
    """The seed sequence of each replication."""
    return list(np.random.SeedSequence(base_seed).spawn(n))


def replication_streams(seed_seq: np.random.SeedSequence
                        ) -> tuple[np.random.SeedSequence, np.random.SeedSequence,
                                   np.random.SeedSequence]:
    """The traffic, staffing and engine seed sequences of the replication ``seed_seq``.

    The traffic (callers, their talk, wrap-up and patience) comes from the first whatever the
    staffing; absences from the second, per agent and day (:func:`sim.staffing.absent_days`),
    so no other agent shifts them; the engine's behaviour (answer delays, ring-no-answer,
    callback acceptance, redials) from the third, drawn in the order events happen, so those
    draws do follow the staffing.
    """
    # spawn() counts its children: a fresh copy gives the same three whatever ran before, so
    # one seed sequence object can serve every point of a sweep in one process.
    fresh = np.random.SeedSequence(seed_seq.entropy, spawn_key=seed_seq.spawn_key,
                                   pool_size=seed_seq.pool_size)
    traffic_ss, staffing_ss, engine_ss = fresh.spawn(3)
    return traffic_ss, staffing_ss, engine_ss


def arrivals_for(scenario: Scenario, replay_path: str | None, rng: np.random.Generator | None,
                 days: float | None = None, scale: float = 1.0, start: datetime | None = None,
                 kept: KeptSetUp | None = None
                 ) -> tuple[list[Arrival] | ArrivalBatch, datetime, float]:
    """The replication's arrivals, start and horizon: forecast traffic (as columns, which the
    simulation turns into callers a block at a time), or a replayed call log.

    A replayed log with clock times starts the run at its first call and lasts until its last
    (or ``days``, when asked, whichever comes first), or at ``start`` when given (a log in
    seconds starts at ``start`` anyway); ``scale`` thins or resamples it and what the log did
    not observe is drawn with ``rng`` (:func:`replayed`). Without ``rng`` the log is only read
    and checked. ``kept``: the set-up ``scenario`` was loaded with (or a copy of it over another
    window, as a warm-up's), which keeps the traffic forecast for the next replication.
    """
    spec = scenario.spec
    cfg = scenario.center.config
    known = (cfg.queues, cfg.languages, cfg.countries)
    if replay_path is not None:
        log = load_call_log(replay_path, *known, default_language=cfg.center.default_language)
        begin = (start or log.origin) if log.origin is not None else spec.start
        calls = list(log.arrivals(begin, None))
        if rng is not None:
            calls = replayed(calls, rng, days, scale)
        horizon = max((c.t for c in calls), default=0.0) + 1.0
        return calls, begin, horizon
    assert rng is not None
    span = (spec.start, spec.days)
    forecast = None if kept is None else kept.forecasts.get(span)
    if forecast is None:
        forecast = load_traffic(scenario.traffic_path, *known).forecast(*span)
        if kept is not None:
            kept.forecasts[span] = forecast
    # The draws of traffic.arrivals(), kept as columns: a year is 1.8 million callers.
    batch = forecast.generate(rng, spec.volume_scale)
    return batch, spec.start, spec.days * 86400.0


def replayed(calls: Sequence[Arrival], rng: np.random.Generator, days: float | None = None,
             scale: float = 1.0) -> list[Arrival]:
    """One replication's replayed calls: the first ``days`` of the log, thinned or resampled by
    ``scale``, answered callers' patience and abandoned calls' talk drawn from the log's own
    distributions (patience fitted on the whole log)."""
    patience = fit_patience(calls)
    window = [c for c in calls if days is None or c.t < days * 86400.0]
    return redraw_unobserved(scale_calls(window, scale, rng), rng, patience)


def replay_note(calls: Sequence[Arrival]) -> str | None:
    """What a planner should know before replaying ``calls``: answered calls without a wait
    cannot be given a patience, and are replayed as patient."""
    blind = sum(1 for c in calls if math.isinf(c.patience_s) and c.wait_s is None)
    if not blind:
        return None
    return (f"{blind:,} call(s) of the log have no wait_s: their callers are replayed as never "
            "abandoning (add wait_s, the time each call waited, to draw their patience from "
            "the log's abandons)")


def replay_window(spec: RunSpec) -> tuple[float | None, float, datetime | None]:
    """``--days``, ``--scale`` and ``--start`` of a replay: only values given on the command
    line count (the scenario file's describe its forecast traffic)."""
    days = spec.overrides.get("days")
    scale = spec.overrides.get("volume_scale")
    start = spec.overrides.get("start")
    return (None if days is None else float(days), 1.0 if scale is None else float(scale),
            start if isinstance(start, datetime) else None)


def run_one(spec: RunSpec, seed_seq: np.random.SeedSequence,
            progress: Callable[[float], None] | None = None) -> RunResult:
    """Run one replication (of a scenario this process may have loaded before for another:
    :func:`kept_set_up`)."""
    kept = kept_set_up(spec) if spec.keep_set_up else None
    scenario = load_run_scenario(spec) if kept is None else kept.scenario
    s = scenario.spec
    index = seed_seq.spawn_key[-1] if seed_seq.spawn_key else 0
    csv_path = None if spec.calls_csv is None else calls_csv_path(spec.calls_csv, index)
    if spec.queue_log_path is not None:
        traffic_ss, _staffing, engine_ss = replication_streams(seed_seq)
        plan = load_plan(spec.queue_log_path, scenario.center.config, scenario.center.agents,
                         spec.queue_log_options)
        days, scale, _start = replay_window(spec)  # --start: refused by the command line
        calls = replayed(plan.arrivals, np.random.default_rng(traffic_ss), days, scale)
        end = plan.horizon_s if days is None else min(plan.horizon_s, days * 86400.0)
        timeline = with_outages(scenario, [a for a in plan.timeline if a.t < end], plan.start)
        sim = Simulation(scenario.center, calls, timeline, replay_behaviour(s.behaviour),
                         plan.start, end, s.interval_minutes * 60.0,
                         int(engine_ss.generate_state(1)[0]), spec.keep_calls, csv_path)
        return sim.run(progress)
    behaviour = s.behaviour
    if spec.replay_path is not None:
        behaviour = replay_behaviour(behaviour)
    if spec.warmup_s:
        if spec.replay_path is not None:
            raise ValueError("a replay cannot warm up: it starts where its log starts")
        # The same traffic from warmup_s earlier; what arrives then is dropped from the result.
        scenario = replace(scenario, spec=s.model_copy(update={
            "start": s.start - timedelta(seconds=spec.warmup_s),
            "days": s.days + spec.warmup_s / 86400.0}))
    sim = simulation_for(scenario, seed_seq, behaviour=behaviour, replay_path=spec.replay_path,
                         window=replay_window(spec), keep_calls=spec.keep_calls,
                         calls_csv=csv_path, kept=kept)
    result = sim.run(progress)
    return without_warmup(result, spec.warmup_s) if spec.warmup_s else result


def simulation_for(scenario: Scenario, seed_seq: np.random.SeedSequence, *,
                   behaviour: Behaviour | None = None, replay_path: str | None = None,
                   window: tuple[float | None, float, datetime | None] = (None, 1.0, None),
                   keep_calls: bool = True, calls_csv: str | None = None,
                   call_batch: int = CALL_BATCH, center: LoadedCenter | None = None,
                   timeline: list[StaffAction] | None = None, kept: KeptSetUp | None = None
                   ) -> Simulation:
    """The simulation :func:`run_one` runs for replication ``seed_seq`` of ``scenario``
    (its forecast traffic, or the call log at ``replay_path`` within ``window``: days, scale,
    start), ready to run; the benchmarks time it apart from this set-up.

    ``center`` and ``timeline`` replace the scenario's center and its staffing (shifts and
    outages) with a candidate's, on the scenario's traffic (``staff --confirm``). ``kept``:
    the set-up ``scenario`` came from (:func:`kept_set_up`), which keeps the forecast and the
    shift plan for the next replication."""
    traffic_ss, staffing_ss, engine_ss = replication_streams(seed_seq)
    s = scenario.spec
    arrivals, start, horizon = arrivals_for(scenario, replay_path,
                                            np.random.default_rng(traffic_ss), *window,
                                            kept=kept)
    if timeline is None:
        # A replay's horizon is its drawn calls' own: only forecast traffic has one plan to
        # keep.
        keep = kept if replay_path is None else None
        span = (start, horizon + DRAIN_S)
        plan = None if keep is None else keep.plans.get(span)
        if plan is None:
            plan = shift_plan(scenario.center.config, scenario.center.agents, s.staffing, *span)
            if keep is not None:
                keep.plans[span] = plan
        timeline = with_outages(scenario, plan.timeline(staffing_ss), start)
    return Simulation(scenario.center if center is None else center, arrivals, timeline,
                      s.behaviour if behaviour is None else behaviour, start, horizon,
                      s.interval_minutes * 60.0, int(engine_ss.generate_state(1)[0]),
                      keep_calls, calls_csv, call_batch)


def with_outages(scenario: Scenario, timeline: list[StaffAction], start: datetime
                 ) -> list[StaffAction]:
    """The staffing timeline with the scenario's site outages applied (:mod:`sim.outage`)."""
    if not scenario.spec.outages:
        return timeline
    zones = {name: site.timezone for name, site in scenario.center.config.sites.items()}
    return apply_outages(timeline, scenario.center.agents,
                         windows(scenario.spec.outages, zones, start))


def warmup_problem(warmup_s: float, interval_minutes: int) -> str | None:
    """Why a warm-up cannot be used with this interval length, or None when it can."""
    interval = interval_minutes * 60.0
    if warmup_s < 0 or not math.isfinite(warmup_s):
        return "must be a duration >= 0"
    if warmup_s % interval:
        return (f"must be whole intervals of the scenario ({interval_minutes} min), so that "
                "the reported intervals stay on the clock")
    if warmup_s > 7 * 86400:
        return "must be at most 7 days"
    return None


def without_warmup(result: RunResult, warmup_s: float) -> RunResult:
    """``result`` from ``warmup_s`` on: times from the real start, the warm-up's calls (those
    that reached the queue, or ended in the IVR, before it) and intervals dropped.

    A run without a call log drops the warm-up's intervals from its tallies: they count each
    call in the interval of its queue entry (or arrival), the same rule as above, and a
    warm-up is whole intervals (:func:`warmup_problem`), so both ways drop the same calls.
    (``calls_simulated`` still counts the warm-up's calls: they were simulated.)
    """
    k = round(warmup_s / result.interval_s)
    changes: dict[str, Any] = {}
    calls = result.calls
    if calls is not None:
        when = np.where(np.isnan(calls.queued_s), calls.arrival_s, calls.queued_s)
        keep = when >= warmup_s
        kept = {f: (getattr(calls, f)[keep] if isinstance(getattr(calls, f), np.ndarray)
                    else getattr(calls, f)) for f in calls.__dataclass_fields__}
        kept["arrival_s"] = kept["arrival_s"] - warmup_s
        kept["queued_s"] = kept["queued_s"] - warmup_s
        changes["calls"] = CallLog(**kept)
    if result.tallies is not None:
        t = result.tallies
        changes["tallies"] = replace(t, values={dim: v[..., k:] for dim, v in t.values.items()})
    if result.waits is not None:
        w = result.waits
        keep = w.queued_s >= warmup_s
        changes["waits"] = replace(w, queued_s=w.queued_s[keep] - warmup_s,
                                   wait_s=w.wait_s[keep], queue=w.queue[keep],
                                   language=w.language[keep])
    agent = result.agent_time
    start = datetime.fromisoformat(result.start_iso) + timedelta(seconds=warmup_s)
    return replace(
        result, **changes, start_iso=start.isoformat(),
        duration_s=result.duration_s - warmup_s,
        agent_time=replace(agent, seconds=agent.seconds[k:]),
        queue_depth_mean=None if result.queue_depth_mean is None else result.queue_depth_mean[k:],
        queue_depth_max=None if result.queue_depth_max is None else result.queue_depth_max[k:])


def _replication(task: tuple[RunSpec, np.random.SeedSequence],
                 progress: Callable[[float], None]) -> RunResult:
    """One replication as an executor task (module level, so that it pickles by name)."""
    spec, seed_seq = task
    result = run_one(spec, seed_seq, progress)
    # The finished simulation's object graph (its calls, timers and router) is cyclic and was
    # kept out of the collector during the run: free it now, before the next replication or
    # the summary allocate on top of it.
    gc.collect()
    return result


def dask_setup(worker: Any) -> None:
    """Called by Dask on a worker started with ``--preload sim.run`` (and ``--dask local``'s),
    once it has started: the simulator is imported; freeze what the worker holds now out of
    the garbage collector (:func:`sim.executor.freeze_process`), outside its first task."""
    freeze_process()


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
    once = replications == 1  # nothing to keep for a later replication
    tasks = [(portable(replace(spec, keep_set_up=False) if once else spec), ss)
             for spec in specs for ss in seeds]
    names = [(f"{labels[k]}: " if labels else "") + replication_name(i, base_seed)
             for k in range(len(specs)) for i in range(replications)]
    if executor is not None:
        flat = executor.map(_replication, tasks, names, on_progress)
    else:
        with LocalExecutor(max(1, jobs or os.cpu_count() or 1)) as runner:
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
