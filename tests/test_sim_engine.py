"""The simulator drives the real router: analytic agreement, determinism, common random numbers."""

from __future__ import annotations

import math
import multiprocessing
import os
from datetime import datetime

import numpy as np
import pytest
from routerkit import agent, center_data, queue

from acd.config.load import center_from_data
from sim.engine import _PATIENCE, DRAIN_S, Simulation
from sim.erlang import ErlangA, service_level_c
from sim.kpi import estimate, kpis
from sim.mmc import simulate_mmc
from sim.records import ABANDONED, ANSWERED, BUSY, PAUSED, READY, RunResult
from sim.run import RunSpec, arrivals_for, default_scenario, run_one, run_replications
from sim.scenario import Behaviour, load_scenario
from sim.staffing import StaffAction, build_timeline
from sim.traffic.arrival import Arrival

#: A Monday, midnight in Moscow (the reference scenario's start).
MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")

# A heavily loaded M/M/c that starts empty needs hours to forget it: 7-hour runs measured
# SL about 4 points above Erlang C even after a 1-hour warm-up, 48-hour runs agree.
WARM_UP_S = 2 * 3600.0


def _steady(result: RunResult, threshold: float = 20.0) -> tuple[float, float]:
    """SL (answered within threshold / offered) and abandon rate after the warm-up."""
    c = result.calls
    offered = ~np.isnan(c.queued_s) & (c.queued_s >= WARM_UP_S)
    within = offered & (c.outcome == ANSWERED) & (c.wait_s <= threshold)
    abandoned = offered & (c.outcome == ABANDONED)
    return within.sum() / offered.sum(), abandoned.sum() / offered.sum()


def _mmc_steady(args: tuple[float, float, int, float, int, float | None]) -> tuple[float, float]:
    rate, aht, agents, hours, seed, patience = args
    return _steady(simulate_mmc(rate, aht, agents, hours, seed, patience))


