"""Regressions found in review of the routing core, the config loader and the simulator.

Each test proves one defect that a user could hit, on a small hand-made center.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from routerkit import agent, build, center_data, of_type, queue, small_router

from acd.config.load import center_from_data
from acd.config.policy import center_policy
from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentState,
    CallAnswered,
    CallQueued,
    CancelOffer,
    Offer,
    RoutingError,
    UnknownAgent,
    UnknownCall,
)
from acd.core.router import Router
from acd.errors import ConfigError
from sim.engine import DRAIN_S, Simulation
from sim.kpi import kpis
from sim.records import ABANDONED, ANSWERED, PAUSED, READY
from sim.run import default_scenario
from sim.scenario import Behaviour, Staffing, load_scenario
from sim.staffing import StaffAction, build_timeline
from sim.traffic.arrival import Arrival

#: A Monday, midnight in Moscow (the reference scenario's start).
MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")


def _timeline(staffing: dict[str, Any], start: datetime = MONDAY,
              horizon_s: float = 86400.0) -> tuple[Router, list[StaffAction]]:
    """One Moscow agent ``a`` working every day, and its staffing timeline from ``staffing``."""
    config, agents = build(center_data([agent("a")]))
    spec = Staffing.model_validate({"work_days_per_week": 7, "break_stagger_minutes": 0,
                                    **staffing})
    actions = build_timeline(config, agents, spec, start, horizon_s, np.random.default_rng(0))
    return Router(center_policy(config), agents), actions


def _state_at(router: Router, actions: Sequence[StaffAction], t: float
              ) -> tuple[AgentState, str | None]:
    """Play every action up to ``t`` into ``router`` as the engine does; agent a's state."""
    for act in actions:
        if act.t > t:
            break
        try:
            if act.action == "login":
                router.login(act.t, act.agent, paused_reason=act.reason)
            elif act.action == "logout":
                router.logout(act.t, act.agent)
            elif act.action == "pause":
                router.pause(act.t, act.agent, act.reason or "break")
            else:
                router.ready(act.t, act.agent)
        except RoutingError:
            continue
    snap = {s.agent_id: s for s in router.agent_snapshot()}["a"]
    return snap.state, snap.reason


# ----------------------------------------------------------------------------- staffing


def test_lunch_right_after_a_break_keeps_the_agent_paused() -> None:
    """A lunch that starts the instant a break ends leaves the agent paused for lunch."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "09:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 2, "minutes": 15, "reason": "break"},
                   {"after_h": 2.25, "minutes": 30, "reason": "lunch"}]})
    lunch = 11.25 * 3600 + 60  # one minute into lunch
    assert _state_at(router, actions, lunch) == (AgentState.PAUSED, "lunch")


def test_break_under_way_at_the_run_start_is_kept() -> None:
    """A night-shift break that began before the run starts keeps the agent paused until it ends."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "22:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 1.95, "minutes": 15, "reason": "break"}]})
    # The break runs 23:57-00:12 Moscow: 3 minutes before the run and 12 minutes into it.
    assert _state_at(router, actions, 60.0) == (AgentState.PAUSED, "break")
    assert _state_at(router, actions, 13 * 60.0)[0] is AgentState.READY


