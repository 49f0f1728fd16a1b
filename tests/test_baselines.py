"""The bare SimPy and ciw baselines reproduce Erlang C and Erlang A within replication CIs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable

import pytest

from sim.baselines import BaselineRun, ciw_mmc, simpy_mmc
from sim.erlang import ErlangA, asa_c, service_level_c

RATE, AHT, THRESHOLD = 0.5, 180.0, 20.0
REPLICATIONS = 8
#: Calls per replication; ciw is about three times slower per call, so it gets fewer.
CALLS = {"simpy": 15_000, "ciw": 10_000}
#: Two-sided 95% Student t quantile with REPLICATIONS - 1 = 7 degrees of freedom.
T_QUANTILE = 2.365

Baseline = Callable[..., BaselineRun]


def _replicate(
    baseline: Baseline, calls: int, agents: int, patience: float | None
) -> list[BaselineRun]:
    return [
        baseline(RATE, AHT, agents, calls, seed, threshold=THRESHOLD, patience=patience)
        for seed in range(1, REPLICATIONS + 1)
    ]


def _assert_within_ci(samples: list[float], expected: float) -> None:
    mean = statistics.fmean(samples)
    half_width = T_QUANTILE * statistics.stdev(samples) / math.sqrt(len(samples))
    assert abs(mean - expected) <= half_width, (mean, half_width, expected)


@pytest.fixture(scope="module", params=["simpy", "ciw"])
def erlang_c_runs(request: pytest.FixtureRequest) -> list[BaselineRun]:
    """Eight seeded replications of the reference M/M/c: 0.5 calls/s, AHT 180 s, 98 agents."""
    baseline = {"simpy": simpy_mmc, "ciw": ciw_mmc}[request.param]
    return _replicate(baseline, CALLS[request.param], 98, None)


def test_baseline_service_level_matches_erlang_c(erlang_c_runs: list[BaselineRun]) -> None:
    """The measured SL(20 s) brackets Erlang C's 87.37% within the 95% replication CI."""
    assert all(run.wall_seconds > 0 for run in erlang_c_runs)
    expected = service_level_c(RATE, AHT, 98, THRESHOLD)
    _assert_within_ci([run.sl_offered for run in erlang_c_runs], expected)


def test_baseline_mean_wait_matches_erlang_c(erlang_c_runs: list[BaselineRun]) -> None:
    """The measured mean wait brackets Erlang C's ASA within the 95% replication CI."""
    _assert_within_ci([run.mean_wait for run in erlang_c_runs], asa_c(RATE, AHT, 98))


def test_simpy_baseline_with_abandonment_matches_erlang_a() -> None:
    """With 5-minute mean patience and 90 agents, SimPy reproduces Erlang A's SL and mean wait."""
    runs = _replicate(simpy_mmc, CALLS["simpy"], 90, 300.0)
    queue = ErlangA(RATE, AHT, 90, 300.0)
    _assert_within_ci([run.sl_offered for run in runs], queue.sl_offered(THRESHOLD))
    _assert_within_ci([run.mean_wait for run in runs], queue.mean_wait)
    # Erlang C would call 90 agents at 90 Erlangs unstable; abandonment keeps the queue short.
    assert max(run.mean_wait for run in runs) < 30.0


def test_ciw_baseline_with_abandonment_counts_every_call() -> None:
    """ciw with reneging records every call, answered or abandoned, and stays near Erlang A."""
    run = ciw_mmc(RATE, AHT, 90, 5_000, seed=3, threshold=THRESHOLD, patience=300.0)
    queue = ErlangA(RATE, AHT, 90, 300.0)
    assert run.calls == 5_000
    assert abs(run.sl_offered - queue.sl_offered(THRESHOLD)) < 0.25


@pytest.mark.parametrize("baseline", [simpy_mmc, ciw_mmc], ids=["simpy", "ciw"])
def test_baseline_is_reproducible_per_seed(baseline: Baseline) -> None:
    """The same seed gives the same measurements; another seed gives different ones."""
    first = baseline(RATE, AHT, 98, 2_000, 7)
    again = baseline(RATE, AHT, 98, 2_000, 7)
    other = baseline(RATE, AHT, 98, 2_000, 8)
    assert first.calls == other.calls == 2_000
    assert (first.sl_offered, first.mean_wait) == (again.sl_offered, again.mean_wait)
    assert first.mean_wait != other.mean_wait


@pytest.mark.parametrize("baseline", [simpy_mmc, ciw_mmc], ids=["simpy", "ciw"])
def test_baseline_refuses_bad_arguments(baseline: Baseline) -> None:
    """Zero agents, no calls or a non-positive patience are refused before simulating."""
    with pytest.raises(ValueError, match="agents"):
        baseline(RATE, AHT, 0, 100, 1)
    with pytest.raises(ValueError, match="calls"):
        baseline(RATE, AHT, 98, 0, 1)
    with pytest.raises(ValueError, match="patience"):
        baseline(RATE, AHT, 98, 100, 1, patience=0.0)
