"""Forecast traffic: a piecewise-constant Poisson rate per interval and per call stream.

Each interval's count is drawn as N ~ Poisson(lambda * dt) and the N arrival times are uniform
in the interval (exact for a piecewise-constant rate). Optional gamma-Poisson over-dispersion
multiplies every stream's rate by a Gamma(k, 1/k) factor per interval and/or per day; the
factor is shared by all streams because the dispersion was measured on total counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.traffic.arrival import Arrival
from sim.traffic.callers import caller_numbers
from sim.traffic.distributions import Distribution


@dataclass(frozen=True, slots=True)
class Stream:
    """One kind of call: the queue (skill) it asks for, the caller's language and country."""

    queue: str
    language: str
    country: str


@dataclass(frozen=True)
class QueueHandling:
    """How calls of one queue behave: talk, patience and wrap-up distributions, priority.

    ``patience`` None means callers never abandon; ``wrap`` None means the queue's configured
    default; ``talk_by_language`` overrides ``talk`` for calls in that language.
    """

    talk: Distribution
    patience: Distribution | None = None
    wrap: Distribution | None = None
    priority: int = 0
    talk_by_language: Mapping[str, Distribution] = field(default_factory=dict)


@dataclass(frozen=True)
class Overdispersion:
    """Gamma-Poisson shapes (variance = m + m^2/k); None switches that level off."""

    interval_shape: float | None = None
    day_shape: float | None = None


def _gamma_factors(rng: np.random.Generator, shape: float | None, n: int) -> np.ndarray:
    if shape is None:
        return np.ones(n)
    return rng.gamma(shape, 1.0 / shape, n)


@dataclass(frozen=True)
class ForecastSource:
    """Expected calls per interval (rows) and stream (columns), intervals of ``interval_s``.

    ``day_of_interval`` gives each interval's calendar day (for per-day over-dispersion);
    ``offset_s`` is when interval 0 starts relative to the run's start (<= 0), and arrivals
    before 0 or at/after ``horizon_s`` are dropped, which thins partial intervals exactly.
    """

    streams: Sequence[Stream]
    expected: np.ndarray
    interval_s: float
    handling: Mapping[str, QueueHandling]
    day_of_interval: np.ndarray | None = None
    overdispersion: Overdispersion = Overdispersion()
    offset_s: float = 0.0
    horizon_s: float = math.inf

    def generate(self, rng: np.random.Generator, scale: float = 1.0) -> ArrivalBatch:
        """Draw the arrivals, sorted by time, as columns (vectorised numpy)."""
        if scale < 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a finite number >= 0, got {scale}")
        n_int, n_streams = self.expected.shape
        days = self.day_of_interval if self.day_of_interval is not None \
            else np.zeros(n_int, dtype=int)
        factor = _gamma_factors(rng, self.overdispersion.day_shape, int(days.max(initial=0)) + 1)
        factor = factor[days] * _gamma_factors(rng, self.overdispersion.interval_shape, n_int)
        counts = rng.poisson(self.expected * (scale * factor)[:, None])
        flat = np.repeat(np.arange(n_int * n_streams), counts.ravel())
        interval, stream = np.divmod(flat, n_streams)
        t = self.offset_s + (interval + rng.random(len(flat))) * self.interval_s
        keep = (t >= 0) & (t < self.horizon_s)
        t, stream = t[keep], stream[keep]
        order = np.argsort(t, kind="stable")
        t, stream = t[order], stream[order]
        return self._arrivals(rng, t, stream)

    def _arrivals(self, rng: np.random.Generator, t: np.ndarray, stream: np.ndarray
                  ) -> ArrivalBatch:
        n = len(t)
        queues = sorted({s.queue for s in self.streams})
        q_of = np.array([queues.index(s.queue) for s in self.streams], dtype=int)[stream]
        talk = np.empty(n)
        patience = np.full(n, math.inf)
        wrap = np.full(n, np.nan)
        priority = np.zeros(n, dtype=int)
        languages = sorted({s.language for s in self.streams})
        l_of = np.array([languages.index(s.language) for s in self.streams], dtype=int)[stream]
        for qi, name in enumerate(queues):
            in_queue = q_of == qi
            rows = np.flatnonzero(in_queue)
            h = self.handling[name]
            special = np.zeros(n, dtype=bool)
            for language, dist in sorted(h.talk_by_language.items()):
                if language not in languages:
                    continue
                lang_rows = in_queue & (l_of == languages.index(language))
                talk[lang_rows] = dist.sample(rng, int(lang_rows.sum()))
                special |= lang_rows
            plain = np.flatnonzero(in_queue & ~special)
            talk[plain] = h.talk.sample(rng, len(plain))
            if h.patience is not None:
                patience[rows] = h.patience.sample(rng, len(rows))
            if h.wrap is not None:
                wrap[rows] = h.wrap.sample(rng, len(rows))
            priority[rows] = h.priority
        countries = sorted({s.country for s in self.streams})
        c_of = np.array([countries.index(s.country) for s in self.streams], dtype=int)[stream]
        numbers: list[str | None] = [None] * n
        for ci, country in enumerate(countries):
            rows = np.flatnonzero(c_of == ci)
            drawn = caller_numbers(country, rng, len(rows))
            for row, number in zip(rows.tolist(), drawn, strict=True):
                numbers[row] = number
        return ArrivalBatch(t, stream, tuple(self.streams), numbers, priority, talk, patience,
                            wrap)


