"""The engine's compiled stepping loop runs a SimPy environment exactly as ``env.run(until)``."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from datetime import datetime
from typing import Any

import pytest
import simpy
from routerkit import agent, center_data
from simpy.core import NORMAL, URGENT

from acd.config.load import center_from_data
from acd.core.call import CallerGone
from sim.engine import _DEPTH, _STAFF, DRAIN_S, Simulation, TimerLoop, _Timer
from sim.scenario import Behaviour
from sim.staffing import StaffAction
from sim.traffic.arrival import Arrival

Log = list[tuple[str, float]]
#: A Monday, midnight in Moscow.
MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")


class _Schedule:
    """One environment with a log of what ran when, and helpers that add to its queue the
    kinds of events a run can hold: engine timers, timeouts, processes, bare events."""

    def __init__(self) -> None:
        self.env = simpy.Environment()
        self.log: Log = []
        self._callbacks: tuple[Callable[[_Timer], None], ...] = (self.fire,)
        self.loop = TimerLoop(self.env, self.due)

    def fire(self, timer: _Timer) -> None:
        """An engine timer is due (SimPy's callback): as ``due`` at the environment's clock."""
        self.due(timer, self.env.now)

    def due(self, timer: _Timer, now: float) -> None:
        """An engine timer is due at ``now``: log it (and the environment's clock), and let
        some timers set more work while the run is under way (token 1: a timer now, a timeout,
        a process start; 2: a process start alone, whose URGENT start goes ahead of the timer
        being run; 3: a process start, then a timer)."""
        self.log.append((f"timer {timer.what}", now))
        self.log.append(("clock", self.env.now))
        if timer.token == 1:
            self.timer(0.0, timer.what + 100)
            self.timeout(0.0, f"timeout from {timer.what}")
            self.env.process(self.worker(f"worker from {timer.what}", 2))
        elif timer.token == 2:
            self.env.process(self.worker(f"worker from {timer.what}", 1))
        elif timer.token == 3:
            self.env.process(self.worker(f"worker from {timer.what}", 1))
            self.timer(1.5, timer.what + 100)

    def timer(self, delay: float, what: int, priority: int = NORMAL, token: int = 0) -> None:
        """An engine-style record in SimPy's queue, keyed as the engine keys it."""
        self.loop.push(self.env.now + delay, priority, next(self.env._eid),
                       _Timer(what, None, token, "", self._callbacks))

    def timeout(self, delay: float, name: str) -> None:
        """A SimPy timeout that logs when it runs."""
        self.env.timeout(delay).callbacks.append(
            lambda _e, name=name: self.log.append((name, self.env.now)))

    def event(self, delay: float, name: str, priority: int) -> None:
        """A bare SimPy event scheduled at ``priority`` (URGENT or NORMAL)."""
        e = simpy.Event(self.env)
        e._ok = True
        e._value = None
        e.callbacks.append(lambda _e, name=name: self.log.append((name, self.env.now)))
        self.env.schedule(e, priority, delay)

    def worker(self, name: str, steps: int) -> Generator[simpy.Event, Any, None]:
        """A process that wakes ``steps`` times, a second apart."""
        for k in range(steps):
            self.log.append((f"{name} step {k}", self.env.now))
            yield self.env.timeout(1.0)
        self.log.append((f"{name} done", self.env.now))

    def keys(self) -> list[tuple[float, int, int]]:
        """The queue's keys, in order: what is left to run, and where (without the spent until
        events ``env.run`` leaves behind, which have nothing left to do)."""
        return sorted((t, p, e) for t, p, e, event in self.env._queue
                      if p >= URGENT or event.callbacks)


def _twins(build: Callable[[_Schedule], None]) -> tuple[_Schedule, _Schedule]:
    a, b = _Schedule(), _Schedule()
    build(a)
    build(b)
    return a, b


def _mixed(s: _Schedule) -> None:
    s.timer(0.0, 1, URGENT)
    s.timer(0.0, 2)
    s.env.process(s.worker("clerk", 4))
    s.timeout(0.0, "timeout 0")
    s.timer(1.0, 3)
    s.timeout(1.0, "timeout 1")
    s.event(1.0, "normal 1", NORMAL)
    s.event(1.0, "urgent 1", URGENT)
    s.timer(2.5, 4, token=1)
    s.timer(5.0, 5)  # at the first stop point: waits for the next run
    s.event(5.0, "urgent at stop", URGENT)  # set before the run: runs in it
    s.timeout(5.0, "timeout at stop")
    s.timer(7.25, 6, token=1)
    s.timer(8.0, 8, token=2)
    s.timer(9.0, 9, token=3)
    s.timeout(7.25, "timeout 7.25")
    s.timer(30.0, 7)


def test_mixed_schedule_runs_in_simpy_order() -> None:
    """Timers, timeouts, a process, URGENT and NORMAL ties and events at the stop point run in
    ``env.run``'s order, and the clock and the queue left behind match after each run."""
    ours, simpys = _twins(_mixed)
    for until in (5.0, 7.25, 10.0, 12.5):
        ours.loop.run_until(until)
        simpys.env.run(until=until)
        assert ours.log == simpys.log
        assert ours.env.now == simpys.env.now == until
        assert ours.keys() == simpys.keys()
    assert ("urgent at stop", 5.0) in ours.log
    assert ours.log.index(("urgent at stop", 5.0)) < ours.log.index(("timer 5", 5.0))
    assert ("timer 7", 30.0) not in ours.log


def test_random_schedules_run_in_simpy_order() -> None:
    """Seeded random schedules with many ties (times on a coarse grid, both priorities, stop
    points on event times, timers that start SimPy work) run as ``env.run`` runs them."""
    rng = random.Random(16)
    for _ in range(200):
        plan = [(rng.choice(("timer", "timeout", "urgent", "normal", "worker")),
                 rng.randrange(0, 12) / 2, rng.choice((0, 0, 0, 0, 1, 2, 3)))
                for _ in range(rng.randrange(1, 30))]

        def build(s: _Schedule, plan: list[tuple[str, float, int]] = plan) -> None:
            for k, (kind, delay, spawns) in enumerate(plan):
                if kind == "timer":
                    s.timer(delay, k, rng_priority(k), token=spawns)
                elif kind == "timeout":
                    s.timeout(delay, f"timeout {k}")
                elif kind == "worker":
                    s.env.process(s.worker(f"worker {k}", 3))
                else:
                    s.event(delay, f"{kind} {k}", URGENT if kind == "urgent" else NORMAL)

        ours, simpys = _twins(build)
        stops = sorted({rng.randrange(1, 16) / 2 for _ in range(3)})
        for until in stops:
            ours.loop.run_until(until)
            simpys.env.run(until=until)
            assert ours.log == simpys.log
            assert ours.env.now == simpys.env.now
            assert ours.keys() == simpys.keys()


def rng_priority(k: int) -> int:
    """URGENT for every third engine timer, as the engine's starts at time 0 are."""
    return URGENT if k % 3 == 0 else NORMAL


def test_failed_event_crashes_like_simpy() -> None:
    """A failed event nobody defused raises a copy of its exception, caused by it, at the
    event's time; a defused one does not."""
    def build(s: _Schedule) -> None:
        s.timer(1.0, 1)
        quiet = s.env.event()
        quiet.fail(KeyError("defused"))
        quiet.defused = True
        s.env.timeout(2.0).callbacks.append(lambda _e: s.env.event().fail(ValueError("bad", 7)))
        s.timer(4.0, 2)

    ours, simpys = _twins(build)
    with pytest.raises(ValueError) as ours_error:
        ours.loop.run_until(10.0)
    with pytest.raises(ValueError) as simpys_error:
        simpys.env.run(until=10.0)
    assert ours_error.value.args == simpys_error.value.args == ("bad", 7)
    assert isinstance(ours_error.value.__cause__, ValueError)
    assert ours.log == simpys.log == [("timer 1", 1.0), ("clock", 1.0)]
    assert ours.env.now == simpys.env.now == 2.0


def _watched_simulation(log: Log) -> Simulation:
    """Two agents and twelve callers (arriving on whole seconds, talking 30 s, ringing 3 s)
    in an environment that also runs a SimPy process logging the calls in the router every
    second, so its wake-ups tie with the engine's timers."""
    loaded = center_from_data(center_data([agent("a"), agent("b")]), "test-center.yaml")
    calls = [Arrival(float(3 * k + 1), "tech", "ru", "RU", None, 0, talk_s=30.0,
                     patience_s=20.0 + k) for k in range(12)]
    behaviour = Behaviour.model_validate({
        "answer_delay": {"dist": "constant", "value": 3}, "rona_probability": 0,
        "ivr_time": {"dist": "constant", "value": 0}, "ivr_abandon_probability": 0})
    timeline = [StaffAction(0.0, "login", a.id) for a in loaded.agents]
    sim = Simulation(loaded, calls, timeline, behaviour, MONDAY, 120.0, 60.0, seed=1)

    def watcher() -> Generator[simpy.Event, Any, None]:
        while True:
            log.append((f"calls {len(sim._calls)} finished {sim.calls_finished}", sim.env.now))
            yield sim.env.timeout(1.0)

    sim.env.process(watcher())
    return sim


def test_simulation_beside_simpy_process_runs_as_under_env_run() -> None:
    """A simulation whose environment also runs a SimPy process gives the same records, and
    the process sees the same states at the same times, whether the engine's loop or
    ``env.run`` steps it."""
    ours_log: Log = []
    ours = _watched_simulation(ours_log)
    ours_result = ours.run()

    simpys_log: Log = []
    simpys = _watched_simulation(simpys_log)
    simpys._start_arrivals()
    simpys._timer(0.0, _STAFF, None, 0, "", URGENT)
    simpys._timer(0.0, _DEPTH, None, 0, "", URGENT)
    end = 120.0 + DRAIN_S
    t = 0.0
    while t < end:
        t = min(t + 3600.0, end)
        simpys.env.run(until=t)
        simpys.now = t
    for call in list(simpys._calls.values()):
        simpys._feed(call, CallerGone(), simpys.now)
    simpys_result = simpys.recorder.result(1, MONDAY, simpys.now, 0.0)

    assert ours_log == simpys_log
    assert len(ours_log) > 100
    assert ours_result.calls.outcome.tolist() == simpys_result.calls.outcome.tolist()
    assert ours_result.calls.wait_s.tolist() == simpys_result.calls.wait_s.tolist()


def test_simpy_and_the_engine_draw_event_ids_from_one_counter() -> None:
    """Events SimPy schedules and timers the engine sets take consecutive ids from one counter
    in the order they are made, so ties at one time run in that order."""
    sim = _watched_simulation([])
    first = sim.env.timeout(5.0)
    sim._timer(5.0, _DEPTH)
    last = sim.env.timeout(5.0)
    keys = sorted((t, p, e, type(ev).__name__) for t, p, e, ev in sim.env._queue if t == 5.0)
    eids = [e for _, _, e, _ in keys]
    assert [name for *_, name in keys] == ["Timeout", "_Timer", "Timeout"]
    assert eids == list(range(eids[0], eids[0] + 3))
    assert {id(first), id(last)} <= {id(ev) for *_, ev in sim.env._queue}