def _replicate(rate: float, aht: float, agents: int, hours: float, seeds: range,
               patience: float | None = None) -> list[tuple[float, float]]:
    """Steady-state (SL, abandon rate) per seed, replications spread over the cores."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(len(seeds), os.cpu_count() or 1)) as pool:
        return pool.map(_mmc_steady, [(rate, aht, agents, hours, s, patience) for s in seeds])


@pytest.mark.slow
def test_mmc_through_the_router_agrees_with_erlang_c() -> None:
    """98 agents, 0.5 calls/s, AHT 180 s: the simulated SL's 95% CI contains Erlang C's 87.37%."""
    theory = service_level_c(0.5, 180.0, 98, 20.0)
    assert theory == pytest.approx(0.8737, abs=1e-4)
    sl = [r[0] for r in _replicate(0.5, 180.0, 98, hours=26, seeds=range(8))]
    est = estimate(sl)
    assert abs(est.mean - theory) <= est.half_width, (est, theory)
    assert est.half_width < 0.03


@pytest.mark.slow
def test_mmc_plus_m_through_the_router_agrees_with_erlang_a() -> None:
    """90 agents with exponential patience (300 s): SL offered and abandon rate match Erlang A."""
    model = ErlangA(0.5, 180.0, 90, 300.0)
    runs = _replicate(0.5, 180.0, 90, hours=14, seeds=range(100, 108), patience=300.0)
    sl = estimate([r[0] for r in runs])
    ab = estimate([r[1] for r in runs])
    assert abs(sl.mean - model.sl_offered(20.0)) <= sl.half_width, (sl, model.sl_offered(20.0))
    assert abs(ab.mean - model.p_abandon) <= ab.half_width, (ab, model.p_abandon)


def test_mmc_is_reproducible_from_its_seed() -> None:
    """The same seed gives the same calls, waits and outcomes; another seed gives others."""
    a = simulate_mmc(0.2, 120.0, 30, hours=1, seed=5)
    b = simulate_mmc(0.2, 120.0, 30, hours=1, seed=5)
    c = simulate_mmc(0.2, 120.0, 30, hours=1, seed=6)
    np.testing.assert_array_equal(a.calls.wait_s, b.calls.wait_s)
    np.testing.assert_array_equal(a.calls.outcome, b.calls.outcome)
    assert len(a.calls) != len(c.calls) or not np.array_equal(a.calls.wait_s, c.calls.wait_s)


def test_queue_depth_is_sampled_per_interval() -> None:
    """With 20 agents for 24 Erlangs calls pile up: depth grows and is never negative."""
    r = simulate_mmc(0.2, 120.0, 20, hours=1, seed=4)
    assert r.queue_depth_mean is not None and r.queue_depth_max is not None
    assert r.queue_depth_mean.shape == (2, 1)
    assert (r.queue_depth_mean >= 0).all()
    assert (r.queue_depth_max >= r.queue_depth_mean).all()
    assert r.queue_depth_max[-1, 0] > 5


def test_every_agent_second_is_accounted_for() -> None:
    """With all agents logged in all along, ready + busy + paused time equals agents x duration."""
    r = simulate_mmc(0.2, 120.0, 30, hours=2, seed=3)
    total = r.agent_time.seconds.sum()
    assert total == pytest.approx(30 * 2 * 3600, rel=1e-9)
    busy = r.agent_time.seconds[..., 1].sum() / (2 * 3600)
    # Offered load is 24 Erlangs; the busy agents average close to it.
    assert 20 < busy < 28


def _tiny(days: float = 0.25) -> RunSpec:
    return RunSpec(str(default_scenario()), {"days": days, "start": "2026-03-02T08:00:00+03:00"})


def test_reference_scenario_replications_are_deterministic_and_independent() -> None:
    """Replications repeat exactly for a seed, in spawned workers too, and differ between them."""
    first = run_replications(_tiny(0.1), 2, base_seed=9, jobs=1)
    again = run_replications(_tiny(0.1), 2, base_seed=9, jobs=2)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x.calls.arrival_s, y.calls.arrival_s)
        np.testing.assert_array_equal(x.calls.wait_s, y.calls.wait_s)
        np.testing.assert_array_equal(x.calls.outcome, y.calls.outcome)
        np.testing.assert_array_equal(x.agent_time.seconds, y.agent_time.seconds)
    assert not np.array_equal(first[0].calls.arrival_s, first[1].calls.arrival_s)


def test_common_random_numbers_keep_callers_when_staffing_changes() -> None:
    """Two scenarios with the same seed see the same callers, whatever their routing does."""
    seeds = np.random.SeedSequence(4).spawn(1)
    base = run_one(_tiny(0.1), seeds[0])
    changed = RunSpec(str(default_scenario()), {"days": 0.1, "start": "2026-03-02T08:00:00+03:00",
                                                "volume_scale": 1.0})
    other = run_one(changed, np.random.SeedSequence(4).spawn(1)[0])
    np.testing.assert_array_equal(base.calls.arrival_s, other.calls.arrival_s)


def test_reference_day_reports_every_offered_call_once() -> None:
    """Each arrival becomes exactly one row; answered calls have a site, others none."""
    (r,) = run_replications(_tiny(0.2), 1, base_seed=2, jobs=1)
    c = r.calls
    assert len(c) > 200
    answered = c.outcome == ANSWERED
    assert (c.site[answered] >= 0).all()
    assert (c.site[~answered] == -1).all()
    table = kpis(r)
    assert 0.5 < table.overall["sl_offered"] <= 1.0
    assert math.isclose(table.overall["answer_rate"] + table.overall["abandon_rate"]
                        + table.overall["overflowed"] / table.overall["offered"]
                        + table.overall["callback"] / table.overall["offered"], 1.0,
                        rel_tol=1e-9)


# ------------------------- staffing and replayed calls in the engine


def test_engine_logs_in_paused_when_the_login_carries_a_break() -> None:
    """The engine plays a login with a reason as a paused login: its agent time is paused."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    agent_id = loaded.agents[0].id
    timeline = [StaffAction(0.0, "login", agent_id, "break"), StaffAction(900.0, "ready", agent_id)]
    sim = Simulation(loaded, [], timeline, Behaviour(), MONDAY, 1800.0, 1800.0, seed=1)
    seconds = sim.run().agent_time.seconds[0].sum(axis=0)
    assert seconds[PAUSED] == 900.0 and seconds[READY] == 900.0