def test_break_starting_exactly_at_the_run_start_is_kept() -> None:
    """A break that starts at the run's first second is taken, not skipped."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "22:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 2, "minutes": 15, "reason": "break"}]})
    assert _state_at(router, actions, 60.0) == (AgentState.PAUSED, "break")
    assert _state_at(router, actions, 16 * 60.0)[0] is AgentState.READY


def test_engine_logs_in_paused_when_the_login_carries_a_break() -> None:
    """The engine plays a login with a reason as a paused login: its agent time is paused."""
    loaded = center_from_data(center_data([agent("a")]), "test-center.yaml")
    agent_id = loaded.agents[0].id
    timeline = [StaffAction(0.0, "login", agent_id, "break"), StaffAction(900.0, "ready", agent_id)]
    sim = Simulation(loaded, [], timeline, Behaviour(), MONDAY, 1800.0, 1800.0, seed=1)
    seconds = sim.run().agent_time.seconds[0].sum(axis=0)
    assert seconds[PAUSED] == 900.0 and seconds[READY] == 900.0


def _scenario_with_breaks(tmp_path: Path, breaks: str) -> Path:
    """The reference scenario copied beside ``tmp_path`` with its breaks replaced."""
    text = default_scenario().read_text(encoding="utf-8")
    config = default_scenario().parent
    text = text.replace("center: ../center.yaml", f"center: {(config.parent / 'center.yaml')}")
    text = text.replace("traffic: ../traffic/reference.yaml",
                        f"traffic: {config.parent / 'traffic' / 'reference.yaml'}")
    head, _, tail = text.partition("  breaks:\n")
    tail = tail[tail.index("  shifts:"):]
    path = tmp_path / "scenario.yaml"
    path.write_text(f"{head}  breaks:\n{breaks}{tail}", encoding="utf-8")
    return path


def test_overlapping_breaks_are_refused(tmp_path: Path) -> None:
    """Breaks that overlap (a 15-minute break inside lunch) are a scenario error, not a silent
    early return from lunch."""
    path = _scenario_with_breaks(tmp_path, "    - {after_h: 4, minutes: 60, reason: lunch}\n"
                                           "    - {after_h: 4.5, minutes: 15, reason: break}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert [p.path for p in err.value.problems] == ["staffing.breaks[1]"]


def test_back_to_back_breaks_load(tmp_path: Path) -> None:
    """A lunch starting the minute a break ends is a valid scenario."""
    path = _scenario_with_breaks(tmp_path, "    - {after_h: 2, minutes: 15, reason: break}\n"
                                           "    - {after_h: 2.25, minutes: 30, reason: lunch}\n")
    assert len(load_scenario(path).spec.staffing.breaks) == 2


# ------------------------------------------------------------------------------ engine


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


# ------------------------------------------------------------------------------ router


def test_refused_query_does_not_replay_earlier_outputs() -> None:
    """A query refused for an unknown call or agent (``ewt``, ``agent_state``) makes the next
    request return only its own outputs, not the previous request's again."""
    router = small_router(center_data([agent("a")]))
    router.login(0, "a")
    first = router.call_arrived(1, "c1", "tech", "ru", "RU")
    assert of_type(first, Offer)
    with pytest.raises(UnknownCall):
        router.ewt("gone")
    answered = router.offer_answered(2, "c1")
    assert not of_type(answered, Offer) and not of_type(answered, CallQueued)
    assert len(of_type(answered, CallAnswered)) == 1
    with pytest.raises(UnknownAgent):
        router.agent_state("nobody")
    ended = router.hangup(3, "c1")
    assert not of_type(ended, CallAnswered)


def test_refused_query_keeps_outputs_carried_from_a_refused_request() -> None:
    """Timer outputs carried by a refused request survive a refused query in between."""
    router = small_router(center_data([agent("a")]))
    router.login(0, "a")
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    with pytest.raises(AgentAlreadyLoggedIn):
        router.login(20, "a")  # the ring timer (t=15) runs first, then the login is refused
    with pytest.raises(UnknownCall):
        router.ewt("gone")
    assert CancelOffer("c1", "a", "ring_timeout") in router.advance(20)


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


def test_back_to_back_breaks_with_float_rounding_keep_the_agent_paused() -> None:
    """Back-to-back breaks whose instants differ only by binary rounding (the second starts
    half a nanosecond before the first ends) still leave the agent paused for the second one."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "00:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 0.5, "minutes": 20, "reason": "break"},
                   {"after_h": 0.5 + 20 / 60, "minutes": 30, "reason": "lunch"}]})
    assert _state_at(router, actions, 3060.0) == (AgentState.PAUSED, "lunch")
