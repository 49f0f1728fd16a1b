"""Contact-center KPIs of a simulation run, overall, per group and per interval (vectorised).

Definitions (T = SL threshold of the call's queue; O = offered = calls that entered the queue;
IVR outcomes never reach the queue and are counted apart, as ``ivr_abandoned``/``ivr_hangup``):

- ``sl_offered`` = A_T / O (primary); ``sl_answered`` = A_T / A (Asterisk ``servicelevel``);
- ``sl_abandon_good`` = (A_T + Ab_T) / (A + Ab) (Asterisk SL2);
- ``sl_excl_short`` = A_T / (O - short abandons), short = abandoned with wait < short_abandon_s;
- ``asa_s`` = mean wait of answered calls; ``mean_wait_s`` = mean wait of all offered calls;
- ``abandon_rate`` = Ab / O; ``answer_rate`` (CAR) = A / O; overflowed and callback outcomes
  count as offered, not answered;
- ``occupancy`` = busy / (busy + ready) agent seconds;
- ``aht_s`` = mean talk time of answered calls (wrap-up is agent time, not in the call log);
- ``repeats`` = offered calls that are repeats: the same caller called the same queue before
  within the first-call-resolution window (24 h). The simulator's only repeats are redials
  after an abandon (``behaviour.redial_probability``), each within the window as long as its
  delay is below 24 h; ``fcr`` (first-call resolution) = 1 - repeats / O, the repeat share's
  complement as the records' FCR defines it (every offered call counts, repeats included);
- ``callback_work`` = outbound calls agents made for accepted callbacks and voicemails
  (``behaviour.callback_work_delay_s``), in the interval they began; they are agent time
  (``occupancy``) but never arrivals, offered calls or SL; ``callback_work_wait_s`` = their
  mean wait from due until an agent began them;
- ``sl_consistency`` = share of intervals with at least ``min_volume`` offered calls whose
  ``sl_offered`` meets the target.

Grouping by ``"site"`` uses the *answering* site, which only answered calls have: by site only
the answered-call KPIs (``answered``, ``answered_within``, ``sl_answered``, ``asa_s``) and
``occupancy`` are defined; every other value is NaN. Occupancy is defined overall and by site
only (agent time is not split by queue, language or country).

Verdicts (:func:`summarise`): the center and every queue, language, country and site with at
least ``min_offered`` mean offered calls per replication (default 30; by site answered calls)
are judged on ``sl_offered`` against their SL target (a queue's own, else the center's) and
``answer_rate`` against the center's; by answering site on ``sl_answered`` alone. A KPI is
MET when its whole 95% CI reaches the target, NOT MET when the CI lies below it, INCONCLUSIVE
when the CI straddles it.

Calls are assigned to the interval of their queue entry (IVR outcomes: of their arrival);
calls with negative times (before the run start) are left out; intervals end at the horizon,
calls that queue after it count in the last one, agent time after it is not counted. Empty
denominators give NaN, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.records import (
    ABANDONED,
    ANSWERED,
    BUSY,
    CALLBACK,
    CALLBACK_WORK,
    IVR_ABANDONED,
    IVR_HANGUP,
    OVERFLOWED,
    READY,
    VOICEMAIL,
    CallLog,
    RunResult,
    Tallies,
)

Dimension = Literal["queue", "language", "country", "site"]
DIMENSIONS: tuple[Dimension, ...] = ("queue", "language", "country", "site")

#: Call counts behind the ratios, in table order.
COUNTS = ("arrivals", "offered", "answered", "answered_within", "abandoned", "abandoned_within",
          "short_abandoned", "overflowed", "callback", "voicemail", "ivr_abandoned",
          "ivr_hangup")
#: Counts of what a call is beyond its outcome: repeat calls (first-call resolution).
EXTRA_COUNTS = ("repeats", "callback_work")
#: Ratio KPIs computable per interval, in table order.
RATIOS = ("sl_offered", "sl_answered", "sl_abandon_good", "sl_excl_short", "asa_s",
          "mean_wait_s", "abandon_rate", "answer_rate", "occupancy", "aht_s", "fcr",
          "callback_work_wait_s")
#: Every KPI of :func:`kpis` (``sl_consistency`` needs intervals, so it is not per interval).
KPI_NAMES = (*RATIOS, "sl_consistency", *COUNTS, *EXTRA_COUNTS)
INTERVAL_KPI_NAMES = (*RATIOS, *COUNTS, *EXTRA_COUNTS)
#: KPIs that are shares (of calls, intervals or agent time): their values lie in [0, 1].
SHARE_KPIS = frozenset({"sl_offered", "sl_answered", "sl_abandon_good", "sl_excl_short",
                        "abandon_rate", "answer_rate", "occupancy", "sl_consistency", "fcr"})
#: What stays defined when grouping by answering site.
SITE_KPIS = frozenset({"answered", "answered_within", "sl_answered", "asa_s", "occupancy"})
#: Name of the single group of an ungrouped table.
ALL = "all"
#: Tolerance so that e.g. 17/20 meets 0.85 despite binary rounding.
_EPS = 1e-12


@dataclass(frozen=True)
class KpiTable:
    """KPIs of one run: ``overall`` and, when grouped, one row per group name (all names of the
    dimension, including groups without calls); ``targets`` is each group's SL target."""

    by: Dimension | None
    overall: dict[str, float]
    groups: dict[str, dict[str, float]]
    targets: dict[str, float]


