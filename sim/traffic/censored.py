"""What a replayed log did not observe, drawn afresh each replication (docs/traffic.md).

A call log shows each abandoned caller's patience (their wait), but of an answered caller only
that their patience outlasted their wait, and of an abandoned caller no talk time. Replaying
answered calls as infinitely patient would keep a slower center from losing more callers than
the log did; giving abandoned calls one fixed talk time would make every replication the same.

- **Patience**: the Kaplan-Meier estimate of the log's patience, with abandons as events and
  every other call (answered, let go by the queue) censored at its wait (``scipy.stats.ecdf``).
  An answered call's patience is drawn from it conditioned on exceeding its observed wait.
  Beyond the longest observed wait the curve is continued by an exponential tail whose mean is
  the exponential MLE over the whole log (total waiting time / abandons).
- **Talk**: calls whose talk the log does not know (abandoned, overflowed) draw one from the
  talk times of the answered calls of their queue (of all queues when theirs has none).
- **Volume**: ``scale`` < 1 keeps each call with that probability; > 1 adds copies of calls
  (``floor(scale) - 1`` each, plus one more with probability ``scale % 1``) whose arrival is
  moved by up to :data:`JITTER_S` either way, clipped to the log's span.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from sim.traffic.arrival import Arrival

#: Resampled copies of calls (``scale`` > 1) move by up to this many seconds either way.
JITTER_S = 900.0


@dataclass(frozen=True)
class PatienceModel:
    """Kaplan-Meier survival of patience at the log's abandon times, with an exponential tail.

    ``times`` are the distinct abandon times and ``survival`` P(patience > t) just after each;
    ``tail_mean_s`` is the exponential MLE mean (inf when the log has no abandon).
    """

    times: np.ndarray
    survival: np.ndarray
    end_s: float
    tail_mean_s: float
    events: int
    censored: int

    def survival_at(self, t: np.ndarray) -> np.ndarray:
        """P(patience > t) for each ``t``."""
        k = np.searchsorted(self.times, t, side="right")
        padded = np.concatenate(([1.0], self.survival))
        return padded[k]

    def draw_beyond(self, wait_s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One patience per caller, each drawn given that it exceeds that caller's wait."""
        n = len(wait_s)
        if self.events == 0:
            return np.full(n, math.inf)
        target = rng.random(n) * self.survival_at(wait_s)
        # The first abandon time at which survival has fallen to the target (non-increasing).
        k = np.searchsorted(-self.survival, -target, side="left")
        inside = k < len(self.times)
        tail = np.maximum(self.end_s, wait_s) + rng.exponential(self.tail_mean_s, n)
        return np.where(inside, self.times[np.minimum(k, len(self.times) - 1)], tail)


def fit_patience(calls: Sequence[Arrival]) -> PatienceModel | None:
    """The log's patience model, or None when no call's wait is known (nothing to condition)."""
    abandoned = [c.patience_s for c in calls if not math.isinf(c.patience_s)]
    waited = [c.wait_s for c in calls if math.isinf(c.patience_s) and c.wait_s is not None]
    if not waited:
        return None
    if not abandoned:
        return PatienceModel(np.zeros(0), np.zeros(0), max(waited), math.inf, 0, len(waited))
    from scipy import stats  # here: importing it costs every simulation 0.3-0.6 s

    data = stats.CensoredData(uncensored=np.asarray(abandoned, dtype=float),
                              right=np.asarray(waited, dtype=float))
    sf = stats.ecdf(data).sf
    times = np.asarray(sf.quantiles, dtype=float)
    survival = np.asarray(sf.probabilities, dtype=float)
    keep = np.isin(times, np.asarray(abandoned, dtype=float))  # steps fall at events only
    exposure = float(np.sum(abandoned) + np.sum(waited))
    return PatienceModel(times[keep], survival[keep], max(max(abandoned), max(waited)),
                         max(exposure, 1.0) / len(abandoned), len(abandoned), len(waited))


def scale_calls(calls: Sequence[Arrival], scale: float, rng: np.random.Generator
                ) -> list[Arrival]:
    """The calls thinned (``scale`` < 1) or resampled with jittered copies (> 1), by time."""
    if scale == 1.0 or not calls:
        return list(calls)
    if scale < 1.0:
        keep = rng.random(len(calls)) < scale
        return [c for c, k in zip(calls, keep.tolist(), strict=True) if k]
    whole = math.floor(scale)
    extra = (whole - 1) + (rng.random(len(calls)) < scale - whole)
    first, last = calls[0].t, max(c.t for c in calls)
    out = list(calls)
    for c, copies in zip(calls, extra.tolist(), strict=True):
        for shift in rng.uniform(-JITTER_S, JITTER_S, copies).tolist():
            out.append(replace(c, t=min(max(c.t + shift, first), last)))
    out.sort(key=lambda a: a.t)
    return out


def redraw_unobserved(calls: Sequence[Arrival], rng: np.random.Generator,
                      patience: PatienceModel | None) -> list[Arrival]:
    """The calls with the patience of callers who did not abandon and the talk of calls that
    were not answered drawn afresh (see the module's description)."""
    talks: dict[str, list[float]] = {}
    for c in calls:
        if c.talk_known and math.isinf(c.patience_s):
            talks.setdefault(c.queue, []).append(c.talk_s)
    pool = {q: np.asarray(v) for q, v in talks.items()}
    everything = np.concatenate(list(pool.values())) if pool else np.zeros(0)
    patient = [i for i, c in enumerate(calls)
               if math.isinf(c.patience_s) and c.wait_s is not None]
    drawn = patience.draw_beyond(np.asarray([calls[i].wait_s for i in patient], dtype=float),
                                 rng) if patience is not None and patient else np.zeros(0)
    new_patience = dict(zip(patient, drawn.tolist(), strict=True))
    out = []
    for i, c in enumerate(calls):
        changes: dict[str, float] = {}
        if i in new_patience:
            changes["patience_s"] = new_patience[i]
        if not c.talk_known:
            own = pool.get(c.queue, everything)
            if len(own):
                changes["talk_s"] = float(own[rng.integers(len(own))])
        out.append(replace(c, **changes) if changes else c)  # type: ignore[arg-type]
    return out