@dataclass(frozen=True, eq=False)
class ArrivalBatch:
    """Generated arrivals as columns (numpy arrays); iterating builds Arrival objects lazily.

    The simulator pulls arrivals one at a time, so the cost of building objects is spread over
    the run; analysis code can use the columns directly.
    """

    t: np.ndarray
    stream: np.ndarray
    streams: tuple[Stream, ...]
    caller_number: list[str | None]
    priority: np.ndarray
    talk_s: np.ndarray
    patience_s: np.ndarray
    wrap_s: np.ndarray  # NaN = the queue's default wrap-up

    def __len__(self) -> int:
        return len(self.t)

    def __iter__(self) -> Iterator[Arrival]:
        info = [(s.queue, s.language, s.country) for s in self.streams]
        wraps = [None if math.isnan(w) else w for w in self.wrap_s.tolist()]
        for t, s, number, priority, talk, patience, wrap in zip(
            self.t.tolist(), self.stream.tolist(), self.caller_number, self.priority.tolist(),
            self.talk_s.tolist(), self.patience_s.tolist(), wraps, strict=True,
        ):
            queue, language, country = info[s]
            yield Arrival(t, queue, language, country, number, priority, talk, patience, wrap)

    def take(self, positions: np.ndarray) -> list[Arrival]:
        """The arrivals at ``positions`` (an index array), equal to those iterating builds: a
        run can build its callers a block at a time instead of all at once."""
        info = [(s.queue, s.language, s.country) for s in self.streams]
        numbers = self.caller_number
        wraps = [None if math.isnan(w) else w for w in self.wrap_s[positions].tolist()]
        out = []
        for i, t, s, priority, talk, patience, wrap in zip(
            positions.tolist(), self.t[positions].tolist(), self.stream[positions].tolist(),
            self.priority[positions].tolist(), self.talk_s[positions].tolist(),
            self.patience_s[positions].tolist(), wraps, strict=True,
        ):
            queue, language, country = info[s]
            out.append(Arrival(t, queue, language, country, numbers[i], priority, talk,
                               patience, wrap))
        return out

    def column(self, name: str) -> np.ndarray:
        """Per-arrival stream attribute (``queue``, ``language`` or ``country``) as an array."""
        values = np.array([getattr(s, name) for s in self.streams], dtype=object)
        return values[self.stream]