@dataclass(frozen=True)
class IntervalTable:
    """Per-interval KPIs of one run: ``values[kpi]`` has shape (n_groups, n_intervals)."""

    by: Dimension | None
    groups: tuple[str, ...]
    start_s: np.ndarray
    values: dict[str, np.ndarray]
    targets: tuple[float, ...]


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN wherever den is 0 (no warning, no exception): no calls (or no agent
    time), no share. Every denominator of a KPI is a count of calls, a sum of them or of
    their means over replications, or agent seconds, so any other value is data."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


_NAMES_ATTR = {"queue": "queues", "language": "languages", "country": "countries",
               "site": "sites"}


def _group_codes(calls: CallLog, by: Dimension | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each call's group code (-1 = in no group, e.g. an unanswered call by site) and names."""
    if by is None:
        return np.zeros(len(calls), dtype=np.int64), (ALL,)
    if by not in DIMENSIONS:
        raise ValueError(f"by must be None or one of {', '.join(DIMENSIONS)}; got {by!r}")
    codes = np.asarray(getattr(calls, by), dtype=np.int64)
    names: tuple[str, ...] = getattr(calls, _NAMES_ATTR[by])
    return codes, names


def _group_targets(result: RunResult, by: Dimension | None, names: Sequence[str]) -> list[float]:
    """SL target per group: the queue's own target by queue, the run's target otherwise."""
    if by == "queue":
        return [result.queue_sl[i][1] if i < len(result.queue_sl) else result.target
                for i in range(len(names))]
    return [result.target] * len(names)


def _thresholds(calls: CallLog, threshold_s: float,
                queue_sl: Sequence[tuple[float, float]]) -> np.ndarray:
    """Each call's SL threshold T, from its queue (the run's threshold if the queue has none)."""
    per_queue = np.full(len(calls.queues), threshold_s, dtype=float)
    for i, (threshold, _target) in enumerate(queue_sl[: per_queue.size]):
        per_queue[i] = threshold
    if len(calls) == 0:
        return np.zeros(0)
    return per_queue[calls.queue.astype(np.int64)]


def intervals_of(duration_s: float, interval_s: float) -> int:
    """Number of intervals a run of ``duration_s`` covers: up to its horizon, never past it."""
    return max(math.ceil(duration_s / interval_s - _EPS), 1)


def n_intervals(result: RunResult) -> int:
    """Number of intervals the run covers: up to its horizon, never past it."""
    return intervals_of(result.duration_s, result.interval_s)


def _interval_index(calls: CallLog, interval_s: float, n_int: int) -> np.ndarray:
    """Each call's interval: of its queue entry, or of its arrival if it never queued.

    A call that reaches the queue after the horizon (it arrived before, and was still in the
    IVR) counts in the last interval: an interval of its own past the horizon, with agents
    already leaving, would show a service level that no planner staffed for.
    """
    when = np.where(np.isnan(calls.queued_s), calls.arrival_s, calls.queued_s)
    index = np.floor(when / interval_s).astype(np.int64)
    return np.minimum(index, n_int - 1)


def _masks(calls: CallLog, thresholds: np.ndarray, short_abandon_s: float
           ) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Which calls each count counts, and which calls each sum adds up and of what."""
    outcome = calls.outcome
    offered = ~np.isnan(calls.queued_s)
    within = calls.wait_s <= thresholds
    answered = offered & (outcome == ANSWERED)
    abandoned = offered & (outcome == ABANDONED)
    callback_work = outcome == CALLBACK_WORK
    repeat = (np.zeros(len(calls), dtype=bool) if calls.repeat is None
              else calls.repeat.astype(bool))
    counts = {
        "arrivals": ~callback_work,
        "offered": offered,
        "answered": answered,
        "answered_within": answered & within,
        "abandoned": abandoned,
        "abandoned_within": abandoned & within,
        "short_abandoned": abandoned & (calls.wait_s < short_abandon_s),
        "overflowed": offered & (outcome == OVERFLOWED),
        # Voicemail and callbacks also end calls in the IVR (after hours), before any queue:
        # counted over all arrivals, so they are not lost from the totals.
        "callback": outcome == CALLBACK,
        "voicemail": outcome == VOICEMAIL,
        "ivr_abandoned": outcome == IVR_ABANDONED,
        "ivr_hangup": outcome == IVR_HANGUP,
        "repeats": offered & repeat,
        "callback_work": callback_work,
    }
    sums = {
        "_wait_answered": (answered, calls.wait_s),
        "_wait_offered": (offered, calls.wait_s),
        "_talk_answered": (answered, calls.talk_s),
        "_wait_callback_work": (callback_work, calls.wait_s),
    }
    return counts, sums


def _tally(calls: CallLog, thresholds: np.ndarray, short_abandon_s: float, cell: np.ndarray,
           n_cells: int) -> dict[str, np.ndarray]:
    """Counts and wait sums per cell (calls with a negative cell are left out)."""
    counts, sums = _masks(calls, thresholds, short_abandon_s)
    keep = cell >= 0
    out = {name: np.bincount(cell[mask & keep], minlength=n_cells).astype(float)[:n_cells]
           for name, mask in counts.items()}
    for name, (mask, of) in sums.items():
        sel = mask & keep
        out[name] = np.bincount(cell[sel], weights=of[sel], minlength=n_cells)[:n_cells]
    return out


#: What :class:`TallyAccumulator` keeps per (group, interval): the counts, two wait sums and
#: the talk sum of answered calls.
TALLY_FIELDS = (*COUNTS, *EXTRA_COUNTS, "_wait_answered", "_wait_offered", "_talk_answered",
                "_wait_callback_work")


def _cells(calls: CallLog, by: Dimension | None, n_int: int, interval: np.ndarray
           ) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each call's (group, interval) cell, -1 where it is in no group or before the start."""
    codes, names = _group_codes(calls, by)
    # Calls before the run start (a replay's warm-up) belong to no interval: leave them out.
    return np.where((codes >= 0) & (interval >= 0), codes * n_int + interval, -1), names


class TallyAccumulator:
    """Call counts and wait sums per (group, interval) of every dimension, added a batch of
    ended calls at a time: the KPIs of a run without keeping a row per call.

    The sums are those :func:`kpis` computes from a whole :class:`~sim.records.CallLog`; wait
    sums may differ from them in the last bits only (they are added in another order).
    """

    def __init__(self, names: dict[str, tuple[str, ...]], duration_s: float, interval_s: float,
                 threshold_s: float, queue_sl: Sequence[tuple[float, float]],
                 short_abandon_s: float) -> None:
        self.interval_s = interval_s
        self.n_int = intervals_of(duration_s, interval_s)
        self.threshold_s = threshold_s
        self.queue_sl = tuple(queue_sl)
        self.short_abandon_s = short_abandon_s
        self.names: dict[str, tuple[str, ...]] = {ALL: (ALL,)}
        self.names.update((d, names[_NAMES_ATTR[d]]) for d in DIMENSIONS)
        self.values = {d: np.zeros((len(TALLY_FIELDS), len(g), self.n_int))
                       for d, g in self.names.items()}

    def add(self, calls: CallLog) -> None:
        """Count a batch of ended calls (a chunk of the run's call log, in any order)."""
        if len(calls) == 0:
            return
        interval = _interval_index(calls, self.interval_s, self.n_int)
        inside = interval >= 0
        if not inside.any():
            return
        # A batch of ended calls spans days, the grid the whole run: only the intervals from
        # the batch's first to its last are counted into, as adding zeros elsewhere changes
        # nothing (sums start at +0.0 and never become -0.0).
        lo = int(interval[inside].min())
        span = int(interval.max()) + 1 - lo
        counts, sums = _masks(calls, _thresholds(calls, self.threshold_s, self.queue_sl),
                              self.short_abandon_s)
        # The counts: a batch's calls are of few kinds (the set of counts a call adds to, as
        # bits), so a bincount per (cell, kind) times each kind's counts gives them all
        # (integers, exact in any order) where a bincount per count and dimension took a
        # pass over the batch each.
        code = np.zeros(len(calls), dtype=np.int64)
        for bit, mask in enumerate(counts.values()):
            code |= np.left_shift(mask, bit, dtype=np.int64)
        present = np.bincount(code) > 0
        kind = (np.cumsum(present) - 1)[code]
        in_kind = ((np.flatnonzero(present)[:, None] >> np.arange(len(counts))) & 1
                   ).astype(float)  # (kind, count)
        n_kinds = in_kind.shape[0]
        # The sums: a weighted bincount each over the whole batch, a call outside the sum
        # adding +0.0, which leaves every sum bit for bit as it was (a sum starts at +0.0 and
        # so is never -0.0): a cell's calls are added in batch order, as before.
        weights = [np.where(mask, of, 0.0) for mask, of in sums.values()]
        since_lo = interval - lo
        for dim, grid in self.values.items():
            n_groups = grid.shape[1]
            n_cells = n_groups * span  # and one more, for calls in no cell, dropped
            if dim == ALL:
                cell = np.where(inside, since_lo, n_cells)
            else:
                codes = getattr(calls, dim).astype(np.int64)  # int16 would overflow
                cell = np.where((codes >= 0) & inside, codes * span + since_lo, n_cells)
            per_kind = np.bincount(cell * n_kinds + kind, minlength=(n_cells + 1) * n_kinds)
            by_count = (per_kind[:n_cells * n_kinds].reshape(n_groups, span, n_kinds)
                        .astype(float) @ in_kind)
            cells = grid[:, :, lo:lo + span]  # (field, group, interval), a view
            cells[:len(counts)] += by_count.transpose(2, 0, 1)
            for f, w in enumerate(weights, start=len(counts)):
                total = np.bincount(cell, weights=w, minlength=n_cells + 1)
                cells[f] += total[:n_cells].reshape(n_groups, span)

    def tallies(self) -> Tallies:
        """What was counted, as the run's result carries it."""
        return Tallies(TALLY_FIELDS, self.names, self.values)


def _ratios(t: dict[str, np.ndarray], busy: np.ndarray, ready: np.ndarray) -> dict[str, np.ndarray]:
    """The ratio KPIs from the tallies and agent seconds."""
    o, a, ab = t["offered"], t["answered"], t["abandoned"]
    a_t, ab_t = t["answered_within"], t["abandoned_within"]
    return {
        "sl_offered": ratio(a_t, o),
        "sl_answered": ratio(a_t, a),
        "sl_abandon_good": ratio(a_t + ab_t, a + ab),
        "sl_excl_short": ratio(a_t, o - t["short_abandoned"]),
        "asa_s": ratio(t["_wait_answered"], a),
        "mean_wait_s": ratio(t["_wait_offered"], o),
        "abandon_rate": ratio(ab, o),
        "answer_rate": ratio(a, o),
        "occupancy": ratio(busy, busy + ready),
        "aht_s": ratio(t["_talk_answered"], a),
        "fcr": 1.0 - ratio(t["repeats"], o),
        "callback_work_wait_s": ratio(t["_wait_callback_work"], t["callback_work"]),
    }


def _agent_seconds(result: RunResult, by: Dimension | None, names: Sequence[str],
                   n_int: int) -> tuple[np.ndarray, np.ndarray]:
    """Busy and ready seconds, shape (n_groups, n_int); NaN for dimensions without agent time."""
    agent = result.agent_time
    if agent.seconds.size and not math.isclose(agent.interval_s, result.interval_s):
        raise ValueError(f"agent time interval {agent.interval_s} s differs from the run's "
                         f"interval {result.interval_s} s")
    secs = np.zeros((n_int, len(agent.sites), 3))
    kept = min(n_int, agent.seconds.shape[0])  # agent time after the horizon is not counted
    secs[:kept] = agent.seconds[:kept]
    if by is None:
        return secs[:, :, BUSY].sum(axis=1)[None, :], secs[:, :, READY].sum(axis=1)[None, :]
    if by != "site":
        nan = np.full((len(names), n_int), np.nan)
        return nan, nan
    busy = np.full((len(names), n_int), np.nan)
    ready = np.full((len(names), n_int), np.nan)
    for g, name in enumerate(names):
        if name in agent.sites:
            j = agent.sites.index(name)
            busy[g], ready[g] = secs[:, j, BUSY], secs[:, j, READY]
    return busy, ready


def _blank_for_site(values: dict[str, np.ndarray], by: Dimension | None) -> None:
    """By answering site only answered-call KPIs and occupancy mean something: NaN the rest."""
    if by == "site":
        for name, arr in values.items():
            if name not in SITE_KPIS:
                arr[...] = np.nan


def _grid(result: RunResult, by: Dimension | None) -> tuple[tuple[str, ...], int,
                                                         dict[str, np.ndarray]]:
    """Tallies and agent seconds per (group, interval), each of shape (n_groups, n_intervals):
    counted as the run went (``result.tallies``), else from its call log."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"by must be None or one of {', '.join(DIMENSIONS)}; got {by!r}")
    n_int = n_intervals(result)
    if result.tallies is not None:
        names = result.tallies.groups[ALL if by is None else by]
        values = result.tallies.values[ALL if by is None else by]
        grid = {k: values[f] for f, k in enumerate(result.tallies.fields)}
    elif result.calls is not None:
        calls = result.calls
        cell, names = _cells(calls, by, n_int, _interval_index(calls, result.interval_s, n_int))
        tallies = _tally(calls, _thresholds(calls, result.threshold_s, result.queue_sl),
                         result.short_abandon_s, cell, len(names) * n_int)
        grid = {k: v.reshape(len(names), n_int) for k, v in tallies.items()}
    else:
        raise ValueError("a run result needs its call tallies or its call log for KPIs")
    grid["_busy"], grid["_ready"] = _agent_seconds(result, by, names, n_int)
    return names, n_int, grid


def kpis_per_interval(result: RunResult, by: Dimension | None = None) -> IntervalTable:
    """KPIs per interval (of each call's queue entry time) and, when ``by`` is given, per group."""
    return _interval_table(result, by, *_grid(result, by))


def _interval_table(result: RunResult, by: Dimension | None, names: tuple[str, ...], n_int: int,
                    grid: dict[str, np.ndarray]) -> IntervalTable:
    """Per-interval KPIs from a grid of tallies."""
    values = {k: grid[k] for k in (*COUNTS, *EXTRA_COUNTS)}
    values.update(_ratios(grid, grid["_busy"], grid["_ready"]))
    out = {k: values[k] for k in INTERVAL_KPI_NAMES}
    _blank_for_site(out, by)
    start = np.arange(n_int) * result.interval_s
    return IntervalTable(by, names, start, out, tuple(_group_targets(result, by, names)))


def _consistency(offered: np.ndarray, sl: np.ndarray, targets: Sequence[float],
                 min_volume: int) -> np.ndarray:
    """Per group: share of intervals with >= min_volume offered whose sl_offered meets target."""
    target = np.asarray(targets, dtype=float)[:, None]
    qualified = offered >= min_volume
    met = qualified & (np.nan_to_num(sl, nan=-1.0) >= target - _EPS)
    return ratio(met.sum(axis=1).astype(float), qualified.sum(axis=1).astype(float))


def _kpi_rows(result: RunResult, by: Dimension | None, names: tuple[str, ...],
              grid: dict[str, np.ndarray], min_volume: int) -> list[dict[str, float]]:
    """One KPI row per group; ratios come from counts summed over intervals, not from means."""
    summed = {k: v.sum(axis=1) for k, v in grid.items()}
    values = {k: summed[k] for k in (*COUNTS, *EXTRA_COUNTS)}
    values.update(_ratios(summed, summed["_busy"], summed["_ready"]))
    sl_per_interval = ratio(grid["answered_within"], grid["offered"])
    targets = _group_targets(result, by, names)
    values["sl_consistency"] = _consistency(grid["offered"], sl_per_interval, targets,
                                            min_volume)
    _blank_for_site(values, by)
    return [{k: float(values[k][g]) for k in KPI_NAMES} for g in range(len(names))]


def _rows_of(result: RunResult, by: Dimension | None,
             min_volume: int) -> tuple[tuple[str, ...], list[dict[str, float]]]:
    names, _n_int, grid = _grid(result, by)
    return names, _kpi_rows(result, by, names, grid, min_volume)


def kpis(result: RunResult, by: Dimension | None = None, min_volume: int = 10) -> KpiTable:
    """Overall KPIs of one run and, when ``by`` is given, the same KPIs per group."""
    overall = _rows_of(result, None, min_volume)[1][0]
    if by is None:
        return KpiTable(None, overall, {}, {})
    names, rows = _rows_of(result, by, min_volume)
    targets = _group_targets(result, by, names)
    return KpiTable(by, overall, dict(zip(names, rows, strict=True)),
                    dict(zip(names, targets, strict=True)))


# --- Replications -------------------------------------------------------------------------

#: Two-sided 95% Student t quantiles t(0.975, df) for df = 1..30; 1.96 beyond (normal).
_T95 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
        2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
        2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)

try:  # scipy is optional: exact quantiles for any df when present, the table otherwise.
    # The ufunc behind scipy.stats.t.ppf, the same numbers without importing scipy.stats
    # (0.3-0.6 s at the start of every simulation command and every worker process).
    from scipy.special import stdtrit as _t_quantile
except ImportError:
    _t_quantile = None
#: Where the t quantiles come from: "scipy" or "table".
T_SOURCE = "table" if _t_quantile is None else "scipy"


def t95(df: np.ndarray) -> np.ndarray:
    """Two-sided 95% Student t quantile per degrees of freedom (NaN where df < 1)."""
    df = np.asarray(df, dtype=np.int64)
    if _t_quantile is not None:
        out = np.asarray(_t_quantile(np.maximum(df, 1), 0.975), dtype=float)
    else:
        table = np.asarray(_T95)
        out = np.where(df <= len(_T95), table[np.clip(df, 1, len(_T95)) - 1], 1.96)
    return np.where(df >= 1, out, np.nan)


@dataclass(frozen=True)
class Estimate:
    """A KPI over replications: mean, sample standard deviation, 95% CI half-width, and how
    many replications had a defined value (NaN ones are left out)."""

    mean: float
    sd: float
    half_width: float
    n: int


def replication_moments(stack: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Over axis 0 of ``stack`` (one entry per replication): the mean, sd (ddof 1), 95% CI
    half-width (Student t; NaN below two values) and how many values were finite, each of the
    shape of one entry; NaN values are left out, and no warning is raised."""
    finite = np.isfinite(stack)
    n = finite.sum(axis=0)
    filled = np.where(finite, stack, 0.0)
    mean = ratio(filled.sum(axis=0), n.astype(float))
    dev = np.where(finite, stack - mean, 0.0)
    var = ratio((dev**2).sum(axis=0), (n - 1).astype(float))
    var = np.where(n >= 2, var, np.nan)
    sd = np.sqrt(var)
    half = t95(n - 1) * sd / np.sqrt(np.maximum(n, 1))
    return mean, sd, half, n


def ci_bounds(kpi: str, est: Estimate) -> tuple[float, float]:
    """The 95% CI of an estimate of ``kpi``, clipped to [0, 1] for a share (:data:`SHARE_KPIS`)
    and at 0 for times and counts, which are never negative; NaN without a half-width (one
    replication, or none with a value)."""
    if not math.isfinite(est.half_width):
        return math.nan, math.nan
    low, high = est.mean - est.half_width, est.mean + est.half_width
    if kpi in SHARE_KPIS:
        return max(low, 0.0), min(high, 1.0)
    return max(low, 0.0), high


def estimate(values: Sequence[float]) -> Estimate:
    """Mean, sd and 95% CI half-width (Student t) of replicate values; NaN values are skipped."""
    mean, sd, half, n = replication_moments(np.asarray(values, dtype=float).reshape(-1))
    return Estimate(float(mean), float(sd), float(half), int(n))


@dataclass(frozen=True)
class IntervalSummary:
    """Per-interval KPIs over replications: ``mean[kpi]`` and ``half_width[kpi]`` have shape
    (n_groups, n_intervals)."""

    groups: tuple[str, ...]
    start_s: np.ndarray
    mean: dict[str, np.ndarray]
    half_width: dict[str, np.ndarray]
    targets: tuple[float, ...]


#: The three verdicts: the whole 95% CI reaches the target, lies below it, or straddles it.
MET, NOT_MET, INCONCLUSIVE = "MET", "NOT MET", "INCONCLUSIVE"
#: Default least mean offered calls per replication for a group to get a verdict (config:
#: ``center.verdict_min_offered``): below it the group's SL is too noisy to judge.
MIN_OFFERED = 30.0


@dataclass(frozen=True)
class Verdict:
    """One KPI against its target: MET when the 95% CI lies at or above it, NOT MET when it
    lies below, INCONCLUSIVE when it straddles (one replication: the mean alone decides)."""

    kpi: str
    value: Estimate
    target: float
    status: str

    @property
    def met(self) -> bool:
        """True when the verdict is MET."""
        return self.status == MET


@dataclass(frozen=True)
class GroupVerdict:
    """The verdict of the center (``dim`` "center") or of one group of a dimension.

    ``volume`` is the mean offered calls per replication (answered calls by site); ``status``
    is NOT MET if any KPI misses, else INCONCLUSIVE if any straddles, else MET.
    """

    dim: str
    group: str
    volume: float
    verdicts: tuple[Verdict, ...]

    @property
    def status(self) -> str:
        """The group's overall verdict."""
        statuses = {v.status for v in self.verdicts}
        return NOT_MET if NOT_MET in statuses else INCONCLUSIVE if INCONCLUSIVE in statuses \
            else MET

    def get(self, kpi: str) -> Verdict | None:
        """The verdict on ``kpi``, or None when that KPI is not judged for this group."""
        return next((v for v in self.verdicts if v.kpi == kpi), None)


@dataclass(frozen=True)
class Summary:
    """Everything a report needs: run set-up, overall and per-group estimates, per-interval
    means with CI half-widths (key ``"all"`` and each dimension), and the verdicts."""

    n_replications: int
    seeds: tuple[int, ...]
    start_iso: str
    interval_s: float
    threshold_s: float
    target: float
    answer_rate_target: float
    min_volume: int
    t_source: str
    overall: dict[str, Estimate]
    groups: dict[str, dict[str, dict[str, Estimate]]]
    group_targets: dict[str, dict[str, float]]
    intervals: dict[str, IntervalSummary]
    verdicts: tuple[Verdict, ...]
    #: The center first, then every group with at least ``min_offered`` calls.
    group_verdicts: tuple[GroupVerdict, ...] = ()
    #: (dimension, group, volume) of groups with too few calls for a verdict.
    unjudged: tuple[tuple[str, str, float], ...] = ()
    min_offered: float = MIN_OFFERED
    #: IANA zone the report shows clock times in ("" = the run start's UTC offset).
    timezone: str = ""

    @property
    def meets_target(self) -> bool:
        """True when the center and every group with enough volume is MET on SL and CAR."""
        return all(v.met for v in self.verdicts) and all(
            g.status == MET for g in self.group_verdicts)

    @property
    def misses(self) -> tuple[GroupVerdict, ...]:
        """The center and groups that are NOT MET or INCONCLUSIVE, the center first."""
        return tuple(g for g in self.group_verdicts if g.status != MET)


def _estimates(rows: Sequence[dict[str, float]]) -> dict[str, Estimate]:
    """One Estimate per KPI from one row per replication."""
    stack = np.asarray([[row[k] for k in KPI_NAMES] for row in rows], dtype=float)
    mean, sd, half, n = replication_moments(stack.reshape(len(rows), len(KPI_NAMES)))
    return {k: Estimate(float(mean[i]), float(sd[i]), float(half[i]), int(n[i]))
            for i, k in enumerate(KPI_NAMES)}


def _interval_summary(tables: Sequence[IntervalTable]) -> IntervalSummary:
    """Stack per-interval tables of all replications (shorter runs padded with NaN)."""
    first = tables[0]
    for table in tables[1:]:
        if table.groups != first.groups:
            raise ValueError(f"replications disagree on {first.by} names: "
                             f"{first.groups} != {table.groups}")
    longest = max(tables, key=lambda tb: tb.start_s.size)
    n_int = longest.start_s.size
    mean: dict[str, np.ndarray] = {}
    half: dict[str, np.ndarray] = {}
    for k in INTERVAL_KPI_NAMES:
        stack = np.full((len(tables), len(first.groups), n_int), np.nan)
        for r, table in enumerate(tables):
            stack[r, :, : table.start_s.size] = table.values[k]
        mean[k], _sd, half[k], _n = replication_moments(stack)
    return IntervalSummary(first.groups, longest.start_s, mean, half, first.targets)


def summarise(results: Sequence[RunResult], by: Dimension | Sequence[Dimension] | None = DIMENSIONS,
              answer_rate_target: float = 0.96, min_volume: int = 10,
              min_offered: float = MIN_OFFERED, timezone: str = "") -> Summary:
    """Mean, sd and 95% CI half-width of every KPI over replications, overall and per group of
    each dimension in ``by`` (default: all four), per interval, and the target verdicts of the
    center and of each group with at least ``min_offered`` mean offered calls per replication
    (``min_volume`` is the least offered calls per *interval* for ``sl_consistency``);
    ``timezone`` is the IANA zone reports show clock times in."""
    if not results:
        raise ValueError("summarise needs at least one replication; got none")
    dims: tuple[Dimension, ...] = (() if by is None else (by,) if isinstance(by, str)
                                   else tuple(by))
    first = results[0]
    rows, tables = _per_replication(results, None, min_volume)
    overall = _estimates([r[0] for r in rows])
    groups: dict[str, dict[str, dict[str, Estimate]]] = {}
    group_targets: dict[str, dict[str, float]] = {}
    intervals = {ALL: _interval_summary(tables)}
    for dim in dims:
        rows, tables = _per_replication(results, dim, min_volume)
        intervals[dim] = _interval_summary(tables)  # first, as it checks the names agree
        names = tables[0].groups
        groups[dim] = {g: _estimates([r[i] for r in rows]) for i, g in enumerate(names)}
        group_targets[dim] = dict(zip(names, tables[0].targets, strict=True))
    verdicts = (
        _verdict("sl_offered", overall["sl_offered"], first.target),
        _verdict("answer_rate", overall["answer_rate"], answer_rate_target),
    )
    judged = [GroupVerdict("center", ALL, overall["offered"].mean, verdicts)]
    unjudged: list[tuple[str, str, float]] = []
    for name, rows_by_group in groups.items():
        for group, row in rows_by_group.items():
            g = _group_verdict(name, group, row, group_targets[name][group], answer_rate_target)
            if g.volume >= min_offered:
                judged.append(g)
            else:
                unjudged.append((name, group, g.volume))
    return Summary(len(results), tuple(r.seed for r in results), first.start_iso,
                   first.interval_s, first.threshold_s, first.target, answer_rate_target,
                   min_volume, T_SOURCE, overall, groups, group_targets, intervals, verdicts,
                   tuple(judged), tuple(unjudged), min_offered, timezone)


def _group_verdict(dim: str, group: str, row: dict[str, Estimate], sl_target: float,
                   answer_rate_target: float) -> GroupVerdict:
    """SL and CAR of one group against its targets; by answering site only ``sl_answered``
    is defined, so a site is judged on it alone."""
    if dim == "site":
        return GroupVerdict(dim, group, row["answered"].mean,
                            (_verdict("sl_answered", row["sl_answered"], sl_target),))
    volume = row["offered"].mean if math.isfinite(row["offered"].mean) else 0.0
    return GroupVerdict(dim, group, volume,
                        (_verdict("sl_offered", row["sl_offered"], sl_target),
                         _verdict("answer_rate", row["answer_rate"], answer_rate_target)))


def _per_replication(results: Sequence[RunResult], by: Dimension | None, min_volume: int
                     ) -> tuple[list[list[dict[str, float]]], list[IntervalTable]]:
    """KPI rows and interval table of each replication, from one grid of tallies each."""
    rows: list[list[dict[str, float]]] = []
    tables: list[IntervalTable] = []
    for result in results:
        names, n_int, grid = _grid(result, by)
        rows.append(_kpi_rows(result, by, names, grid, min_volume))
        tables.append(_interval_table(result, by, names, n_int, grid))
    return rows, tables


def judge(value: Estimate, target: float) -> str:
    """MET when the CI's lower end reaches the target, NOT MET when its upper end is below,
    INCONCLUSIVE otherwise; without a CI (one replication) the mean decides; NaN is NOT MET."""
    if not math.isfinite(value.mean):
        return NOT_MET
    half = value.half_width if math.isfinite(value.half_width) else 0.0
    if value.mean - half >= target - _EPS:
        return MET
    if value.mean + half < target - _EPS:
        return NOT_MET
    return INCONCLUSIVE


def _verdict(kpi: str, value: Estimate, target: float) -> Verdict:
    """The verdict on one KPI over replications."""
    return Verdict(kpi, value, target, judge(value, target))
