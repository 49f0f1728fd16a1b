"""Confirm a staffing plan with the center simulation itself, and search the agents it needs.

A *candidate* gives, per interval and (queue, language) group, how many agents of that group
are logged in. It runs through the same engine as ``acd sim run`` (:class:`sim.engine.Simulation`:
the center's queues, routing rules and expansion steps, the scenario's traffic and behaviour),
with one agent group per (queue, language) pool whose members log in and out at interval edges.
Every candidate runs the same replication seeds (common random numbers), so the difference
between two candidates is the staffing, not the callers. Replications are added in batches
until every judged interval's 95% CI half-width of ``sl_offered`` is small enough, or its CI
excludes the target, or a cap is reached. A group with too few calls in every interval to judge
one (a small language) is judged on its SL pooled over its intervals with calls.

The search scales each group's Erlang requirement by a factor of its own (``ceil(s * erlang)``,
at least the groups' minimum where there is demand) and bisects that factor: the smallest
factor whose judged intervals all meet the target by the simulated mean. Groups are searched
side by side (each step simulates one candidate holding every group's current probe), and the
result is simulated once more as a whole; a group still short there is raised one agent's worth.
:mod:`sim.refine` then moves single intervals from that result.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from acd.config import yamlsafe
from acd.config.load import LoadedCenter, center_from_data
from sim.executor import Executor, LocalExecutor
from sim.kpi import t95
from sim.records import ANSWERED, RunResult
from sim.run import RunSpec, kept_set_up, replication_seeds, simulation_for
from sim.scenario import Scenario, deep_merge
from sim.staffing import StaffAction

#: First extension of the pool agents (far above any roster's).
FIRST_EXTENSION = 900_000
#: Bisection stops when the bracket is narrower than one agent at the group's peak.
MAX_STEPS = 12


@dataclass(frozen=True)
class Groups:
    """The (queue, language) groups of a plan and the intervals they are sized in."""

    cells: tuple[tuple[str, str], ...]
    #: Offset of interval 0 from the scenario start (<= 0) and the interval length, seconds.
    offset_s: float
    interval_s: float
    n_intervals: int


@dataclass(frozen=True)
class ConfirmTask:
    """One replication of one candidate: picklable, so it runs on any executor."""

    scenario_path: str
    days: float | None
    groups: Groups
    counts: np.ndarray  # int, (n_intervals, n_cells)
    seed_seq: np.random.SeedSequence


@dataclass(frozen=True)
class Tally:
    """Offered and answered-within-threshold calls per interval, per group and per queue."""

    offered: np.ndarray  # (n_intervals, n_cells)
    within: np.ndarray
    queue_offered: np.ndarray  # (n_intervals, n_queues)
    queue_within: np.ndarray
    #: CPU seconds the replication took in the process that ran it.
    cpu_s: float = 0.0


@dataclass(frozen=True)
class Estimate:
    """``sl_offered`` per interval over replications: mean and 95% CI (NaN where no calls)."""

    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    replications: int


@dataclass(frozen=True)
class Evaluation:
    """A candidate's simulated service level, per group and per queue."""

    counts: np.ndarray
    cells: Estimate
    queues: Estimate
    #: Per group, SL pooled over its judged intervals (shape (m,)): the verdict of a group
    #: judged as a whole (too few calls in any one interval).
    pooled: Estimate


@dataclass(frozen=True)
class Confirmation:
    """The searched staffing and its simulated service level, and what the search cost."""

    counts: np.ndarray  # (n_intervals, n_cells) agents
    scale: dict[tuple[str, str], float]
    final: Evaluation
    candidates: int
    replications_run: int
    wall_s: float


def pool_name(queue: str, language: str) -> str:
    """The agent group of one (queue, language) pool."""
    return f"pool-{queue}-{language}"


def candidate_center(scenario: Scenario, groups: Groups, counts: np.ndarray) -> LoadedCenter:
    """The scenario's center with its roster replaced by one agent group per (queue, language).

    Each pool's agents have the queue's skill at the roster's best level for it, speak only the
    language, and sit on the site where most of the roster's agents for that pool sit.
    """
    cfg = scenario.center.config
    data, _text = yamlsafe.read_yaml(cfg_path(scenario))
    data = deep_merge(data, scenario.spec.center_overrides)
    first_site = sorted(cfg.sites)[0]
    pools: dict[str, dict[str, Any]] = {}
    ext = FIRST_EXTENSION
    for k, (queue, language) in enumerate(groups.cells):
        skill = cfg.queues[queue].skill
        having = [a for a in scenario.center.agents if skill in a.skills]
        speaking = [a for a in having if language in a.languages] or having
        sites = [a.site for a in speaking]
        site = max(sorted(set(sites)), key=sites.count) if sites else first_site
        level = max((a.skills[skill] for a in having), default=5)
        size = max(1, int(counts[:, k].max(initial=0)))
        pools[pool_name(queue, language)] = {
            "site": site, "supervisor": "-", "count": size, "skills": {skill: level},
            "level_spread": 0, "languages": [language], "first_extension": ext}
        ext += size
    data["agent_groups"] = pools
    return center_from_data(data, "<staffing candidate>")


