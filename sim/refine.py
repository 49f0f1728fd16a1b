"""Refine a confirmed staffing interval by interval with the center simulation.

The factor search (:func:`sim.confirm.search`) scales each (queue, language) group's Erlang
counts by one factor for the whole day, so the interval that needs the most over Erlang (say the
one after a peak, which inherits the peak's queue and its calls in progress) sets the factor and
every other interval is over-staffed. This module then moves single intervals, in the spirit of
the iterative staffing algorithm for time-varying queues (Feldman, Mandelbaum, Massey and Whitt,
2008): simulate the whole day (intervals interact through the queue they carry over) with common
random numbers, and per judged (interval, group)

- **add** agents where the 95% CI of ``sl_offered`` lies wholly below the target, and the
  interval's mean SL is below the target on independent callers too (fresh replication seeds);
- **try removing** agents where the CI's lower bound is above the target by a margin; the
  removals are simulated again on those independent callers (the callers that made an
  interval look good cannot also vouch for it), and one is put back if its interval's
  CI there no longer lies at or above the target, or if a judged interval (the same one or a
  later one of its queue) falls below the target by the mean.

Steps are sized by Erlang C at the *effective* load: the load under which Erlang C gives the SL
the simulation measured with the current count (so carry-over, the lag of the load behind a
rising arrival rate, answer delay and routing show up as a higher or lower load). A removal goes
at most down to Erlang's count in one step, never to the offered load or below, and never to a
count already seen to miss (after a refuted removal it bisects). The first interval only gains
agents: its run starts with nobody waiting, which flatters it. An interval moves only when its
CI clearly says so, so where Erlang C is exact the result stays Erlang C's. Rounds stop when no
interval wants to move, or at the round cap.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from sim.confirm import Evaluation, Searcher
from sim.erlang import agents_for_service_level, service_level_c

#: A removal is tried only where the SL CI's lower bound beats the target by this much.
REMOVE_MARGIN = 0.01
#: Re-simulations per round that put back the removals which hurt an interval.
VERIFY_PASSES = 3
#: Intervals after a removal that it is held responsible for (calls it leaves waiting).
CARRY_INTERVALS = 2


@dataclass(frozen=True)
class Refinement:
    """The refined staffing, its simulated SL, and what the refinement cost."""

    counts: np.ndarray  # (n_intervals, n_cells) agents
    final: Evaluation
    rounds: int
    #: True when the rounds stopped because no judged interval wanted to move.
    converged: bool
    #: Agent-intervals added and removed against the seed.
    added: int
    removed: int
    candidates: int
    replications_run: int
    cpu_s: float
    wall_s: float
    #: Per round, the agent-intervals it added and removed (after its checks).
    moves: tuple[tuple[int, int], ...] = ()

    def summary(self) -> str:
        """One line for the planner: rounds, moves, and what they cost."""
        why = "no interval wants to move" if self.converged else "round cap"
        steps = ", ".join(f"+{a}/-{r}" for a, r in self.moves)
        return (f"per-interval refinement: {self.rounds} round(s) ({why}), +{self.added} / "
                f"-{self.removed} agent-intervals against the factor search"
                f"{f' (by round: {steps})' if steps else ''}; "
                f"{self.candidates} candidate(s), {self.replications_run} replication(s), "
                f"{self.cpu_s:.0f} s CPU, {self.wall_s:.0f} s")


@dataclass(frozen=True)
class Cells:
    """What the refinement knows of each (interval, group) besides its simulated SL."""

    erlang: np.ndarray  # (n, m) Erlang's counts: where a first removal step stops
    load: np.ndarray  # (n, m) offered load, Erlangs
    aht_s: np.ndarray  # (m,)
    threshold_s: np.ndarray  # (m,)
    queue: np.ndarray  # (m,) queue index of each group
    minimum: int = 1


def effective_rate(sl: float, agents: int, aht: float, threshold: float) -> float:
    """The arrival rate under which Erlang C with ``agents`` gives service level ``sl``."""
    top = agents / aht * (1.0 - 1e-9)
    low = top * 1e-6

    def gap(rate: float) -> float:
        return service_level_c(rate, aht, agents, threshold) - sl

    if gap(low) <= 0:
        return low
    if gap(top) >= 0:
        return top
    return float(brentq(gap, low, top, xtol=top * 1e-6))


def sized(sl: float, agents: int, aht: float, threshold: float, target: float) -> int:
    """Agents that Erlang C says meet ``target`` at the effective load of (``agents``, ``sl``)."""
    if agents <= 0:
        return 1
    rate = effective_rate(sl, agents, aht, threshold)
    return agents_for_service_level(rate, aht, threshold, target)


def propose(counts: np.ndarray, ev: Evaluation, judged: np.ndarray, targets: np.ndarray,
            cells: Cells, failed: np.ndarray, met: np.ndarray) -> np.ndarray:
    """The next candidate: agents added where the SL CI is below target (not at a count seen
    to meet it), removed where its lower bound clears the target by :data:`REMOVE_MARGIN`
    (never to a count seen to miss)."""
    t = targets[None, :]
    est = ev.cells
    with np.errstate(invalid="ignore"):
        below = judged & (est.high < t) & (counts != met)
        above = judged & (est.low > t + REMOVE_MARGIN) & (counts - 1 > failed)
    above[0, :] = False  # the run starts empty: the first interval looks better than it is
    out = counts.copy()
    for i, k in zip(*np.nonzero(below), strict=True):
        n = int(counts[i, k])
        want = sized(float(est.mean[i, k]), n, cells.aht_s[k], cells.threshold_s[k],
                     float(targets[k]))
        out[i, k] = max(n + 1, want)
    for i, k in zip(*np.nonzero(above), strict=True):
        n = int(counts[i, k])
        lowest = sized(float(est.mean[i, k]), n, cells.aht_s[k], cells.threshold_s[k],
                       float(targets[k]))
        anchor = int(cells.erlang[i, k])
        lowest = max(lowest, anchor if n > anchor else 0, cells.minimum,
                     math.floor(cells.load[i, k]) + 1)
        if failed[i, k] >= 0:  # bisect between the count that missed and this one
            lowest = max(lowest, (int(failed[i, k]) + n + 1) // 2)
        out[i, k] = min(n, lowest)
    return out


def culprits(hurt: np.ndarray, down: np.ndarray, queue: np.ndarray) -> np.ndarray:
    """The removals held responsible for the intervals in ``hurt``: the same group's in that
    interval or the :data:`CARRY_INTERVALS` before it, else its queue's other groups' there."""
    out = np.zeros_like(down)
    for i, k in zip(*np.nonzero(hurt), strict=True):
        lo = max(0, int(i) - CARRY_INTERVALS)
        own = down[lo:i + 1, k]
        if own.any():
            out[lo:i + 1, k] |= own
            continue
        same_queue = queue == queue[k]
        out[lo:i + 1] |= down[lo:i + 1] & same_queue[None, :]
    return out


def refine(searcher: Searcher, seed: np.ndarray, cells: Cells, rounds: int) -> Refinement:
    """Up to ``rounds`` rounds of per-interval moves from ``seed`` (module docstring), judged on
    the searcher's judged intervals of the groups not judged as a whole; every move is checked
    on independent callers (:meth:`Searcher.fresh`)."""
    t0 = time.monotonic()
    reps0, cands0, cpu0 = searcher.replications_run, searcher.candidates, searcher.cpu_s
    checker = searcher.fresh()
    judged = searcher.judged & ~searcher.pooled[None, :]
    t = searcher.targets[None, :]
    counts = seed.astype(np.int64).copy()
    ev = searcher.evaluate(counts)
    failed = np.full(counts.shape, -1, dtype=np.int64)  # largest count seen to miss
    met = np.full(counts.shape, -1, dtype=np.int64)  # a count seen to meet (no add there)
    converged = False
    ran = 0
    moves: list[tuple[int, int]] = []
    while ran < rounds:
        trial = propose(counts, ev, judged, searcher.targets, cells, failed, met)
        if np.array_equal(trial, counts):
            converged = True
            break
        ran += 1
        up = trial > counts
        if up.any():  # the checker's callers must find the interval short too
            with np.errstate(invalid="ignore"):
                doubt = up & ~(checker.evaluate(counts).cells.mean < t)
            met = np.where(doubt, counts, met)
            trial = np.where(doubt, counts, trial)
        if (trial < counts).any():
            trial = _checked(checker, counts, trial, judged, t, cells.queue, failed)
        moves.append((int(np.maximum(trial - counts, 0).sum()),
                      int(np.maximum(counts - trial, 0).sum())))
        counts, ev = trial, searcher.evaluate(trial)
    return Refinement(counts, ev, ran, converged,
                      int(np.maximum(counts - seed, 0).sum()),
                      int(np.maximum(seed - counts, 0).sum()),
                      searcher.candidates - cands0 + checker.candidates,
                      searcher.replications_run - reps0 + checker.replications_run,
                      searcher.cpu_s - cpu0 + checker.cpu_s, time.monotonic() - t0,
                      tuple(moves))


def _checked(checker: Searcher, counts: np.ndarray, trial: np.ndarray, judged: np.ndarray,
             t: np.ndarray, queue: np.ndarray, failed: np.ndarray) -> np.ndarray:
    """``trial`` without the removals that the checker's callers refute: a removed interval
    whose SL CI no longer lies wholly at or above the target, or one that makes an interval
    (the same one or a later one of its queue) fall below the target by the mean. Refuted
    counts are written into ``failed``."""
    with np.errstate(invalid="ignore"):
        was_met = ~(checker.evaluate(counts).cells.mean < t)
    for attempt in range(VERIFY_PASSES):
        est = checker.evaluate(trial).cells
        down = trial < counts
        with np.errstate(invalid="ignore"):
            hurt = judged & was_met & (est.mean < t)
            weak = down & ~(est.low >= t)
        blamed = culprits(hurt, down, queue) | weak
        if not blamed.any():
            break
        if attempt == VERIFY_PASSES - 1:  # still refuted: keep this round's additions only
            blamed = down
        np.copyto(failed, np.where(blamed, np.maximum(failed, trial), failed))
        trial = np.where(blamed, counts, trial)
    return trial
