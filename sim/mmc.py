"""A single-skill M/M/c (+M) center run through the real router, for checks against Erlang C/A.

One queue, one skill, one language, one site, ``agents`` identical agents logged in for the
whole run, Poisson arrivals, exponential talk times (and exponential patience for +M), no IVR,
no wrap-up, agents answer at once. Under those assumptions the router must reproduce the
analytic results; the tests hold it to the replications' confidence interval.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from acd.config.load import LoadedCenter, center_from_data
from sim.engine import Simulation
from sim.records import RunResult
from sim.scenario import Behaviour, DistSpec
from sim.staffing import StaffAction
from sim.traffic import Arrival

START = datetime(2026, 1, 5, tzinfo=UTC)


def single_skill_center(agents: int, threshold_s: float = 20.0, target: float = 0.85
                        ) -> LoadedCenter:
    """A one-queue center with ``agents`` identical agents and no expansion or wrap-up."""
    data = {
        "center": {"name": "M/M/c", "default_language": "en", "default_queue": "q",
                   "service_level": {"threshold_s": threshold_s, "target": target}},
        "sites": {"s": {"name": "Site", "timezone": "UTC"}},
        "languages": {"en": {"name": "English"}},
        "countries": {"XX": {"name": "Anywhere", "language": "en", "home_site": "s"}},
        "skills": {"k": {"name": "Skill"}},
        "queues": {"q": {"skill": "k", "wrap_up_s": 0, "ring_timeout_s": 300,
                         "max_length": 100_000, "max_wait_s": 86_400}},
        "agent_groups": {"g": {"site": "s", "supervisor": "-", "count": agents,
                               "skills": {"k": 5}, "level_spread": 0, "languages": ["en"],
                               "first_extension": 1000}},
    }
    return center_from_data(data, "<m/m/c>")


def mmc_arrivals(rate: float, aht: float, hours: float, rng: np.random.Generator,
                 patience_s: float | None = None) -> list[Arrival]:
    """Poisson arrivals at ``rate`` per second for ``hours``, exponential talk (and patience)."""
    horizon = hours * 3600
    n = rng.poisson(rate * horizon)
    t = np.sort(rng.uniform(0, horizon, n))
    talk = rng.exponential(aht, n)
    patience = rng.exponential(patience_s, n) if patience_s else np.full(n, math.inf)
    return [Arrival(float(t[i]), "q", "en", "XX", None, 0, float(talk[i]), float(patience[i]))
            for i in range(n)]


def simulate_mmc(rate: float, aht: float, agents: int, hours: float, seed: int,
                 patience_s: float | None = None, threshold_s: float = 20.0) -> RunResult:
    """One replication of the M/M/c (+M) center through the real router."""
    center = single_skill_center(agents, threshold_s)
    rng = np.random.default_rng(seed)
    arrivals = mmc_arrivals(rate, aht, hours, rng, patience_s)
    timeline = [StaffAction(0.0, "login", a.id) for a in center.agents]
    behaviour = Behaviour(answer_delay=DistSpec(dist="constant", value=0.0), rona_probability=0.0,
                          callback_accept_probability=0.0,
                          ivr_time=DistSpec(dist="constant", value=0.0),
                          ivr_abandon_probability=0.0)
    sim = Simulation(center, arrivals, timeline, behaviour, START, hours * 3600, 1800.0, seed)
    return sim.run()