def _quiet_behaviour() -> Behaviour:
    """Callers reach the queue at once and agents answer at once, never ringing out."""
    return Behaviour.model_validate({
        "answer_delay": {"dist": "constant", "value": 0}, "rona_probability": 0,
        "ivr_time": {"dist": "constant", "value": 0}, "ivr_abandon_probability": 0})


def test_engine_applies_each_calls_own_wrap_up() -> None:
    """A replayed call's ``wrap_s`` (100 s) keeps its agent in wrap-up, not the queue's 10 s."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    agent_id = loaded.agents[0].id
    calls = [Arrival(0.0, "tech", "ru", "RU", None, 0, talk_s=50.0, wrap_s=100.0),
             Arrival(100.0, "tech", "ru", "RU", None, 0, talk_s=50.0)]
    sim = Simulation(loaded, calls, [StaffAction(0.0, "login", agent_id)], _quiet_behaviour(),
                     MONDAY, 1800.0, 1800.0, seed=1)
    waits = sim.run().calls.wait_s.tolist()
    assert waits == [0.0, 50.0]


@pytest.mark.parametrize("login_at", [110.0, 215.0])
def test_engine_login_during_a_call_after_a_logout_keeps_the_agent(login_at: float) -> None:
    """A queue_log's logout then login while the agent is still on a simulated call (or in its
    wrap-up) leaves the agent logged in after that call, so it answers the next one."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    agent_id = loaded.agents[0].id
    calls = [Arrival(10.0, "tech", "ru", "RU", None, 0, talk_s=200.0),
             Arrival(400.0, "tech", "ru", "RU", None, 0, talk_s=50.0)]
    timeline = [StaffAction(0.0, "login", agent_id), StaffAction(100.0, "logout", agent_id),
                StaffAction(login_at, "login", agent_id)]
    result = Simulation(loaded, calls, timeline, _quiet_behaviour(), MONDAY, 1800.0, 1800.0,
                        seed=1).run()
    assert result.calls.outcome.tolist() == [ANSWERED, ANSWERED]
    assert result.calls.wait_s.tolist() == [0.0, 0.0]


def test_engine_records_calls_still_waiting_when_the_run_ends() -> None:
    """A call still queued after the drain (no agent, patient caller, long max wait) is recorded
    as offered and not answered, instead of vanishing from the call log and the KPIs."""
    loaded = center_from_data(center_data([agent("a")], {"tech": queue(max_wait_s=86400)}),
                              "test-center.yaml")
    calls = [Arrival(0.0, "tech", "ru", "RU", None, 0, talk_s=50.0)]
    result = Simulation(loaded, calls, [], _quiet_behaviour(), MONDAY, 1800.0, 1800.0,
                        seed=1).run()
    assert result.calls.outcome.tolist() == [ABANDONED]
    assert result.calls.wait_s.tolist() == [1800.0 + DRAIN_S]
    assert kpis(result).overall["offered"] == 1


# ------------------------- the simulator runs the production call machine


def test_engine_ring_no_answer_passes_through_the_call_machine() -> None:
    """An agent who lets it ring is taken back by the router's ring timer at 15 s, and the call's
    machine releases that ring and hears the leg end (DialFailed), so it is back in the queue
    and dials the next agent: two rings released, 15 s each, before the caller gives up."""
    loaded = center_from_data(center_data([agent("a"), agent("b")]), "test-center.yaml")
    a, b = (p.id for p in loaded.agents)
    # rona_return_s None: an agent who let it ring stays paused (the center sets no
    # auto-ready), so each agent rings once, as this test counts.
    behaviour = _quiet_behaviour().model_copy(
        update={"answer_delay": Behaviour.model_validate(
            {"answer_delay": {"dist": "constant", "value": 20}}).answer_delay,
            "rona_return_s": None})
    calls = [Arrival(0.0, "tech", "ru", "RU", None, 0, talk_s=50.0, patience_s=100.0)]
    timeline = [StaffAction(0.0, "login", a), StaffAction(50.0, "login", b)]
    sim = Simulation(loaded, calls, timeline, behaviour, MONDAY, 1800.0, 1800.0, seed=1)
    result = sim.run()
    assert result.calls.outcome.tolist() == [ABANDONED]
    assert result.calls.wait_s.tolist() == [100.0]
    # Without the DialFailed the machine would still wait for the first leg to end, and the
    # router's offer to b would never be dialled (nor released).
    assert sim.rings_released == 2
    assert sim.calls_finished == 1
    assert result.agent_time.seconds[0, :, BUSY].sum() == 30.0


