"""The simulation engine: callers, agents, the real router and the real call machine in
simulated time.

The router is the production :class:`acd.core.router.Router` and every call runs the production
:class:`acd.core.call.CallMachine`, the lifecycle FastAGI and ARI run; this module only does what
Asterisk and people do around them: callers arrive, spend time in the IVR, wait with finite
patience, agents answer after a short ring (or not: ring-no-answer), talk, and work shifts with
breaks. The router is woken at its ``next_deadline()`` exactly as the live service wakes it.
What happens is written down by :class:`sim.recorder.Recorder`.

The simulator as a driver of the call machine (policy ``hold_while_ringing``: the simulated
caller stays at the engine while the agent rings, as in ARI's holding bridge; there is no music
to model, so no hold is ever started or fed):

- a caller reaching the queue is :class:`~acd.core.call.Queued`, then ``call_arrived``;
  patience over is :class:`~acd.core.call.CallerGone` (only while not talking: patience is
  about waiting);
- the router's commands go to the call's machine; its :class:`~acd.core.call.Dial` draws the
  agent's behaviour: an answer after the answer delay (:class:`~acd.core.call.Answered`), or
  none (ring-no-answer, or a delay past the dial's timeout). An agent who lets it ring is taken
  back by the router's own ring timer (it never runs later than the dial's whole-second
  timeout): ``CancelOffer`` -> :class:`~acd.core.call.ReleaseAgent`, on which the simulator
  drops the pending answer and reports the leg's end at once
  (:class:`~acd.core.call.DialFailed`), so the call waits again;
- :class:`~acd.core.call.Connect` starts the talk; talk over is
  :class:`~acd.core.call.AgentGone`, whose ``ReportHangup`` carries the call's own wrap-up;
- :class:`~acd.core.call.AskCallback` draws the caller's reply
  (:class:`~acd.core.call.CallbackAnswer`), given once the router's current outputs are dealt
  with, as an answer at once is (the order today's results depend on);
- ``Report*`` actions call the router at once, and its outputs are acted on in turn.

Behaviour options beyond the traffic (each off by default, leaving the other streams' draws
alone): a newcomer's factor on the talk and wrap-up of the calls they answer; redials, new
calls marked as repeats, from callers who abandoned; callback work, an accepted callback or a
voicemail becoming an outbound call that a ready agent of the queue makes once the router has
no caller for them (the agent is paused with reason ``callback_work`` meanwhile).

Simulated time runs on a ``simpy.Environment``. A timer is one event in SimPy's queue (a
compiled :class:`_Timer`, at the place a ``Timeout`` set then would take) saying what to do
(enter callers, wake the router, end a talk, ...) and to which call, so a call costs no
process, no generator and no per-call event objects beyond its timers. The staffing timeline
and the depth samples start first at time 0, as processes' starts do (SimPy's URGENT
priority); every other timer runs in SimPy's order for timeouts: by time, then the order it
was set. A caller's patience timer takes its place in that order on entry but goes into the
queue only while it can still matter (see ``_enter_queue``).
"""

from __future__ import annotations

import dataclasses
import gc
import heapq
import math
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import simpy

from acd.config.load import LoadedCenter
from acd.config.policy import center_policy
from acd.core.call import (
    Action,
    AgentGone,
    Answered,
    AskCallback,
    CallbackAnswer,
    CallerGone,
    CallEvent,
    CallMachine,
    CallPolicy,
    Connect,
    Dial,
    DialFailed,
    Finished,
    Phase,
    Queued,
    ReleaseAgent,
    ReportAnswered,
    ReportCallback,
    ReportFailed,
    ReportHangup,
    ReportWithdrawn,
)
from acd.core.model import (
    AgentState,
    AgentStateChanged,
    CallEnded,
    CancelOffer,
    Offer,
    OfferCallback,
    Outcome,
    Output,
    Overflow,
    RoutingError,
)
from acd.core.router import Router
from sim.ivrsim import QUEUED, IvrCallers, estimate_from, load_sim_flow
from sim.recorder import CALL_BATCH, DEPTH_SAMPLE_S, Recorder
from sim.records import (
    CALLBACK,
    CALLBACK_WORK_REASON,
    IVR_ABANDONED,
    IVR_HANGUP,
    VOICEMAIL,
    RunResult,
)
from sim.scenario import Behaviour, DistSpec
from sim.staffing import StaffAction
from sim.traffic import Arrival, ArrivalBatch

if TYPE_CHECKING:
    # Compiled, a native 64-bit integer; at run time never looked up (annotations only).
    from mypy_extensions import i64

__all__ = ["DEPTH_SAMPLE_S", "DRAIN_S", "ENTRY_BLOCK", "Simulation", "TimerLoop", "draw",
           "sampler"]

#: After the last arrival the run goes on this long so calls in progress can finish.
DRAIN_S = 3 * 3600.0
#: Callers built at a time, in order of queue entry (bounds the Arrival objects alive).
ENTRY_BLOCK = 4096
#: Random draws made at a time per behaviour stream.
_DRAWS: Final = 1024
#: How calls that end in the IVR are recorded (they never enter a queue).
_IVR_END = {"voicemail": VOICEMAIL, "callback": CALLBACK, "abandoned": IVR_ABANDONED}
#: States in which a logout waits for the call (and wrap-up) to end.
_LOGOUT_DEFERRED = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})
#: The simulated medium: the caller holds at the engine until connected.
_POLICY: Final = CallPolicy(hold_while_ringing=True)
# Events without data, shared by every call (the machine keeps no reference to its events).
_QUEUED: Final = Queued()
_CALLER_GONE: Final = CallerGone()
_AGENT_GONE: Final = AgentGone()
_ACCEPTED: Final = CallbackAnswer(True)
_DECLINED: Final = CallbackAnswer(False)
# What a timer does when it is due (``Simulation._fire``'s first argument).
_WAKE: Final = 0
_ENTER: Final = 1
_PATIENCE: Final = 2
_TALK_OVER: Final = 3
_ANSWER: Final = 4
_DEPTH: Final = 5
_STAFF: Final = 6
_AFTER_IVR: Final = 7
_IVR: Final = 8
_REDIAL: Final = 9
_WORK_DUE: Final = 10
_WORK_OVER: Final = 11
# SimPy's priorities: a process's start (URGENT) before timers (NORMAL) due at the same time.
_URGENT: Final = 0  # simpy.core.URGENT
_NORMAL: Final = 1  # simpy.core.NORMAL


# SimPy's queue is a heapq heap of (time, priority, id, event) keys. heapq compares two keys
# through Python's generic tuple comparison (two float comparisons and three levels of rich
# comparison, about 300 machine instructions, six to ten times per timer); the functions below
# are heapq's own algorithms, step for step (the heap takes the same shape), with the keys
# compared in compiled code: the times as floats, then priority and id as ints, the order
# Python gives the tuples (ids are unique, so the events are never compared).