def cfg_path(scenario: Scenario) -> str:
    """The center file of the scenario (resolved against the scenario file)."""
    return str((Path(scenario.path).resolve().parent / scenario.spec.center).resolve())


def candidate_timeline(center: LoadedCenter, groups: Groups, counts: np.ndarray
                       ) -> list[StaffAction]:
    """Logins and logouts at interval edges so that interval ``i`` has ``counts[i, k]`` agents of
    group ``k`` (a logout waits for the agent's call, as in any run)."""
    members: dict[str, list[str]] = {}
    for a in center.agents:
        members.setdefault(a.group, []).append(a.id)
    actions: list[StaffAction] = []
    for k, (queue, language) in enumerate(groups.cells):
        ids = members[pool_name(queue, language)]
        have = 0
        for i in range(groups.n_intervals):
            t = max(0.0, groups.offset_s + i * groups.interval_s)
            want = int(counts[i, k])
            actions += [StaffAction(t, "login", ids[j]) for j in range(have, want)]
            actions += [StaffAction(t, "logout", ids[j]) for j in range(want, have)]
            have = want
    order = {"logout": 0, "pause": 1, "ready": 2, "login": 3}
    actions.sort(key=lambda a: (a.t, order[a.action], a.agent))
    return actions


def tally(result: RunResult, groups: Groups, queues: Sequence[str]) -> Tally:
    """Offered and within-threshold calls per interval of queue entry, per group and queue."""
    calls = result.calls
    if calls is None:
        raise ValueError("tally needs a run that kept its call log (Simulation keep_calls)")
    offered = ~np.isnan(calls.queued_s)
    when = np.where(offered, calls.queued_s, 0.0)
    interval = np.floor((when - groups.offset_s) / groups.interval_s).astype(np.int64)
    interval = np.clip(interval, 0, groups.n_intervals - 1)
    threshold = np.array([result.queue_sl[q][0] for q in range(len(calls.queues))])
    within = offered & (calls.outcome == ANSWERED) & (calls.wait_s <= threshold[calls.queue])
    cell_index = {c: k for k, c in enumerate(groups.cells)}
    code = np.array([cell_index.get((calls.queues[q], calls.languages[lang]), -1)
                     for q in range(len(calls.queues)) for lang in range(len(calls.languages))])
    cell = code[calls.queue.astype(np.int64) * len(calls.languages) + calls.language]
    qmap = np.array([queues.index(q) if q in queues else -1 for q in calls.queues])
    qcode = qmap[calls.queue]
    n, m, nq = groups.n_intervals, len(groups.cells), len(queues)

    def count(mask: np.ndarray, col: np.ndarray, width: int) -> np.ndarray:
        keep = mask & (col >= 0)
        flat = np.bincount(interval[keep] * width + col[keep], minlength=n * width)
        return flat[:n * width].reshape(n, width).astype(float)

    return Tally(count(offered, cell, m), count(within, cell, m),
                 count(offered, qcode, nq), count(within, qcode, nq))


def _replicate(task: ConfirmTask, progress: Callable[[float], None]) -> Tally:
    """One replication of a candidate as an executor task (module level, so it pickles)."""
    cpu0 = time.process_time()
    # Loaded once per process for all the candidates it runs, again if a file changed.
    kept = kept_set_up(RunSpec(task.scenario_path, {"days": task.days}))
    scenario = kept.scenario
    center = candidate_center(scenario, task.groups, task.counts)
    result = simulation_for(scenario, task.seed_seq, kept=kept, center=center,
                            timeline=candidate_timeline(center, task.groups, task.counts)
                            ).run(progress)
    counted = tally(result, task.groups, tuple(sorted(scenario.center.config.queues)))
    return replace(counted, cpu_s=time.process_time() - cpu0)


