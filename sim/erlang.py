"""Exact queueing formulas for a single queue: Erlang B, Erlang C (M/M/c), Erlang A (M/M/c+M).

Units: ``rate`` is calls per second, ``aht`` (average handle time) and ``patience`` (the mean
of the exponential time a caller is willing to wait) are seconds, ``threshold`` is the service
level threshold T in seconds. Service level is named as everywhere in the project:

- ``sl_offered`` = calls answered within T / calls offered (the primary figure);
- ``sl_answered`` = calls answered within T / calls answered (Asterisk's ``servicelevel``).

In Erlang C nobody abandons, so both are P(wait <= T). Erlang A follows Garnett, Mandelbaum &
Reiman (2002) and Mandelbaum & Zeltyn's summary of M/M/n+G performance measures; every sum is
evaluated exactly in log space, so hundreds of agents and hundreds of Erlangs are safe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

#: A series term this far (in natural log) below the largest term no longer moves a double.
_LOG_TAIL = 45.0
#: Refuse series longer than this (only overloaded queues with near-infinite patience need it).
_MAX_TERMS = 20_000_000
#: Staffing search gives up beyond this many agents.
_MAX_AGENTS = 1_000_000

Model = Literal["C", "A"]
Measure = Literal["offered", "answered"]


def _check_nonnegative(name: str, value: float) -> None:
    if not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_agents(agents: int) -> None:
    if isinstance(agents, bool) or not isinstance(agents, int | np.integer) or agents < 0:
        raise ValueError(f"agents must be an integer >= 0, got {agents!r}")


def offered_load(rate: float, aht: float) -> float:
    """Offered load in Erlangs: arrival rate (calls/s) times average handle time (s)."""
    _check_nonnegative("rate", rate)
    _check_positive("aht", aht)
    return rate * aht


def erlang_b(agents: int, load: float) -> float:
    """Blocking probability of M/M/c/c with ``load`` Erlangs, by the stable recursion."""
    _check_agents(agents)
    _check_nonnegative("load", load)
    if min(agents, load) > _MAX_AGENTS:
        raise ValueError(f"Erlang B of {agents} agents and {load:.6g} Erlangs needs more than "
                         f"{_MAX_AGENTS} steps")
    blocking = 1.0
    for k in range(1, int(agents) + 1):
        blocking = load * blocking / (k + load * blocking)
        if blocking == 0.0:
            break  # underflowed: every further step keeps it exactly 0
    return blocking


def _erlang_c_from_b(agents: int, load: float, blocking: float) -> float:
    if load >= agents:
        return 1.0
    return agents * blocking / (agents - load * (1.0 - blocking))


def erlang_c(agents: int, load: float) -> float:
    """Probability that a call waits (all agents busy) in M/M/c; 1 when ``load >= agents``."""
    return _erlang_c_from_b(agents, load, erlang_b(agents, load))


def _sl_c(agents: int, load: float, aht: float, threshold: float, blocking: float) -> float:
    if load == 0:
        return 1.0
    if load >= agents:
        return 0.0
    p_wait = _erlang_c_from_b(agents, load, blocking)
    return 1.0 - p_wait * math.exp(-(agents - load) * threshold / aht)


def service_level_c(rate: float, aht: float, agents: int, threshold: float) -> float:
    """Erlang C P(wait <= threshold); equals both ``sl_offered`` and ``sl_answered`` (no abandons).

    An unstable queue (load >= agents) has service level 0.
    """
    load = offered_load(rate, aht)
    _check_nonnegative("threshold", threshold)
    return _sl_c(agents, load, aht, threshold, erlang_b(agents, load))


def asa_c(rate: float, aht: float, agents: int) -> float:
    """Erlang C average speed of answer (mean wait of all calls, s); ``inf`` when unstable."""
    load = offered_load(rate, aht)
    if load == 0:
        return 0.0
    if load >= agents:
        return math.inf
    return erlang_c(agents, load) * aht / (agents - load)


def occupancy_c(rate: float, aht: float, agents: int) -> float:
    """Share of agent time spent handling calls, ``load / agents`` capped at 1."""
    load = offered_load(rate, aht)
    _check_agents(agents)
    if agents == 0:
        return 1.0 if load > 0 else 0.0
    return min(1.0, load / agents)


def _log_terms(a: float, v: float) -> npt.NDArray[np.float64]:
    """Logs of the terms t_k = v**k / ((a+1)(a+2)...(a+k)), k = 0, 1, ..., until negligible."""
    if v == 0:
        return np.zeros(1)
    if v - a > _MAX_TERMS:  # the terms rise until k = v - a: refuse before computing any
        raise ValueError(
            f"Erlang A series for x={a:.6g}, y={v:.6g} needs more than {_MAX_TERMS} terms; "
            "the queue is overloaded with near-infinite patience"
        )
    log_v = math.log(v)
    chunks = [np.zeros(1)]
    last = peak = 0.0
    start = 1
    size = 256 + int(4 * math.sqrt(v))
    while True:
        k = np.arange(start, start + size, dtype=np.float64)
        logs = last + np.cumsum(log_v - np.log(a + k))
        chunks.append(logs)
        peak = max(peak, float(logs.max()))
        last = float(logs[-1])
        start += size
        # Past the peak the ratio v/(a+k) only falls, so the tail is bounded geometrically.
        if last < peak - _LOG_TAIL and v < a + start:
            return np.concatenate(chunks)
        if start > _MAX_TERMS:
            raise ValueError(
                f"Erlang A series for x={a:.6g}, y={v:.6g} needs more than {_MAX_TERMS} terms; "
                "the queue is overloaded with near-infinite patience"
            )
        size *= 2


def _logsumexp(logs: npt.NDArray[np.float64]) -> float:
    top = float(logs.max())
    return top + math.log(float(np.exp(logs - top).sum()))


@dataclass(frozen=True)
class ErlangA:
    """Exact steady state of M/M/c+M: Poisson calls, exponential handle time and patience.

    Build with ``ErlangA(rate, aht, agents, patience)``; ``patience=math.inf`` gives Erlang C.
    Probabilities refer to an arriving call (PASTA): ``p_wait`` that it finds every agent busy,
    ``p_abandon`` that it hangs up before an answer.
    """

    rate: float
    aht: float
    agents: int
    patience: float
    p_wait: float = field(init=False)
    p_abandon: float = field(init=False)
    #: Mean wait of answered calls (average speed of answer), seconds; nan if none is answered.
    asa: float = field(init=False)
    _log_pi_n: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        load = offered_load(self.rate, self.aht)
        _check_agents(self.agents)
        if not self.patience > 0:
            raise ValueError(f"patience must be > 0 seconds, got {self.patience!r}")
        n = int(self.agents)
        blocking = erlang_b(n, load)
        if math.isinf(self.patience):
            self._set_erlang_c(n, load, blocking)
        elif load == 0 or blocking == 0.0:
            # No calls, or so many agents that a call waits with probability below 1e-308.
            self._set(p_wait=0.0, p_abandon=0.0, asa=0.0, log_pi_n=-math.inf)
        else:
            self._set_erlang_a(n, blocking)

    def _set(self, p_wait: float, p_abandon: float, asa: float, log_pi_n: float) -> None:
        object.__setattr__(self, "p_wait", p_wait)
        object.__setattr__(self, "p_abandon", p_abandon)
        object.__setattr__(self, "asa", asa)
        object.__setattr__(self, "_log_pi_n", log_pi_n)

    def _set_erlang_c(self, n: int, load: float, blocking: float) -> None:
        p_wait = _erlang_c_from_b(n, load, blocking) if load > 0 else 0.0
        if load >= n and load > 0:
            raise ValueError(
                f"Erlang C (infinite patience) is unstable: load {load:.6g} >= agents {n}"
            )
        asa = p_wait * self.aht / (n - load) if load > 0 else 0.0
        self._set(p_wait=p_wait, p_abandon=0.0, asa=asa, log_pi_n=-math.inf)

    @property
    def _theta(self) -> float:
        return 1.0 / self.patience

    @property
    def _x(self) -> float:
        """Service capacity over abandonment rate, n * mu / theta."""
        return self.agents * self.patience / self.aht

    @property
    def _y(self) -> float:
        """Arrival rate over abandonment rate, lambda / theta."""
        return self.rate * self.patience

    def _set_erlang_a(self, n: int, blocking: float) -> None:
        x, y = self._x, self._y
        # w_j = P(j callers queued) / P(n busy, none queued) = y^j / ((x+1)...(x+j)).
        log_w = _log_terms(x, y)
        log_a = _logsumexp(log_w)
        # P(wait) = A*B / (1 + (A-1)*B) (Mandelbaum & Zeltyn), written to avoid overflow in A.
        if blocking <= 0.0:
            p_wait = 0.0
        else:
            # 1 / (1 + (1-B) e^k) with k = -log(A*B), arranged so neither sign of k overflows.
            k = -(log_a + math.log(blocking))
            if k > 0:
                p_wait = math.exp(-k) / (math.exp(-k) + (1.0 - blocking))
            else:
                p_wait = 1.0 / (1.0 + (1.0 - blocking) * math.exp(k))
        log_pi_n = math.log(p_wait) - log_a
        j = np.arange(log_w.size, dtype=np.float64)
        weights = np.exp(log_w + log_pi_n)
        # Abandon rate theta*E[queue] over arrival rate: a positive sum, no cancellation.
        p_abandon = float((j * weights).sum()) / y
        if n == 0:
            self._set(p_wait=1.0, p_abandon=1.0, asa=math.nan, log_pi_n=log_pi_n)
            return
        # With j queued ahead, e^{-theta V} ~ Beta(x, j+1); E[V e^{-theta V}] gives the
        # answered calls' total wait: x/(x+j+1) * (psi(x+j+2) - psi(x+1)) / theta.
        harmonic = np.cumsum(1.0 / (x + j + 1.0))
        answered_wait = float((weights * x / (x + j + 1.0) * harmonic).sum()) * self.patience
        answered = 1.0 - p_abandon
        asa = answered_wait / answered if answered > 0 else math.nan
        self._set(p_wait=p_wait, p_abandon=p_abandon, asa=asa, log_pi_n=log_pi_n)

    @property
    def answer_rate(self) -> float:
        """Share of offered calls that are answered (CAR = answered / offered)."""
        return 1.0 - self.p_abandon

    @property
    def mean_wait(self) -> float:
        """Mean time in queue over all offered calls, answered or abandoned (seconds)."""
        if math.isinf(self.patience):
            return self.asa
        return self.p_abandon * self.patience

    @property
    def occupancy(self) -> float:
        """Share of agent time spent handling the calls that are answered."""
        if self.agents == 0:
            return 0.0
        return min(1.0, self.rate * self.aht * self.answer_rate / self.agents)

    def _answered_after(self, threshold: float) -> float:
        """P(a call is answered after waiting more than ``threshold`` seconds)."""
        _check_nonnegative("threshold", threshold)
        if self.p_wait == 0.0:
            return 0.0
        if math.isinf(self.patience):
            load = self.rate * self.aht
            return self.p_wait * math.exp(-(self.agents - load) * threshold / self.aht)
        if self.agents == 0:
            return 0.0
        x, y = self._x, self._y
        theta_t = self._theta * threshold
        v = y * math.exp(-theta_t)
        # (C/y) * gamma(x+1, v) with C = pi_n x e^y y^-x, gamma(a, v) = v^a e^-v S(a, v) / a.
        log_g = (
            self._log_pi_n
            + math.log(x / (x + 1.0))
            + (y - v)
            - (x + 1.0) * theta_t
            + _logsumexp(_log_terms(x + 1.0, v))
        )
        return math.exp(log_g)

    def sl_offered(self, threshold: float) -> float:
        """Calls answered within ``threshold`` seconds / calls offered."""
        return max(0.0, 1.0 - self.p_abandon - self._answered_after(threshold))

    def sl_answered(self, threshold: float) -> float:
        """Calls answered within ``threshold`` seconds / calls answered; nan if none is."""
        answered = self.answer_rate
        if answered <= 0:
            return math.nan
        return max(0.0, 1.0 - self._answered_after(threshold) / answered)


def service_level_a(
    rate: float, aht: float, agents: int, patience: float, threshold: float
) -> float:
    """Erlang A ``sl_offered``: calls answered within ``threshold`` / calls offered."""
    return ErlangA(rate, aht, agents, patience).sl_offered(threshold)


def _service_level(
    rate: float,
    aht: float,
    agents: int,
    threshold: float,
    model: Model,
    patience: float | None,
    measure: Measure,
) -> float:
    if model == "C":
        return service_level_c(rate, aht, agents, threshold)
    assert patience is not None
    queue = ErlangA(rate, aht, agents, patience)
    if measure == "answered":
        return queue.sl_answered(threshold) if agents > 0 else 0.0
    return queue.sl_offered(threshold)


def _check_staffing_args(
    threshold: float, target: float, model: str, patience: float | None, measure: str
) -> None:
    _check_nonnegative("threshold", threshold)
    if not 0 < target < 1:
        raise ValueError(f"target must be a share between 0 and 1 (exclusive), got {target!r}")
    if model not in ("C", "A"):
        raise ValueError(f"model must be 'C' or 'A', got {model!r}")
    if model == "A" and (patience is None or not patience > 0):
        raise ValueError(f"model 'A' needs a mean patience > 0 seconds, got {patience!r}")
    if measure not in ("offered", "answered"):
        raise ValueError(f"measure must be 'offered' or 'answered', got {measure!r}")


def _check_staffable(fewest: int | float, target: float) -> None:
    """Refuse at once a queue needing at least ``fewest`` agents when that is past the limit."""
    if fewest > _MAX_AGENTS:
        raise ValueError(f"no staffing up to {_MAX_AGENTS} agents meets target {target}: "
                         f"the queue needs at least {fewest:.6g}")


def _agents_c(rate: float, aht: float, threshold: float, target: float) -> int:
    """Scan upward from the first stable staffing, extending Erlang B one agent at a time."""
    load = offered_load(rate, aht)
    agents = math.floor(load) + 1
    _check_staffable(agents, target)
    blocking = erlang_b(agents, load)
    while _sl_c(agents, load, aht, threshold, blocking) < target:
        agents += 1
        blocking = load * blocking / (agents + load * blocking)
        if agents > _MAX_AGENTS:
            raise ValueError(f"no staffing up to {_MAX_AGENTS} agents meets target {target}")
    return agents


def agents_for_service_level(
    rate: float,
    aht: float,
    threshold: float,
    target: float,
    model: Model = "C",
    patience: float | None = None,
    measure: Measure = "offered",
) -> int:
    """Smallest number of agents whose service level within ``threshold`` s reaches ``target``.

    ``model="C"`` uses Erlang C; ``model="A"`` uses Erlang A with mean ``patience`` seconds and
    the ``sl_offered`` definition (or ``sl_answered`` with ``measure="answered"``). No calls
    (``rate == 0``) need no agents.
    """
    _check_staffing_args(threshold, target, model, patience, measure)
    if offered_load(rate, aht) == 0:
        return 0
    if model == "C":
        return _agents_c(rate, aht, threshold, target)

    # Answering a share ``target`` within T needs at least that share of the load's agents.
    _check_staffable(math.ceil(target * rate * aht), target)

    def meets(agents: int) -> bool:
        return _service_level(rate, aht, agents, threshold, model, patience, measure) >= target

    # Service level rises with agents: find a staffing that meets the target, then bisect.
    low, high = 0, max(1, math.ceil(rate * aht))
    while not meets(high):
        low, high = high, 2 * high
        if high > _MAX_AGENTS:
            raise ValueError(f"no staffing up to {_MAX_AGENTS} agents meets target {target}")
    while high - low > 1:
        middle = (low + high) // 2
        if meets(middle):
            high = middle
        else:
            low = middle
    return high


def agents_per_interval(
    rates: Sequence[float] | npt.ArrayLike,
    aht: float | Sequence[float] | npt.ArrayLike,
    threshold: float,
    target: float,
    model: Model = "C",
    patience: float | None = None,
    measure: Measure = "offered",
) -> npt.NDArray[np.int64]:
    """Staffing per interval: ``agents_for_service_level`` for each interval's arrival rate.

    ``rates`` are calls per second in each interval; ``aht`` is one value or one per interval.
    """
    rate_array, aht_array = np.broadcast_arrays(
        np.asarray(rates, dtype=np.float64), np.asarray(aht, dtype=np.float64)
    )
    if rate_array.ndim != 1:
        raise ValueError(f"rates must be one value per interval, got shape {rate_array.shape}")
    return np.array(
        [
            agents_for_service_level(
                float(r), float(h), threshold, target, model, patience, measure
            )
            for r, h in zip(rate_array, aht_array, strict=True)
        ],
        dtype=np.int64,
    )