def test_engine_every_call_that_reaches_the_router_ends_through_its_machine() -> None:
    """A reference day's calls (ring-no-answer, abandons, callbacks included) each end through
    their call machine's Finished exactly once, and the records agree with the machines."""
    scenario = load_scenario(default_scenario(), days=0.2, start="2026-03-02T08:00:00+03:00")
    traffic, staffing, engine = np.random.SeedSequence(5).spawn(3)
    arrivals, start, horizon = arrivals_for(scenario, None, np.random.default_rng(traffic))
    s = scenario.spec
    timeline = build_timeline(scenario.center.config, scenario.center.agents, s.staffing, start,
                              horizon + DRAIN_S, np.random.default_rng(staffing))
    sim = Simulation(scenario.center, arrivals, timeline, s.behaviour, start, horizon,
                     s.interval_minutes * 60.0, int(engine.generate_state(1)[0]))
    result = sim.run()
    reached_router = int((~np.isnan(result.calls.queued_s)).sum())
    assert reached_router > 500
    assert sim.calls_finished == reached_router
    assert sim.rings_released > 0  # the reference agents let 1% of offers ring out


# ------------------------------------------- patience timers: only while they can matter


def _ringing_behaviour(answer_s: float) -> Behaviour:
    """Quiet callers and agents, except that agents answer after ``answer_s``."""
    return _quiet_behaviour().model_copy(update={"answer_delay": Behaviour.model_validate(
        {"answer_delay": {"dist": "constant", "value": answer_s}}).answer_delay})


def test_engine_a_ring_cancelled_before_its_answer_lets_patience_run() -> None:
    """A caller (arriving at 1 s) whose agent would answer 10 s later, before their 30 s
    patience, but is paused while ringing at 5 s waits again with no one left, and abandons
    at exactly 30 s: the patience timer held back behind the answer is put back when that
    answer is lost."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    a = loaded.agents[0].id
    calls = [Arrival(1.0, "tech", "ru", "RU", None, 0, talk_s=50.0, patience_s=30.0)]
    timeline = [StaffAction(0.0, "login", a), StaffAction(5.0, "pause", a, "break")]
    sim = Simulation(loaded, calls, timeline, _ringing_behaviour(10.0), MONDAY, 1800.0,
                     1800.0, seed=1)
    result = sim.run()
    assert result.calls.outcome.tolist() == [ABANDONED]
    assert result.calls.wait_s.tolist() == [30.0]
    assert sim.rings_released == 1


@pytest.mark.parametrize("answer_s", [0.0, 3.0])
def test_engine_keeps_no_patience_timer_for_a_caller_answered_first(answer_s: float) -> None:
    """Patience timers go into SimPy's queue only for callers who wait: of a caller answered
    on arrival and one who waits for the agent, both patient past the run's end, only the
    second's timer is still queued when the run ends (and both calls are answered)."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    calls = [Arrival(1.0, "tech", "ru", "RU", None, 0, talk_s=100.0, patience_s=50_000.0),
             Arrival(10.0, "tech", "ru", "RU", None, 0, talk_s=50.0, patience_s=50_000.0)]
    sim = Simulation(loaded, calls, [StaffAction(0.0, "login", loaded.agents[0].id)],
                     _ringing_behaviour(answer_s), MONDAY, 1800.0, 1800.0, seed=1)
    result = sim.run()
    assert result.calls.outcome.tolist() == [ANSWERED, ANSWERED]
    patience = [ev.call.call_id for _, _, _, ev in sim.env._queue
                if getattr(ev, "what", None) == _PATIENCE and ev.call is not None]
    assert patience == ["1"]
