"""Bare M/M/c (+M) simulations that the simulator benchmark compares itself against.

Both baselines simulate exactly ``calls`` Poisson arrivals with exponential handle times (and,
when ``patience`` is given, exponential patience), run until every call has left, and report
``sl_offered`` (answered within the threshold / offered) and the mean time in queue over all
offered calls (an abandoned call counts the time it waited before hanging up).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Generator
from typing import Any, NamedTuple

import ciw
import simpy


class BaselineRun(NamedTuple):
    """What one baseline run measured, and how long it took on the wall clock."""

    calls: int
    wall_seconds: float
    sl_offered: float
    mean_wait: float


def _check(rate: float, aht: float, agents: int, calls: int, patience: float | None) -> None:
    if not (rate > 0 and aht > 0 and math.isfinite(rate) and math.isfinite(aht)):
        raise ValueError(f"rate and aht must be finite and > 0, got rate={rate!r}, aht={aht!r}")
    if agents < 1 or calls < 1:
        raise ValueError(f"agents and calls must be >= 1, got agents={agents}, calls={calls}")
    if patience is not None and not patience > 0:
        raise ValueError(f"patience must be > 0 seconds or None, got {patience!r}")


def simpy_mmc(
    rate: float,
    aht: float,
    agents: int,
    calls: int,
    seed: int,
    threshold: float = 20.0,
    patience: float | None = None,
) -> BaselineRun:
    """Minimal idiomatic SimPy M/M/c(+M): one process per call queueing on a ``simpy.Resource``.

    ``rate`` is calls/s, ``aht`` and ``patience`` (mean, exponential; None = infinite) seconds.
    """
    _check(rate, aht, agents, calls, patience)
    rng = random.Random(seed)
    env = simpy.Environment()
    agent_pool = simpy.Resource(env, capacity=agents)
    waits: list[float] = []
    answered_within = 0

    def call() -> Generator[simpy.Event, Any, None]:
        nonlocal answered_within
        arrived = env.now
        with agent_pool.request() as request:
            if patience is None:
                yield request
            else:
                yield request | env.timeout(rng.expovariate(1.0 / patience))
            waits.append(env.now - arrived)
            if request.triggered:
                answered_within += env.now - arrived <= threshold
                yield env.timeout(rng.expovariate(1.0 / aht))

    def arrivals() -> Generator[simpy.Event, Any, None]:
        for _ in range(calls):
            env.process(call())
            yield env.timeout(rng.expovariate(rate))

    started = time.perf_counter()
    env.process(arrivals())
    env.run()
    wall = time.perf_counter() - started
    return BaselineRun(calls, wall, answered_within / calls, sum(waits) / calls)


class _StopAfter(ciw.dists.Distribution):
    """Exponential gaps between ``calls`` arrivals, then none, so that ciw drains and stops."""

    def __init__(self, rate: float, calls: int) -> None:
        self.rate = rate
        self.remaining = calls

    def sample(self, t: float | None = None, ind: object = None) -> float:
        self.remaining -= 1
        return random.expovariate(self.rate) if self.remaining >= 0 else math.inf


def ciw_mmc(
    rate: float,
    aht: float,
    agents: int,
    calls: int,
    seed: int,
    threshold: float = 20.0,
    patience: float | None = None,
) -> BaselineRun:
    """The same M/M/c(+M) in ciw 3.x, seeded with ``ciw.seed`` (ciw draws from ``random``).

    Arrivals stop after ``calls``; the run goes on until the last call has left.
    """
    _check(rate, aht, agents, calls, patience)
    ciw.seed(seed)
    network = ciw.create_network(
        arrival_distributions=[_StopAfter(rate, calls)],
        service_distributions=[ciw.dists.Exponential(1.0 / aht)],
        number_of_servers=[agents],
        **(
            {}
            if patience is None
            else {"reneging_time_distributions": [ciw.dists.Exponential(1.0 / patience)]}
        ),
    )
    started = time.perf_counter()
    simulation = ciw.Simulation(network)
    simulation.simulate_until_max_time(math.inf)
    wall = time.perf_counter() - started
    records = simulation.get_all_records(only=["service", "renege"])
    if len(records) != calls:
        raise RuntimeError(f"ciw recorded {len(records)} calls, expected {calls}")
    answered_within = sum(
        1 for r in records if r.record_type == "service" and r.waiting_time <= threshold
    )
    total_wait = sum(r.waiting_time for r in records)
    return BaselineRun(calls, wall, answered_within / calls, total_wait / calls)
