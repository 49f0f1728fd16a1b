"""Spent engine timers are refilled for later timers, holding nothing of the call they ran for."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import simpy
from routerkit import agent, center_data
from simpy.core import NORMAL

from acd.config.load import center_from_data
from sim.engine import Simulation, TimerLoop, _Timer
from sim.scenario import Behaviour
from sim.staffing import StaffAction
from sim.traffic.arrival import Arrival

#: A Monday, midnight in Moscow.
MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")


def test_spent_timer_is_refilled_with_new_fields() -> None:
    """A timer that ran comes back from ``timer`` with the new what, token, agent and
    callbacks, and without its old call; a fresh one is made once none is spare."""
    env = simpy.Environment()
    ran: list[tuple[int, int, str, float]] = []
    loop = TimerLoop(env, lambda t, now: ran.append((t.what, t.token, t.agent_id, now)))
    callbacks: tuple[Callable[[_Timer], None], ...] = ()
    first = loop.timer(3, None, 7, "a", callbacks)
    loop.push(2.0, NORMAL, next(env._eid), first)
    loop.run_until(5.0)
    assert ran == [(3, 7, "a", 2.0)]
    assert loop.free == [first]

    again = loop.timer(4, None, 9, "b", callbacks)
    assert again is first
    assert (again.what, again.token, again.agent_id, again.call) == (4, 9, "b", None)
    assert again.callbacks == callbacks
    assert loop.free == []
    fresh = loop.timer(5, None, 0, "", callbacks)
    assert fresh is not first

    loop.push(6.0, NORMAL, next(env._eid), again)
    loop.run_until(10.0)
    assert ran[-1] == (4, 9, "b", 6.0)


def test_timer_set_while_running_is_not_the_one_running() -> None:
    """A timer that sets the next timer while it runs gets a different record, so both keys
    stay in the queue and run in order."""
    env = simpy.Environment()
    ran: list[float] = []
    callbacks: tuple[Callable[[_Timer], None], ...] = ()

    def due(timer: _Timer, now: float) -> None:
        ran.append(now)
        if now < 3.0:
            nxt = loop.timer(0, None, 0, "", callbacks)
            assert nxt is not timer
            loop.push(now + 1.0, NORMAL, next(env._eid), nxt)

    loop = TimerLoop(env, due)
    loop.push(1.0, NORMAL, next(env._eid), loop.timer(0, None, 0, "", callbacks))
    loop.run_until(10.0)
    assert ran == [1.0, 2.0, 3.0]
    assert len(loop.free) == 2


def test_run_keeps_no_call_in_spare_timers() -> None:
    """After a run the spare timers refer to no call, so ended calls are not kept alive."""
    loaded = center_from_data(center_data([agent("a"), agent("b")]), "test-center.yaml")
    calls = [Arrival(float(10 * k + 1), "tech", "ru", "RU", None, 0, talk_s=30.0,
                     patience_s=60.0) for k in range(6)]
    behaviour = Behaviour.model_validate({
        "answer_delay": {"dist": "constant", "value": 3}, "rona_probability": 0,
        "ivr_time": {"dist": "constant", "value": 0}, "ivr_abandon_probability": 0})
    timeline = [StaffAction(0.0, "login", a.id) for a in loaded.agents]
    sim = Simulation(loaded, calls, timeline, behaviour, MONDAY, 120.0, 60.0, seed=1)
    result = sim.run()
    assert result.calls_simulated == 6
    assert sim._loop.free
    assert all(t.call is None for t in sim._loop.free)