def _before(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Key ``a`` sorts before key ``b`` (``a < b`` of the tuples)."""
    ta: float = a[0]
    tb: float = b[0]
    if ta != tb:
        return ta < tb
    pa: int = a[1]
    pb: int = b[1]
    if pa != pb:
        return pa < pb
    ea: int = a[2]
    eb: int = b[2]
    return ea < eb


def _sift_down(heap: list[Any], start: i64, pos: i64) -> None:
    """heapq's ``_siftdown``: the item at ``pos`` moves up towards ``start`` to its place."""
    item: tuple[Any, ...] = heap[pos]
    # The item's key read once: each level then reads only its parent's (``_before`` inline).
    t: float = item[0]
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent: tuple[Any, ...] = heap[parent_pos]
        parent_t: float = parent[0]
        if t != parent_t:
            if not t < parent_t:
                break
        elif not _before(item, parent):
            break
        heap[pos] = parent
        pos = parent_pos
    heap[pos] = item


def _sift_up(heap: list[Any], pos: i64) -> None:
    """heapq's ``_siftup``: the smaller child moves up until ``pos`` reaches a leaf, where the
    item from ``pos`` goes and moves back up to its place."""
    end: i64 = len(heap)
    start = pos
    item = heap[pos]
    child = 2 * pos + 1
    while child < end:
        right = child + 1
        if right < end:
            left_item: tuple[Any, ...] = heap[child]
            right_item: tuple[Any, ...] = heap[right]
            left_t: float = left_item[0]
            right_t: float = right_item[0]
            # ``_before`` inline for the times, which nearly always differ.
            if left_t != right_t:
                if not left_t < right_t:
                    child = right
            elif not _before(left_item, right_item):
                child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    heap[pos] = item
    _sift_down(heap, start, pos)


def _heappush(heap: list[Any], item: tuple[Any, ...]) -> None:
    """``heapq.heappush``."""
    heap.append(item)
    _sift_down(heap, 0, len(heap) - 1)


def _heappop(heap: list[Any]) -> Any:
    """``heapq.heappop`` (the heap must not be empty)."""
    last = heap.pop()
    if heap:
        first = heap[0]
        heap[0] = last
        _sift_up(heap, 0)
        return first
    return last


def _heapreplace(heap: list[Any], item: tuple[Any, ...]) -> Any:
    """``heapq.heapreplace``: pop the first item and push ``item``, in one pass."""
    first = heap[0]
    heap[0] = item
    _sift_up(heap, 0)
    return first


def _draw_id(ids: Iterator[object]) -> object:
    """The next id from SimPy's event counter (``env._eid``), as the counter made it: it goes
    into the queue's key as is (compiled, an ``int`` would be unboxed, freed and boxed again
    for the key). A ``for`` calls the iterator's own slot, where ``next(ids)`` is a generic
    call of the builtin."""
    for eid in ids:
        return eid
    raise RuntimeError("SimPy's event counter is exhausted.")


def sampler(spec: DistSpec, rng: np.random.Generator) -> Callable[[], float]:
    """A function drawing one duration from ``spec`` with ``rng``."""
    if spec.dist == "constant":
        value = float(spec.value or 0.0)
        return lambda: value
    mean = float(spec.mean or 0.0)
    if spec.dist == "exponential":
        return lambda: float(rng.exponential(mean))
    cv = float(spec.cv or 0.0)
    if spec.dist == "lognormal":
        sigma = math.sqrt(math.log1p(cv * cv))
        mu = math.log(mean) - sigma * sigma / 2
        return lambda: float(rng.lognormal(mu, sigma))
    shape = 1 / (cv * cv)
    return lambda: float(rng.gamma(shape, mean / shape))


def draw(spec: DistSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` durations from ``spec``, vectorised."""
    if spec.dist == "constant":
        return np.full(n, float(spec.value or 0.0))
    mean = float(spec.mean or 0.0)
    if spec.dist == "exponential":
        return rng.exponential(mean, n)
    cv = float(spec.cv or 0.0)
    if spec.dist == "lognormal":
        sigma = math.sqrt(math.log1p(cv * cv))
        return rng.lognormal(math.log(mean) - sigma * sigma / 2, sigma, n)
    shape = 1 / (cv * cv)
    return rng.gamma(shape, mean / shape, n)


class _Call(CallMachine):
    """A simulated caller in the queue: the call's machine, plus what the caller brings (when
    they reached the IVR, talk, patience and wrap-up) and a token that a pending answer must
    still match (a released ring invalidates it; ``answer_token`` is the ring an answer at once
    is for), and the recorder's codes for it (``groups``: its queue, language and country;
    ``agent_code``: the agent last offered it, ``agent_ref``), so the recorder never looks a
    name up for it.

    A subclass rather than a holder of the machine, with the arrival's fields copied in: one
    native object per call instead of three, which the collector, the allocator and attribute
    reads notice at 1.8 million calls a year (see bench_sim).
    """

    __slots__ = ("agent_code", "agent_ref", "answer_at", "answer_token", "arrival_t", "groups",
                 "handle_factor", "patience_at", "patience_eid", "patience_s", "repeat",
                 "ring_token", "talk_s", "wrap_s")

    def __init__(self, index: int, arrival_t: float, queue: str, language: str, country: str,
                 caller_number: str | None, priority: int, talk_s: float, patience_s: float,
                 wrap_s: float | None, customer_id: str | None, groups: int) -> None:
        super().__init__(str(index), queue, language, country, priority, caller_number,
                         customer_id, math.inf, _POLICY)
        self.arrival_t = arrival_t
        self.talk_s = talk_s
        self.patience_s = patience_s
        self.wrap_s = wrap_s
        self.ring_token = 0
        self.answer_token = -1
        #: When the pending answer of the current ring comes (inf: none will).
        self.answer_at = math.inf
        #: The patience timer held back while an answer is due before it: its time and its
        #: place in SimPy's order (None: none held back; see Simulation._enter_queue).
        self.patience_at = math.inf
        self.patience_eid: object = None
        #: The answering agent's factor on talk and wrap-up (newcomers are slower).
        self.handle_factor = 1.0
        #: A redial: the same caller called the same queue before (first-call resolution).
        self.repeat = False
        #: ``Recorder.group_code`` of the call's queue, language and country.
        self.groups = groups
        #: The agent of the last offer (the router's own string) and its
        #: ``Recorder.agent_index`` (-1: not offered yet).
        self.agent_ref: str | None = None
        self.agent_code = -1


class _Timer:
    """What to do when a timer is due, as an event in SimPy's queue.

    ``Environment.step`` needs two things of an event: ``callbacks`` (called with the event,
    then set to None) and ``_ok`` (True: it succeeded). A :class:`simpy.Timeout` with a
    ``functools.partial`` costs an interpreted ``__init__``, a ``schedule`` call and two
    objects per timer; this compiled record, put in the queue at the place the timeout would
    take (:meth:`Simulation._schedule`), is run by SimPy in the same order and costs a tenth.
    """

    __slots__ = ("_ok", "agent_id", "call", "callbacks", "token", "what")

    def __init__(self, what: int, call: _Call | None, token: int, agent_id: str,
                 callbacks: tuple[Callable[[_Timer], None], ...]) -> None:
        self.what = what
        self.call = call
        self.token = token
        self.agent_id = agent_id
        self.callbacks: tuple[Callable[[_Timer], None], ...] | None = callbacks
        self._ok = True


class TimerLoop:
    """Runs a SimPy environment as ``env.run(until)`` does, in compiled code, handing the
    engine's :class:`_Timer` records straight to ``on_timer`` with their time.

    SimPy's ``run(until)`` (4.1) schedules an URGENT event at ``until``, drawing an event id,
    and steps until that event is popped: every event keyed (time, priority, id) before it runs,
    and the clock reads its time. :meth:`run_until` draws the same ids and stops at the same key
    without the event, and processes any other event as ``Environment.step`` does (callbacks
    taken and cleared, each called with the event; a failed event nobody defused raises a copy
    of its exception), so SimPy events and processes sharing the environment keep the order
    ``env.run`` gives them. Stepping interpreted cost a tenth of a run's instructions.

    A timer being run stays at the head of the queue until the first timer it sets
    (:meth:`push`) takes its place: one sift through the heap instead of a pop and a push.
    The keys are unique (the event id), so the queue yields the same events in the same order
    whatever the heap's layout.
    """

    __slots__ = ("clock", "env", "free", "on_timer", "queue", "spent", "timer_clock")

    def __init__(self, env: simpy.Environment, on_timer: Callable[[_Timer, float], None]) -> None:
        self.env = env
        self.on_timer = on_timer
        self.queue: list[Any] = env._queue
        #: The environment's attributes, where its clock ``_now`` is set: a store into this
        #: dictionary is what ``env._now = t`` does (a plain attribute, no descriptor), without
        #: the generic attribute machinery, once per event.
        self.clock: dict[str, Any] = env.__dict__
        #: Set the environment's clock before each engine timer too (``on_timer`` may read
        #: ``env.now``); before any other event and at the stop it is always set.
        self.timer_clock = True
        #: The timer being run while it still sits at the head of the queue (else None).
        self.spent: _Timer | None = None
        #: Timers run and out of the queue, for :meth:`timer` to fill again: nothing holds
        #: one once it ran (its queue entry is gone, the engine keeps no timer), and reuse
        #: spares an allocation and a free per timer.
        self.free: list[_Timer] = []

    def timer(self, what: int, call: _Call | None, token: int, agent_id: str,
              callbacks: tuple[Callable[[_Timer], None], ...]) -> _Timer:
        """A timer record saying what to do: a spent one refilled, else a new one."""
        free = self.free
        if free:
            timer = free.pop()
            timer.what = what
            timer.call = call
            timer.token = token
            timer.agent_id = agent_id
            timer.callbacks = callbacks
            return timer
        return _Timer(what, call, token, agent_id, callbacks)

    def push(self, at: float, priority: int, eid: object, timer: _Timer) -> None:
        """Put ``timer`` in the queue keyed as ``Environment.schedule`` keys an event (``eid``
        drawn from the environment's counter)."""
        queue = self.queue
        spent = self.spent
        if spent is not None:
            # A tuple of any length, not of four types: compiled, its item is read as is,
            # neither looked up generically nor unboxed.
            head: tuple[Any, ...] = queue[0]
            if head[3] is spent:
                self.spent = None
                _heapreplace(queue, (at, priority, eid, timer))
                return
        _heappush(queue, (at, priority, eid, timer))

    def fire(self, timer: _Timer, t: float) -> None:
        """Hand a timer due at ``t`` to ``on_timer`` (the engine's own loop overrides this with
        a direct call)."""
        self.on_timer(timer, t)

    def run_until(self, until: float) -> None:
        """Process every event SimPy's ``run(until=until)`` would; then the clock reads
        ``until``."""
        env = self.env
        clock = self.clock
        queue = self.queue
        now: float = env._now
        stop_t = now + (until - now)  # where SimPy's until event is keyed, rounding included
        stop_eid: int = next(env._eid)
        while queue:
            item: tuple[Any, ...] = queue[0]
            t: float = item[0]
            # Stop at the first event keyed after (stop_t, URGENT, stop_eid).
            if t >= stop_t:
                priority: int = item[1]
                eid: int = item[2]
                if t > stop_t or priority > _URGENT or (priority == _URGENT and eid > stop_eid):
                    break
            event = item[3]
            if isinstance(event, _Timer):
                # The engine's own record: one callback, never failed; its time comes unboxed.
                if self.timer_clock:
                    clock["_now"] = item[0]  # the key's own object, as SimPy sets it
                event.callbacks = None
                self.spent = event
                try:
                    self.fire(event, t)
                finally:
                    self._drop_spent()
                # Out of the queue now: kept for reuse, without the call it was for (a call
                # ended must not stay alive in the free list).
                event.call = None
                self.free.append(event)
                continue
            clock["_now"] = item[0]  # the key's own object: an int time stays an int, as in SimPy
            _heappop(queue)
            callbacks = event.callbacks
            event.callbacks = None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                # As SimPy: the environment crashes with a copy of the failure, caused by it.
                value = event._value
                exc = type(value)(*value.args)
                exc.__cause__ = value
                raise exc
        env._now = stop_t
        # SimPy puts its stopped until event back in the queue (priority -1, no callbacks left),
        # drawing one more id; the event would do nothing, the id keeps the counter in step.
        next(env._eid)

    def _drop_spent(self) -> None:
        """Take the timer just run out of the queue if no timer it set took its place.
        (A method of its own: compiled, ``self.spent`` right after setting it would be read
        as the timer set.)"""
        spent = self.spent
        if spent is None:
            return
        self.spent = None
        queue = self.queue
        head: tuple[Any, ...] = queue[0]
        if head[3] is spent:
            _heappop(queue)
            return
        # SimPy code run by the timer put an earlier event ahead of it: find it by identity.
        for k, item in enumerate(queue):
            if item[3] is spent:
                queue[k] = queue[-1]
                queue.pop()
                heapq.heapify(queue)
                return


class _SimLoop(TimerLoop):
    """The simulation's :class:`TimerLoop`: a timer goes straight to ``Simulation._due``, a
    compiled call, not a call of a Python callable (its arguments parsed, its time boxed).

    The environment's clock is not set for the engine's own timers: the engine takes each
    timer's time as it is handed over (``Simulation.now``) and never reads ``env.now`` in one,
    nor schedules SimPy events from one. SimPy events and processes sharing the environment
    still run with the clock set, and it reads the stop time when the loop returns.
    """

    __slots__ = ("sim",)

    def __init__(self, env: simpy.Environment, sim: Simulation) -> None:
        super().__init__(env, sim._due)
        self.sim = sim
        self.timer_clock = False

    def fire(self, timer: _Timer, t: float) -> None:
        self.sim._due(timer, t)


class _Work:
    """Outbound agent work for an accepted callback or a voicemail: whom to call back (queue,
    language, country), when it is due and how long the call takes."""

    __slots__ = ("country", "due_t", "language", "queue", "talk_s")

    def __init__(self, queue: str, language: str, country: str, due_t: float,
                 talk_s: float) -> None:
        self.queue = queue
        self.language = language
        self.country = country
        self.due_t = due_t
        self.talk_s = talk_s


class _Draws:
    """Draws of one distribution from one stream, made ``_DRAWS`` at a time: the same values, in
    the same order, as one call of the generator per draw (numpy fills an array draw by draw),
    without the cost of a generator call each."""

    __slots__ = ("_k", "_rng", "_spec", "_values")

    def __init__(self, spec: DistSpec, rng: np.random.Generator) -> None:
        self._spec = spec
        self._rng = rng
        self._values: list[float] = []
        self._k = 0

    def next(self) -> float:
        """The next draw."""
        k = self._k
        if k >= len(self._values):
            self._values = draw(self._spec, self._rng, _DRAWS).tolist()
            k = 0
        self._k = k + 1
        return self._values[k]


class _Uniforms:
    """Uniform [0, 1) draws from one stream, ``_DRAWS`` at a time (the values of one
    ``random()`` call per draw)."""

    __slots__ = ("_k", "_rng", "_values")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._values: list[float] = []
        self._k = 0

    def next(self) -> float:
        """The next draw."""
        k = self._k
        if k >= len(self._values):
            self._values = self._rng.random(_DRAWS).tolist()
            k = 0
        self._k = k + 1
        return self._values[k]


class Simulation:
    """One replication: arrivals and a staffing timeline through the real router."""

    def __init__(self, center: LoadedCenter, arrivals: Iterable[Arrival],
                 staffing: list[StaffAction], behaviour: Behaviour, start: datetime,
                 horizon_s: float, interval_s: float, seed: int, keep_calls: bool = True,
                 calls_csv: str | None = None, call_batch: int = CALL_BATCH) -> None:
        self.center = center
        self.config = center.config
        policy = center_policy(center.config)
        if policy.rona_auto_ready_after_s is None and behaviour.rona_return_s is not None:
            # The center leaves a ring-no-answer pause to the agent: simulated agents end it.
            policy = dataclasses.replace(policy, rona_auto_ready_after_s=behaviour.rona_return_s)
        if behaviour.callback_work_delay_s is not None:
            # Agents doing callback work are paused with a reason of the simulator's own.
            policy = dataclasses.replace(
                policy, pause_reasons=(*policy.pause_reasons, CALLBACK_WORK_REASON))
        # The engine reads no call progress events (see _act): none are made.
        self.router = Router(policy, center.agents, progress=False)
        self.arrivals = arrivals
        self.staffing = staffing
        self.behaviour = behaviour
        self.start = start
        self.horizon_s = horizon_s
        self.interval_s = interval_s
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # Separate streams so that a change in one behaviour leaves the others' draws alone
        # (common random numbers across scenarios).
        streams = np.random.default_rng(seed).spawn(4)
        self._answer_delay = _Draws(behaviour.answer_delay, streams[0])
        self._answers_at_once = (behaviour.answer_delay.dist == "constant"
                                 and not behaviour.answer_delay.value)
        self._rng_ivr = streams[1]
        self._rona_draws = _Uniforms(streams[2])
        self._caller_draws = _Uniforms(streams[3])
        #: Simulated seconds from the start (the environment's clock, read once per timer).
        self.now = 0.0
        self.env = simpy.Environment()
        # What runs the environment and fills its queue as ``Environment.schedule`` does (see
        # _Timer), the environment's event counter, and the one callback of every timer.
        self._loop: TimerLoop = _SimLoop(self.env, self)
        #: The environment's event counter (see _draw_id).
        self._eids: Iterator[object] = self.env._eid
        self._callbacks: tuple[Callable[[_Timer], None], ...] = (self._on_timer,)
        self._staff_next = 0
        self._ivr_arrivals: list[Arrival] = []
        self._ivr_next = 0
        #: Callers walk this call flow when the behaviour names one (else ivr_time applies).
        self.ivr: IvrCallers | None = None
        if behaviour.ivr_flow:
            # A fifth stream, spawned only here, leaves the other four streams as they were.
            self.ivr = IvrCallers(load_sim_flow(behaviour.ivr_flow, center.config),
                                  start.timestamp(), np.random.default_rng(seed).spawn(5)[4],
                                  estimate_from(self.router.ewt_new))
        #: What the run records (call tallies, agent time, queue depths; the call log if
        #: ``keep_calls``, the call rows in the CSV file ``calls_csv`` if given).
        self.recorder = Recorder(center.config, center.agents, horizon_s, interval_s,
                                 keep_calls, calls_csv, call_batch)
        self._wake_at: float | None = None
        #: Calls the router has, by id (until it ends them).
        self._calls: dict[str, _Call] = {}
        # Callers due in the queue, in order of entry: time, index and position in the traffic
        # (arrays: a caller's Arrival and _Call exist only from its block's and its entry, so
        # a year's callers never sit in memory, nor in the collector's young generations).
        self._entry_t: np.ndarray = np.zeros(0)
        self._entry_index: np.ndarray = np.zeros(0, dtype=np.int64)
        self._entry_position: np.ndarray = np.zeros(0, dtype=np.int64)
        self._next_entry = 0
        self._batch: ArrivalBatch | None = None
        self._arrival_list: list[Arrival] = []
        # The block of callers being entered: from _block_start on, time, index and arrival.
        self._block_start = 0
        self._block_t: list[float] = []
        self._block_index: list[int] = []
        self._block_arrival_t: list[float] = []
        self._block_stream: list[int] = []
        self._block_number: list[str | None] = []
        self._block_priority: list[int] = []
        self._block_talk: list[float] = []
        self._block_patience: list[float] = []
        self._block_wrap: list[float] = []
        self._block_customer: list[str | None] = []
        self._streams: list[tuple[str, str, str]] = []
        #: The recorder's group code of each stream (``Recorder.group_code``).
        self._stream_groups: list[int] = []
        self._rona_p = float(behaviour.rona_probability)
        # Replies given once the router's current outputs are dealt with.
        self._follow_answer: list[_Call] = []
        self._follow_up: list[tuple[_Call, bool]] = []
        self.routing_errors = 0
        #: Calls whose machine finished (``Finished``): each call that reached the router once.
        self.calls_finished = 0
        #: Rings the simulator stopped for the machine (``ReleaseAgent``): ring-no-answer, a
        #: caller gone while the agent rang, an offer the router withdrew.
        self.rings_released = 0
        # Newcomers' talk and wrap-up take ``newcomer_handle_factor`` times the caller's draw.
        self._newcomer_factor = float(behaviour.newcomer_handle_factor)
        self._newcomers: frozenset[str] = frozenset(
            a.id for a in center.agents if a.newcomer) if self._newcomer_factor != 1.0 \
            else frozenset()
        self._wrap_up_s: dict[str, float] = {n: q.wrap_up_s for n, q in self.config.queues.items()}
        # Callers who abandon call again: their own stream (a seventh, spawned only here, so
        # the other streams' draws stay as they were).
        self._redial_p = float(behaviour.redial_probability)
        self._redial_draws: _Uniforms | None = None
        self._redial_delay: _Draws | None = None
        if self._redial_p > 0:
            stream = np.random.default_rng(seed).spawn(7)[6]
            self._redial_draws = _Uniforms(stream)
            self._redial_delay = _Draws(behaviour.redial_delay_s, stream)
        #: Redials made (callers who abandoned and called again before the horizon).
        self.redials = 0
        # Accepted callbacks and voicemails become outbound work (an eighth stream).
        self._work_delay: _Draws | None = None
        self._work_talk: _Draws | None = None
        if behaviour.callback_work_delay_s is not None:
            stream = np.random.default_rng(seed).spawn(8)[7]
            self._work_delay = _Draws(behaviour.callback_work_delay_s, stream)
            self._work_talk = _Draws(behaviour.callback_work_talk_s, stream)
        #: Work not due yet, by its number; work due and not begun, in order of due time.
        self._work_later: dict[int, _Work] = {}
        self._work_due: list[_Work] = []
        #: Ready agents, in the order they became ready (kept only with callback work).
        self._ready: dict[str, None] = {}
        self._agent_reason: dict[str, str | None] = {}
        self._work_try = False
        # The agent whose index was looked up last, and that index (_agent_code).
        self._hint_agent: str | None = None
        self._hint_code = -1
        self._profiles = {a.id: a for a in center.agents}
        self._skill = {n: q.skill for n, q in self.config.queues.items()}
        #: Callback work created (callbacks accepted, voicemails left) and done.
        self.work_created = 0
        self.work_done = 0

    # ------------------------------------------------------------------------- running

    def run(self, progress: Callable[[float], None] | None = None) -> RunResult:
        """Simulate until the horizon plus a drain period; return the replication's records.

        ``progress`` is called with the fraction done after each simulated hour.
        """
        t_wall = time.perf_counter()
        # What exists now (arrivals, roster, router) lives through the run: keep it out of the
        # cyclic collector's full passes, which would otherwise walk it again and again.
        # (Left alone when the caller froze objects itself: unfreezing would undo that.)
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            return self._run(progress, t_wall)
        finally:
            if freeze:
                gc.unfreeze()

    def _run(self, progress: Callable[[float], None] | None, t_wall: float) -> RunResult:
        self._start_arrivals()
        # The staffing timeline and the depth samples start as SimPy processes would.
        self._timer(0.0, _STAFF, None, 0, "", _URGENT)
        self._timer(0.0, _DEPTH, None, 0, "", _URGENT)
        end = self.horizon_s + DRAIN_S
        step = 3600.0
        t = 0.0
        while t < end:
            t = min(t + step, end)
            self._run_until(self.now + (t - self.now))
            if progress is not None:
                progress(t / end)
        # Calls the drain did not see out (a patient caller with a long maximum wait, a very
        # long talk) end with the run, so every offered call keeps its row in the call log.
        now = self.now
        for call in list(self._calls.values()):
            if call.phase is not Phase.ENDED:
                self._feed(call, _CALLER_GONE, now)
        self._sync(now)
        return self.recorder.result(self.seed, self.start, now,
                                    time.perf_counter() - t_wall)

    # ------------------------------------------------------------------------- the timers

    def _timer(self, delay: float, what: int, call: _Call | None = None, token: int = 0,
               agent_id: str = "", priority: int = _NORMAL) -> None:
        """Do ``what`` (for ``call``) ``delay`` seconds from now: a :class:`_Timer` in SimPy's
        event queue, at the place a timeout would take (an URGENT event for the starts at time
        0, as a process's start is)."""
        self._schedule(self.now + delay, priority, _draw_id(self._eids),
                       self._loop.timer(what, call, token, agent_id, self._callbacks))

    def _schedule(self, at: float, priority: int, eid: object, timer: _Timer) -> None:
        """Put ``timer`` in the environment's queue as ``Environment.schedule`` does: keyed by
        time, priority and the environment's own event counter (``eid``, drawn with
        :func:`_draw_id`), so SimPy runs it in the order it would run a timeout set then."""
        self._loop.push(at, priority, eid, timer)

    def _run_until(self, until: float) -> None:
        """Carry out every timer due before ``until``, in order; then the clock reads it.
        (Timers due at ``until`` itself wait for the next call, as ``run(until)`` leaves
        them.)"""
        if until > self.env._now:
            self._loop.run_until(until)
        self.now = until

    def _on_timer(self, timer: _Timer) -> None:
        """SimPy's callback for every :class:`_Timer` (should ``Environment.step`` run it)."""
        self._fire(timer.what, timer.call, timer.token, timer.agent_id, self.env._now)

    def _due(self, timer: _Timer, now: float) -> None:
        """``run_until``'s call for every :class:`_Timer`, with its time."""
        self._fire(timer.what, timer.call, timer.token, timer.agent_id, now)

    def _fire(self, what: int, call: _Call | None, token: int, agent_id: str,
              now: float) -> None:
        """One timer is due at ``now``: do what it says."""
        self.now = now
        if what == _WAKE:
            self._wake()
        elif what == _ENTER:
            self._enter_due()
        elif call is not None and what == _PATIENCE:
            self._patience_over(call)
        elif call is not None and what == _TALK_OVER:
            self._talk_over(call)
        elif call is not None and what == _ANSWER:
            self._answer(call, token, agent_id)
        elif what == _DEPTH:
            self._depth_sample()
        elif what == _STAFF:
            self._staffing_step(token == 1)
        elif call is not None and what == _AFTER_IVR:
            self._enter_queue(call, self.now)
        elif what == _IVR:
            self._ivr_step(token == 1)
        elif call is not None and what == _REDIAL:
            self._enter_queue(call, self.now)
        elif what == _WORK_DUE:
            self._work_due.append(self._work_later.pop(token))
            self._work_try = True
        elif what == _WORK_OVER:
            self._work_over(agent_id)
        if self._work_try:
            self._dispatch_work()

    def _start_arrivals(self) -> None:
        """Callers reach the queue after their IVR time; those who hang up in the IVR don't."""
        source = self.arrivals
        if self.ivr is not None or not isinstance(source, ArrivalBatch):
            arrivals = [a for a in source if a.t < self.horizon_s]
            if self.ivr is not None:
                self._ivr_arrivals = arrivals
                self._timer(0.0, _IVR, None, 0, "", _URGENT)
                return
            times = np.array([a.t for a in arrivals], dtype=float)
            position = np.arange(len(arrivals))
            self._arrival_list = arrivals
        else:
            # Forecast traffic as columns: callers are built a block at a time, on entry.
            position = np.flatnonzero(source.t < self.horizon_s)
            times = source.t[position]
            self._batch = source
            self._streams = [(s.queue, s.language, s.country) for s in source.streams]
            self._stream_groups = [self.recorder.group_code(*s) for s in self._streams]
        n = len(times)
        ivr = draw(self.behaviour.ivr_time, self._rng_ivr, n)
        if self._batch is None:  # a list of arrivals: a replay may carry its IVR times
            for k, a in enumerate(self._arrival_list):
                if a.ivr_s is not None:
                    ivr[k] = a.ivr_s  # a replayed call spends the IVR time its log shows
        gone = self._rng_ivr.random(n) < self.behaviour.ivr_abandon_probability
        entry = times + ivr if n else np.zeros(0)
        recorder = self.recorder
        for a in self._arrivals_at(position[np.flatnonzero(gone)]):
            recorder.ivr_ended(a.t, a.queue, a.language, a.country, IVR_ABANDONED)
        # Callers reach the queue in order of queue entry; each entry's timer sets the next.
        order = np.argsort(entry, kind="stable")
        kept = order[~gone[order]]
        self._entry_t = entry[kept]
        self._entry_index = kept
        self._entry_position = position[kept]
        self._next_entry = 0
        self._enter_due()

    def _arrivals_at(self, positions: np.ndarray) -> list[Arrival]:
        """The arrivals at ``positions`` of the run's traffic."""
        if self._batch is not None:
            return self._batch.take(positions)
        arrivals = self._arrival_list
        return [arrivals[i] for i in positions.tolist()]

    def _next_block(self, k: int) -> None:
        """The callers entering ``k``-th to ``k + ENTRY_BLOCK``-th (in order of entry), as
        columns of plain lists."""
        end = min(k + ENTRY_BLOCK, len(self._entry_t))
        self._block_start = k
        self._block_t = self._entry_t[k:end].tolist()
        self._block_index = self._entry_index[k:end].tolist()
        positions = self._entry_position[k:end]
        batch = self._batch
        if batch is not None:
            self._block_arrival_t = batch.t[positions].tolist()
            self._block_stream = batch.stream[positions].tolist()
            numbers = batch.caller_number
            self._block_number = [numbers[i] for i in positions.tolist()]
            self._block_priority = batch.priority[positions].tolist()
            self._block_talk = batch.talk_s[positions].tolist()
            self._block_patience = batch.patience_s[positions].tolist()
            self._block_wrap = batch.wrap_s[positions].tolist()
            self._block_customer = [None] * len(positions)
            return
        # A list of arrivals (a replay): one "stream" per caller.
        block = self._arrivals_at(positions)
        self._streams = [(a.queue, a.language, a.country) for a in block]
        self._stream_groups = [self.recorder.group_code(*s) for s in self._streams]
        self._block_arrival_t = [a.t for a in block]
        self._block_stream = list(range(len(block)))
        self._block_number = [a.caller_number for a in block]
        self._block_priority = [a.priority for a in block]
        self._block_talk = [a.talk_s for a in block]
        self._block_patience = [a.patience_s for a in block]
        self._block_wrap = [math.nan if a.wrap_s is None else a.wrap_s for a in block]
        self._block_customer = [a.customer_id for a in block]

    def _block_call(self, j: int) -> _Call:
        """The caller ``j``-th in the current block."""
        stream = self._block_stream[j]
        queue, language, country = self._streams[stream]
        wrap = self._block_wrap[j]
        return _Call(self._block_index[j], self._block_arrival_t[j], queue, language, country,
                     self._block_number[j], self._block_priority[j], self._block_talk[j],
                     self._block_patience[j], None if math.isnan(wrap) else wrap,
                     self._block_customer[j], self._stream_groups[stream])

    def _enter_due(self) -> None:
        """Queue every caller whose entry time has come; wake up again for the next one."""
        now = self.now
        k = self._next_entry
        n = len(self._entry_t)
        while k < n:
            j = k - self._block_start
            if j >= len(self._block_t):
                self._next_block(k)
                j = 0
            t = self._block_t[j]
            if t > now:
                self._timer(t - now, _ENTER)
                break
            k += 1
            self._enter_queue(self._block_call(j), now)
        self._next_entry = k

    def _ivr_step(self, resumed: bool) -> None:
        """Each caller walks the flow on arrival; the flow says when and where it is queued.
        (``resumed``: the timer for the next caller is due, whatever the clock's rounding.)"""
        ivr = self.ivr
        arrivals = self._ivr_arrivals
        i = self._ivr_next
        while ivr is not None and i < len(arrivals):
            a = arrivals[i]
            if not resumed and a.t > self.now:
                self._ivr_next = i
                self._timer(a.t - self.now, _IVR, None, 1)
                return
            resumed = False
            r = ivr.walk(a)
            if r.status in QUEUED:
                call = _Call(i, a.t, r.queue, r.language, a.country, a.caller_number,
                             r.priority, a.talk_s, a.patience_s, a.wrap_s, r.customer_id,
                             self.recorder.group_code(r.queue, r.language, a.country))
                self._timer(r.elapsed_s, _AFTER_IVR, call)
            else:
                outcome = _IVR_END.get(r.status, IVR_HANGUP)
                self.recorder.ivr_ended(a.t, r.queue, r.language, a.country, outcome)
                if self._work_delay is not None and outcome in (CALLBACK, VOICEMAIL):
                    self._new_work(r.queue, r.language, a.country, self.now)
            i += 1
        self._ivr_next = i

    def _staffing_step(self, resumed: bool) -> None:
        """Agents log in, pause, come back and log out as the timeline says (``resumed``: the
        timer for the next action is due)."""
        router = self.router
        staffing = self.staffing
        k = self._staff_next
        while k < len(staffing):
            act = staffing[k]
            if not resumed and act.t > self.now:
                self._staff_next = k
                self._timer(act.t - self.now, _STAFF, None, 1)
                return
            resumed = False
            k += 1
            now = self.now
            try:
                if act.action == "login" and router.agent_state(act.agent) in _LOGOUT_DEFERRED:
                    # Logged out while on a simulated call, the logout still waits for the
                    # call to end; logging back in cancels it (a ready in wrap-up ends it).
                    out = router.ready(now, act.agent)
                elif act.action == "login":
                    # A login with a reason is an agent on a break under way at the start.
                    out = router.login(now, act.agent, paused_reason=act.reason)
                elif act.action == "logout":
                    out = router.logout(now, act.agent)
                elif act.action == "pause":
                    out = router.pause(now, act.agent, act.reason or "break")
                else:
                    out = router.ready(now, act.agent)
            except RoutingError:
                # e.g. a break that starts while the agent is already logged out.
                self.routing_errors += 1
                continue
            self._handle(out, now)
        self._staff_next = k

    def _depth_sample(self) -> None:
        """Sample every queue's waiting calls once a simulated minute over the horizon."""
        if self.now < self.horizon_s:
            self.recorder.depths(self.router.queue_depths())
            self._timer(DEPTH_SAMPLE_S, _DEPTH)

    # ----------------------------------------------------------------------- the router

    def _sync(self, now: float) -> None:
        deadline = self.router.next_deadline()
        if deadline is not None and (self._wake_at is None or deadline < self._wake_at):
            self._wake_at = deadline
            self._timer(max(0.0, deadline - now), _WAKE)

    def _wake(self) -> None:
        now = self.now
        wake_at = self._wake_at
        if wake_at is not None and now >= wake_at - 1e-9:
            self._wake_at = None
            self._handle(self.router.advance(max(now, wake_at)), now)
        else:
            self._sync(now)

    def _handle(self, out: list[Output], now: float, subject: _Call | None = None) -> None:
        """Act on the router's outputs at ``now``, then re-arm the router's wake-up."""
        self._act(out, now, subject)
        self._sync(now)

    def _act(self, out: list[Output], now: float, subject: _Call | None = None) -> None:
        """Act on the router's outputs at ``now`` (the current simulated time): commands go to
        their call's machine, events to the recorder. ``subject``: the call the router was
        told about, whose outputs are mostly about it and its agent (known without a lookup:
        the router hands back the very strings it was given)."""
        calls = self._calls
        # An isinstance chain, most frequent first: compiled, it is a pointer comparison each.
        for o in out:
            if isinstance(o, AgentStateChanged):
                agent_id = o.agent_id
                if subject is not None and agent_id is subject.agent_ref:
                    agent = subject.agent_code
                else:
                    agent = self._agent_code(agent_id)
                self.recorder.agent_state(o, agent)
                if self._work_delay is not None:
                    self._agent_changed(o)
            elif isinstance(o, Offer):
                call_id = o.call_id
                if subject is not None and call_id is subject.call_id:
                    call: _Call | None = subject
                else:
                    call = calls.get(call_id)
                if call is not None:
                    call.agent_ref = o.agent_id
                    call.agent_code = self._agent_code(o.agent_id)
                    self._feed(call, o, now)
            elif isinstance(o, CallEnded):
                # get and del: compiled, ``pop`` with a default is a generic method call.
                ended = calls.get(o.call_id)
                if ended is not None:
                    del calls[o.call_id]
                    self._call_ended(ended, o)
                    if self._work_delay is not None and o.outcome is Outcome.CALLBACK:
                        self._new_work(o.queue, o.language, o.country, now)
                    if self._redial_p > 0 and o.outcome is Outcome.ABANDONED:
                        self._maybe_redial(ended, now)
            # Three isinstance calls, not one with a tuple: compiled, each is a pointer test.
            elif isinstance(o, CancelOffer) or isinstance(o, Overflow) \
                    or isinstance(o, OfferCallback):  # noqa: SIM101
                call = calls.get(o.call_id)
                if call is not None:
                    self._feed(call, o, now)
        if self._follow_answer:
            answers, self._follow_answer = self._follow_answer, []
            for call in answers:
                answering = call.agent_id
                if call.answer_token == call.ring_token and answering is not None:
                    call.answer_token = -1  # once, even if the call is listed twice
                    self._feed(call, Answered(answering), now)
                    if call.phase is not Phase.TALKING:
                        self._release_patience(call)
        if self._follow_up:
            replies, self._follow_up = self._follow_up, []
            for call, accepted in replies:
                self._feed(call, _ACCEPTED if accepted else _DECLINED, now)

    def _agent_code(self, agent_id: str) -> int:
        """The recorder's index of ``agent_id``; the last one asked for is remembered (an
        offer follows its agent's ringing)."""
        if agent_id is self._hint_agent:
            return self._hint_code
        code = self.recorder.agent_index(agent_id)
        self._hint_agent = agent_id
        self._hint_code = code
        return code

    def _call_ended(self, call: _Call, o: CallEnded) -> None:
        """Record the end of ``call``, with the codes it carries where the router ended it in
        the queue, language and country it arrived with, as it nearly always does."""
        if o.queue == call.queue and o.language == call.language and o.country == call.country:
            groups = call.groups
        else:  # moved to another queue, or a name the router replaced by its default
            groups = self.recorder.group_code(o.queue, o.language, o.country)
        agent_id = o.agent_id
        agent = -1
        if agent_id is not None:
            agent = call.agent_code if agent_id is call.agent_ref else self._agent_code(agent_id)
        self.recorder.call_ended(call.arrival_t, o, groups, agent, call.repeat)

    # ------------------------------------------------------------------ the call machine

    def _feed(self, call: _Call, event: CallEvent, now: float) -> None:
        """Give ``event`` to the call's machine and carry out its actions in order."""
        for action in call.handle(event):
            self._carry_out(call, action, now)

    def _carry_out(self, call: _Call, a: Action, now: float) -> None:
        """One of the machine's actions, in simulated time and through the router."""
        # Most frequent first. Hold, hand-back, callback storage, a refused answer and
        # Ignored reports have nothing to simulate (the router records the outcome).
        if isinstance(a, Dial):
            self._dial(call, a)
        elif isinstance(a, ReportAnswered):
            self._act(self.router.offer_answered(now, call.call_id, a.agent_id), now, call)
        elif isinstance(a, Connect):
            if a.agent_id in self._newcomers:
                call.handle_factor = self._newcomer_factor
            self._timer(call.talk_s * call.handle_factor, _TALK_OVER, call)
        elif isinstance(a, ReportHangup):
            wrap = call.wrap_s
            if call.handle_factor != 1.0:
                base = self._wrap_up_s.get(call.queue, 0.0) if wrap is None else wrap
                wrap = base * call.handle_factor
            self._act(self.router.hangup(now, call.call_id, wrap), now, call)
        elif isinstance(a, Finished):
            self.calls_finished += 1
        elif isinstance(a, ReleaseAgent):
            self.rings_released += 1
            call.ring_token += 1  # the agent's pending answer, if any, never comes
            call.answer_at = math.inf
            self._release_patience(call)
            self._feed(call, DialFailed(a.agent_id, "no_answer"), now)
        elif isinstance(a, ReportFailed):
            self._act(self.router.offer_failed(now, call.call_id, a.reason, a.agent_id), now, call)
        elif isinstance(a, AskCallback):
            accepted = self._caller_draws.next() < self.behaviour.callback_accept_probability
            self._follow_up.append((call, bool(accepted)))
        elif isinstance(a, ReportCallback):
            self._act(self.router.callback_accepted(now, call.call_id), now, call)
        elif isinstance(a, ReportWithdrawn):
            self._act(self.router.withdraw(now, call.call_id, a.reason), now, call)

    def _talk_over(self, call: _Call) -> None:
        """Talk over: the agent's side ends."""
        now = self.now
        self._feed(call, _AGENT_GONE, now)
        self._sync(now)

    # -------------------------------------------------------------------------- callers

    def _enter_queue(self, call: _Call, now: float) -> None:
        call_id = call.call_id
        self._calls[call_id] = call
        self._feed(call, _QUEUED, now)
        # The machine's copy of the call's fields: compiled, a native read each.
        self._handle(self.router.call_arrived(now, call_id, call.queue, call.language,
                                              call.country, call.priority, call.customer_id),
                     now, call)
        patience = call.patience_s
        if patience < math.inf and call_id in self._calls:
            # The patience timer takes its place in SimPy's order now, but goes into the queue
            # only if it can still matter: a call talking already, or ringing an agent whose
            # answer comes first, keeps it out (most calls), unless that answer is lost
            # (``_release_patience``). The heap stays small and no stale timer is run.
            at = now + patience
            call.patience_at = at
            call.patience_eid = _draw_id(self._eids)
            phase = call.phase
            if not (phase is Phase.TALKING or (phase is Phase.RINGING and call.answer_at < at)):
                self._release_patience(call)

    def _release_patience(self, call: _Call) -> None:
        """A held-back patience timer goes into SimPy's queue, at the place it took when the
        caller entered the queue (the answer it waited behind will not come)."""
        eid = call.patience_eid
        if eid is not None:
            call.patience_eid = None
            self._schedule(call.patience_at, _NORMAL, eid,
                           self._loop.timer(_PATIENCE, call, 0, "", self._callbacks))

    # -------------------------------------------------------------------- callback work

    def _new_work(self, queue: str, language: str, country: str, now: float) -> None:
        """An accepted callback or a voicemail: outbound work due after the drawn delay (work
        due after the horizon is not done, as no call arrives then)."""
        delays = self._work_delay
        talks = self._work_talk
        if delays is None or talks is None:
            return
        delay = delays.next()
        talk = talks.next()
        if now + delay >= self.horizon_s:
            return
        self.work_created += 1
        self._work_later[self.work_created] = _Work(queue, language, country, now + delay, talk)
        self._timer(delay, _WORK_DUE, None, self.work_created)

    def _agent_changed(self, o: AgentStateChanged) -> None:
        """Keep the ready agents (in the order they became ready) for callback work."""
        agent_id = o.agent_id
        self._agent_reason[agent_id] = o.reason
        if o.state is AgentState.READY:
            self._ready[agent_id] = None
            if self._work_due:
                self._work_try = True
        else:
            self._ready.pop(agent_id, None)

    def _can_do(self, agent_id: str, work: _Work) -> bool:
        """The agent serves the work's queue (its skill) in its language."""
        profile = self._profiles[agent_id]
        return (profile.skills.get(self._skill.get(work.queue, ""), 0) > 0
                and work.language in profile.languages)

    def _dispatch_work(self) -> None:
        """Due work goes, oldest first, to the longest-ready agent of its queue and language:
        agents still ready once the router has dealt out the inbound calls (work is never
        taken before a waiting caller). The agent pauses (reason ``callback_work``) for the
        call and the queue's wrap-up, both times their newcomer factor."""
        self._work_try = False
        now = self.now
        due = self._work_due
        k = 0
        while k < len(due) and self._ready:
            work = due[k]
            agent_id = next((a for a in self._ready if self._can_do(a, work)), None)
            if agent_id is None:
                k += 1
                continue
            del due[k]
            try:
                out = self.router.pause(now, agent_id, CALLBACK_WORK_REASON)
            except RoutingError:
                self.routing_errors += 1
                self._ready.pop(agent_id, None)
                due.insert(k, work)
                continue
            factor = self._newcomer_factor if agent_id in self._newcomers else 1.0
            self.work_done += 1
            self._handle(out, now)
            talk = work.talk_s * factor
            self.recorder.callback_work(now, now - work.due_t, talk, work.queue,
                                              work.language, work.country,
                                              self._profiles[agent_id].site)
            wrap = self._wrap_up_s.get(work.queue, 0.0) * factor
            self._timer(talk + wrap, _WORK_OVER, None, 0, agent_id)

    def _work_over(self, agent_id: str) -> None:
        """The outbound call and its wrap-up are over: the agent is ready again, unless a
        break or a logout came meanwhile (the staffing's word wins)."""
        if self._agent_reason.get(agent_id) != CALLBACK_WORK_REASON:
            return
        now = self.now
        try:
            out = self.router.ready(now, agent_id)
        except RoutingError:
            self.routing_errors += 1
            return
        self._handle(out, now)

    def _maybe_redial(self, gone: _Call, now: float) -> None:
        """A caller who abandoned calls again, with ``redial_probability``, after a drawn
        delay: a new call in the same queue, language and country, marked as a repeat, with
        the caller's own talk, patience and wrap-up (they still need the same help). Redials
        due after the horizon are not made (as no arrival is)."""
        draws = self._redial_draws
        delays = self._redial_delay
        if draws is None or delays is None or draws.next() >= self._redial_p:
            return
        delay = delays.next()
        if now + delay >= self.horizon_s:
            return
        self.redials += 1
        call = _Call(-self.redials, now + delay, gone.queue, gone.language, gone.country,
                     gone.number, gone.priority, gone.talk_s, gone.patience_s,
                     gone.wrap_s, gone.customer_id, gone.groups)
        call.repeat = True
        self._timer(delay, _REDIAL, call)

    def _patience_over(self, call: _Call) -> None:
        phase = call.phase
        if phase is not Phase.TALKING and phase is not Phase.ENDED:
            now = self.now
            self._feed(call, _CALLER_GONE, now)
            self._sync(now)

    def _dial(self, call: _Call, d: Dial) -> None:
        """The agent rings: they answer after their delay, or let it ring (ring-no-answer)."""
        call.ring_token += 1
        call.answer_at = math.inf
        if self._rona_p > 0 and self._rona_draws.next() < self._rona_p:
            self._release_patience(call)
            return  # the agent lets it ring; the router's ring timer takes it back
        if self._answers_at_once:
            call.answer_token = call.ring_token
            call.answer_at = self.now
            if not call.answer_at < call.patience_at:
                self._release_patience(call)
            self._follow_answer.append(call)
            return
        delay = self._answer_delay.next()
        if delay >= d.ring_timeout_s:
            self._release_patience(call)
            return
        at = self.now + delay
        call.answer_at = at
        if not at < call.patience_at:
            self._release_patience(call)
        self._timer(delay, _ANSWER, call, call.ring_token, d.agent_id)

    def _answer(self, call: _Call, token: int, agent_id: str) -> None:
        if call.ring_token == token:
            now = self.now
            self._feed(call, Answered(agent_id), now)
            if call.phase is not Phase.TALKING:  # the answer did not connect: patience runs
                self._release_patience(call)
            self._sync(now)