def estimate(offered: np.ndarray, within: np.ndarray) -> Estimate:
    """Mean and 95% t interval of per-replication SL (axis 0: replications), clipped to
    [0, 1]; a replication without calls in a cell does not count there."""
    with np.errstate(invalid="ignore", divide="ignore"):
        sl = np.where(offered > 0, within / offered, np.nan)
    n = np.sum(~np.isnan(sl), axis=0)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty cell is NaN on purpose
        mean = np.nanmean(sl, axis=0)
        sd = np.nanstd(sl, axis=0, ddof=1)
    half = np.where(n >= 2, t95(n - 1) * sd / np.sqrt(np.maximum(n, 1)), np.inf)
    half = np.where(np.isnan(mean), np.nan, half)
    return Estimate(mean, np.clip(mean - half, 0.0, 1.0), np.clip(mean + half, 0.0, 1.0),
                    int(offered.shape[0]))


@dataclass
class Searcher:
    """Runs candidates on an executor with common random numbers and adaptive replications."""

    scenario: Scenario
    days: float | None
    groups: Groups
    targets: np.ndarray  # per cell
    queue_targets: np.ndarray  # per queue, sorted queue names
    judged: np.ndarray  # bool (n_intervals, n_cells): intervals the verdict looks at
    #: Per group: judged on its SL pooled over its judged intervals, not interval by interval.
    pooled: np.ndarray  # bool (n_cells,)
    executor: Executor
    seed: int = 1
    min_replications: int = 3
    max_replications: int = 30
    half_width: float = 0.02
    replications_run: int = 0
    candidates: int = 0
    #: CPU seconds of every replication run so far (wherever it ran).
    cpu_s: float = 0.0
    #: Replication seeds skipped: a searcher on other callers than another's.
    seed_offset: int = 0
    #: Told the number of replications each batch ran, as it ends (progress for a long search).
    on_batch: Callable[[int], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._seeds = replication_seeds(self.seed, self.seed_offset
                                        + self.max_replications)[self.seed_offset:]
        self._seen: dict[bytes, Evaluation] = {}
        # Replications already run per candidate: a re-judged candidate only adds replications.
        self._parts: dict[bytes, list[Tally]] = {}

    def rejudge(self, judged: np.ndarray, pooled: np.ndarray) -> None:
        """Judge candidates on other intervals from now on (replications already run are kept,
        so a candidate judged again runs only the replications its new verdict lacks)."""
        self.judged, self.pooled = judged, pooled
        self._seen.clear()

    def fresh(self) -> Searcher:
        """A searcher judging the same way on the next :attr:`max_replications` seeds: callers
        independent of this one's, to check a choice that this one's callers made."""
        return replace(self, seed_offset=self.seed_offset + self.max_replications,
                       replications_run=0, candidates=0, cpu_s=0.0)

    def evaluate(self, counts: np.ndarray) -> Evaluation:
        """Simulate ``counts`` on the first replication seeds until the CIs are narrow enough
        (or exclude the target) in every judged interval, or the replication cap."""
        key = counts.tobytes()
        if key in self._seen:
            return self._seen[key]
        parts = self._parts.setdefault(key, [])
        batch = self.min_replications - len(parts)
        while True:
            seeds = self._seeds[len(parts):len(parts) + batch]
            if seeds:
                tasks = [ConfirmTask(self.scenario.path, self.days, self.groups, counts, ss)
                         for ss in seeds]
                names = [f"staffing candidate {self.candidates}, replication {len(parts) + i} "
                         f"of seed {self.seed}" for i in range(len(seeds))]
                fresh = self.executor.map(_replicate, tasks, names)
                parts += fresh
                self.replications_run += len(seeds)
                self.cpu_s += sum(p.cpu_s for p in fresh)
                if self.on_batch is not None:
                    self.on_batch(len(seeds))
            offered = np.stack([p.offered for p in parts])
            within = np.stack([p.within for p in parts])
            cells = estimate(offered, within)
            pooled = estimate((offered * self.judged).sum(axis=1),
                              (within * self.judged).sum(axis=1))
            if len(parts) >= self.max_replications or (
                    self._clear(cells, self.judged & ~self.pooled)
                    and self._clear(pooled, self.pooled)):
                break
            batch = min(self.max_replications - len(parts), max(batch, len(parts)))
        self.candidates += 1
        queues = estimate(np.stack([p.queue_offered for p in parts]),
                          np.stack([p.queue_within for p in parts]))
        self._seen[key] = Evaluation(counts, cells, queues, pooled)
        return self._seen[key]

    def _clear(self, est: Estimate, mask: np.ndarray) -> bool:
        """Whether every CI under ``mask`` is narrow enough or excludes the target."""
        half = (est.high - est.low) / 2
        clear = (half <= self.half_width) | (est.low > self.targets) \
            | (est.high < self.targets) | np.isnan(half)
        return bool(np.all(clear[mask]))

    def meets(self, ev: Evaluation) -> np.ndarray:
        """Per group: every judged interval's simulated mean SL reaches its target (for a
        pooled group: its SL over the judged intervals together)."""
        ok = np.ones(len(self.groups.cells), dtype=bool)
        for k in range(len(self.groups.cells)):
            if self.pooled[k]:
                ok[k] = not ev.pooled.mean[k] < self.targets[k] - 1e-12
                continue
            mean = ev.cells.mean[self.judged[:, k], k]
            mean = mean[~np.isnan(mean)]
            ok[k] = bool(np.all(mean >= self.targets[k] - 1e-12))
        return ok


def counts_for(erlang: np.ndarray, scale: np.ndarray, minimum: int = 1) -> np.ndarray:
    """``ceil(scale * erlang)`` per group, at least ``minimum`` agents wherever Erlang asks for
    any."""
    scaled = np.ceil(erlang * scale[None, :] - 1e-9)
    return np.where(erlang > 0, np.maximum(scaled, minimum), 0).astype(np.int64)


def search(searcher: Searcher, erlang: np.ndarray, minimum: int = 1) -> Confirmation:
    """The smallest scale factor per group whose judged intervals meet the target (module
    docstring), starting from Erlang's counts (factor 1), at least ``minimum`` agents wherever
    Erlang asks for any."""
    def scaled(erl: np.ndarray, factor: np.ndarray) -> np.ndarray:
        return counts_for(erl, factor, minimum)

    t0 = time.monotonic()
    m = erlang.shape[1]
    peak = np.maximum(erlang.max(axis=0), 1).astype(float)
    lo = np.full(m, np.nan)  # largest factor known to miss
    hi = np.full(m, np.nan)  # smallest factor known to meet
    probe = np.ones(m)
    # A group without a judged interval (too few calls to judge) keeps Erlang's counts.
    done: np.ndarray = ~np.asarray(searcher.judged.any(axis=0), dtype=bool)
    hi[done] = 1.0
    for _ in range(MAX_STEPS):
        ev = searcher.evaluate(scaled(erlang, probe))
        ok = searcher.meets(ev)
        for k in np.flatnonzero(~done):
            if ok[k]:
                hi[k] = probe[k]
            else:
                lo[k] = probe[k]
            if np.isnan(lo[k]):  # never missed yet: try one agent fewer at the peak
                nxt = hi[k] * (peak[k] - 1) / peak[k]
                if peak[k] <= 1 or scaled(erlang[:, [k]], np.array([nxt])).sum() \
                        == scaled(erlang[:, [k]], np.array([hi[k]])).sum():
                    done[k] = True
                    continue
                probe[k] = nxt
            elif np.isnan(hi[k]):  # never met yet: more agents
                probe[k] = lo[k] * 1.25 + 1.0 / peak[k]
            elif (hi[k] - lo[k]) * peak[k] <= 1.0 or np.array_equal(
                    scaled(erlang[:, [k]], np.array([lo[k]])),
                    scaled(erlang[:, [k]], np.array([hi[k]]))):
                done[k] = True
            else:
                probe[k] = (lo[k] + hi[k]) / 2
        # A finished group holds its smallest meeting factor while the others go on.
        probe = np.where(done & ~np.isnan(hi), hi, probe)
        if done.all():
            break
    scale = np.where(np.isnan(hi), probe, hi)
    best = searcher.evaluate(scaled(erlang, scale))
    for _ in range(3):  # the groups' factors together: raise any group still short
        short = ~searcher.meets(best)
        if not short.any():
            break
        scale = np.where(short, scale + 1.0 / peak, scale)
        best = searcher.evaluate(scaled(erlang, scale))
    return Confirmation(best.counts, {c: float(scale[k]) for k, c in
                                      enumerate(searcher.groups.cells)}, best,
                        searcher.candidates, searcher.replications_run,
                        time.monotonic() - t0)


def local(executor: Executor | None) -> Executor:
    """``executor``, or this process."""
    return executor if executor is not None else LocalExecutor(1)


def ci_text(mean: float, low: float, high: float) -> str:
    """``87.1% [85.0, 89.2]``, or ``-`` without calls."""
    if not math.isfinite(mean):
        return "-"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{100 * mean:.1f}%"
    return f"{100 * mean:.1f}% [{100 * low:.1f}, {100 * high:.1f}]"
