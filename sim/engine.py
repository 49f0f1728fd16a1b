"""The SimPy engine: callers, agents, the real router and the real call machine in simulated time.

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

Callbacks on SimPy timeouts are used instead of one process per call: a month of traffic is
150,000 calls, and a process per call would cost more than the routing itself.
"""

from __future__ import annotations

import functools
import gc
import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

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
    Output,
    Overflow,
    RoutingError,
)
from acd.core.router import Router
from sim.ivrsim import QUEUED, IvrCallers, estimate_from, load_sim_flow
from sim.recorder import CALL_BATCH, DEPTH_SAMPLE_S, Recorder
from sim.records import CALLBACK, IVR_ABANDONED, IVR_HANGUP, VOICEMAIL, RunResult
from sim.scenario import Behaviour, DistSpec
from sim.staffing import StaffAction
from sim.traffic import Arrival

__all__ = ["DEPTH_SAMPLE_S", "DRAIN_S", "Simulation", "draw", "sampler"]

#: After the last arrival the run goes on this long so calls in progress can finish.
DRAIN_S = 3 * 3600.0
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
    """A simulated caller in the queue: the call's machine, plus the arrival and a token that a
    pending answer must still match (a released ring invalidates it; ``answer_token`` is the
    ring an answer at once is for).

    A subclass rather than a holder of the machine: one object per call instead of two, which
    the collector and the allocator notice at 150,000 calls a month (see bench_sim).
    """

    __slots__ = ("answer_token", "arrival", "ring_token")

    def __init__(self, arrival: Arrival, index: int) -> None:
        super().__init__(str(index), arrival.queue, arrival.language, arrival.country,
                         arrival.priority, arrival.caller_number, arrival.customer_id, math.inf,
                         _POLICY)
        self.arrival = arrival
        self.ring_token = 0
        self.answer_token = -1


class Simulation:
    """One replication: arrivals and a staffing timeline through the real router."""

    def __init__(self, center: LoadedCenter, arrivals: Iterable[Arrival],
                 staffing: list[StaffAction], behaviour: Behaviour, start: datetime,
                 horizon_s: float, interval_s: float, seed: int, keep_calls: bool = True,
                 calls_csv: str | None = None, call_batch: int = CALL_BATCH) -> None:
        self.center = center
        self.config = center.config
        self.router = Router(center_policy(center.config), center.agents)
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
        self._answer_delay = sampler(behaviour.answer_delay, streams[0])
        self._answers_at_once = (behaviour.answer_delay.dist == "constant"
                                 and not behaviour.answer_delay.value)
        self._rng_ivr = streams[1]
        self._rng_rona = streams[2]
        self._rng_caller = streams[3]
        self.env = simpy.Environment()
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
        # Callers due in the queue, in order of entry: time, arrival and index (parallel lists:
        # a caller's _Call (its machine) exists only from its entry, so no per-caller object waits
        # in the collector's young generations for hours of simulated time).
        self._entry_t: list[float] = []
        self._entry_arrival: list[Arrival] = []
        self._entry_index: list[int] = []
        self._next_entry = 0
        self._rona_p = float(behaviour.rona_probability)
        # Replies given once the router's current outputs are dealt with.
        self._follow_answer: list[_Call] = []
        self._follow_up: list[tuple[_Call, bool]] = []
        self.routing_errors = 0
        # Timer callbacks bound once (a bound method per timer would be one more object).
        self._talk_over = self._talk_over_at
        self._on_patience_over = self._patience_over
        self._on_answer = self._answer
        #: Calls whose machine finished (``Finished``): each call that reached the router once.
        self.calls_finished = 0
        #: Rings the simulator stopped for the machine (``ReleaseAgent``): ring-no-answer, a
        #: caller gone while the agent rang, an offer the router withdrew.
        self.rings_released = 0

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
        env = self.env
        self._start_arrivals()
        env.process(self._staffing_process())
        env.process(self._depth_process())
        end = self.horizon_s + DRAIN_S
        step = 3600.0
        t = 0.0
        while t < end:
            t = min(t + step, end)
            env.run(until=t)
            if progress is not None:
                progress(t / end)
        # Calls the drain did not see out (a patient caller with a long maximum wait, a very
        # long talk) end with the run, so every offered call keeps its row in the call log.
        now = env.now
        for call in list(self._calls.values()):
            if call.phase is not Phase.ENDED:
                self._feed(call, _CALLER_GONE, now)
        self._sync(now)
        return self.recorder.result(self.seed, self.start, now,
                                    time.perf_counter() - t_wall)

    def _start_arrivals(self) -> None:
        """Callers reach the queue after their IVR time; those who hang up in the IVR don't."""
        arrivals = [a for a in self.arrivals if a.t < self.horizon_s]
        if self.ivr is not None:
            self.env.process(self._ivr_arrival_process(arrivals, self.ivr))
            return
        n = len(arrivals)
        ivr = draw(self.behaviour.ivr_time, self._rng_ivr, n)
        gone = self._rng_ivr.random(n) < self.behaviour.ivr_abandon_probability
        entry = np.array([a.t for a in arrivals]) + ivr if n else np.zeros(0)
        recorder = self.recorder
        for i in np.flatnonzero(gone):
            a = arrivals[i]
            recorder.ivr_ended(a.t, a.queue, a.language, a.country, IVR_ABANDONED)
        # Callers reach the queue in order of queue entry; each entry's timeout schedules the
        # next (a chain of callbacks costs less than resuming a process for every caller).
        entry_s: list[float] = entry.tolist()
        gone_l: list[bool] = gone.tolist()
        order: list[int] = np.argsort(entry, kind="stable").tolist()
        kept = [i for i in order if not gone_l[i]]
        self._entry_t = [entry_s[i] for i in kept]
        self._entry_arrival = [arrivals[i] for i in kept]
        self._entry_index = kept
        self._next_entry = 0
        self._enter_due(None)

    def _enter_due(self, _ev: object) -> None:
        """Queue every caller whose entry time has come; wake up again for the next one."""
        entry_t = self._entry_t
        env = self.env
        now = env.now
        k = self._next_entry
        while k < len(entry_t):
            t = entry_t[k]
            if t > now:
                ev = env.timeout(t - now)
                ev.callbacks.append(self._enter_due)
                break
            k += 1
            self._enter_queue(_Call(self._entry_arrival[k - 1], self._entry_index[k - 1]), now)
        self._next_entry = k

    def _ivr_arrival_process(self, arrivals: list[Arrival], ivr: IvrCallers) -> Any:
        """Each caller walks the flow on arrival; the flow says when and where it is queued."""
        env = self.env
        for i, a in enumerate(arrivals):
            if a.t > env.now:
                yield env.timeout(a.t - env.now)
            r = ivr.walk(a)
            if r.status in QUEUED:
                call = _Call(Arrival(a.t, r.queue, r.language, a.country, a.caller_number,
                                     r.priority, a.talk_s, a.patience_s, a.wrap_s,
                                     r.customer_id), i)
                ev = env.timeout(r.elapsed_s)
                ev.callbacks.append(functools.partial(self._queue_after_ivr, call))
            else:
                self.recorder.ivr_ended(a.t, r.queue, r.language, a.country,
                                        _IVR_END.get(r.status, IVR_HANGUP))

    def _queue_after_ivr(self, call: _Call, _ev: object) -> None:
        self._enter_queue(call, self.env.now)

    def _staffing_process(self) -> Any:
        env = self.env
        router = self.router
        for act in self.staffing:
            if act.t > env.now:
                yield env.timeout(act.t - env.now)
            now = env.now
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

    def _depth_process(self) -> Any:
        """Sample every queue's waiting calls once a simulated minute over the horizon."""
        env = self.env
        depths = self.router.queue_depths
        recorder = self.recorder
        while env.now < self.horizon_s:
            recorder.depths(depths())
            yield env.timeout(DEPTH_SAMPLE_S)

    # ----------------------------------------------------------------------- the router

    def _sync(self, now: float) -> None:
        deadline = self.router.next_deadline()
        if deadline is not None and (self._wake_at is None or deadline < self._wake_at):
            self._wake_at = deadline
            ev = self.env.timeout(max(0.0, deadline - now))
            ev.callbacks.append(self._wake)

    def _wake(self, _ev: object) -> None:
        now = self.env.now
        wake_at = self._wake_at
        if wake_at is not None and now >= wake_at - 1e-9:
            self._wake_at = None
            self._handle(self.router.advance(max(now, wake_at)), now)
        else:
            self._sync(now)

    def _handle(self, out: list[Output], now: float) -> None:
        """Act on the router's outputs at ``now``, then re-arm the router's wake-up."""
        self._act(out, now)
        self._sync(now)

    def _act(self, out: list[Output], now: float) -> None:
        """Act on the router's outputs at ``now`` (the current simulated time): commands go to
        their call's machine, events to the recorder."""
        calls = self._calls
        # An isinstance chain, most frequent first: compiled, it is a pointer comparison each.
        for o in out:
            if isinstance(o, AgentStateChanged):
                self.recorder.agent_state(o)
            elif isinstance(o, Offer):
                call = calls.get(o.call_id)
                if call is not None:
                    self._feed(call, o, now)
            elif isinstance(o, CallEnded):
                ended = calls.pop(o.call_id, None)
                if ended is not None:
                    self.recorder.call_ended(ended.arrival.t, o)
            # Three isinstance calls, not one with a tuple: compiled, each is a pointer test.
            elif isinstance(o, CancelOffer) or isinstance(o, Overflow) \
                    or isinstance(o, OfferCallback):  # noqa: SIM101
                call = calls.get(o.call_id)
                if call is not None:
                    self._feed(call, o, now)
        if self._follow_answer:
            answers, self._follow_answer = self._follow_answer, []
            for call in answers:
                agent_id = call.agent_id
                if call.answer_token == call.ring_token and agent_id is not None:
                    call.answer_token = -1  # once, even if the call is listed twice
                    self._feed(call, Answered(agent_id), now)
        if self._follow_up:
            replies, self._follow_up = self._follow_up, []
            for call, accepted in replies:
                self._feed(call, _ACCEPTED if accepted else _DECLINED, now)

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
            self._act(self.router.offer_answered(now, call.call_id, a.agent_id), now)
        elif isinstance(a, Connect):
            ev = self.env.timeout(call.arrival.talk_s)
            ev.callbacks.append(functools.partial(self._talk_over, call))
        elif isinstance(a, ReportHangup):
            self._act(self.router.hangup(now, call.call_id, call.arrival.wrap_s), now)
        elif isinstance(a, Finished):
            self.calls_finished += 1
        elif isinstance(a, ReleaseAgent):
            self.rings_released += 1
            call.ring_token += 1  # the agent's pending answer, if any, never comes
            self._feed(call, DialFailed(a.agent_id, "no_answer"), now)
        elif isinstance(a, ReportFailed):
            self._act(self.router.offer_failed(now, call.call_id, a.reason, a.agent_id), now)
        elif isinstance(a, AskCallback):
            accepted = self._rng_caller.random() < self.behaviour.callback_accept_probability
            self._follow_up.append((call, bool(accepted)))
        elif isinstance(a, ReportCallback):
            self._act(self.router.callback_accepted(now, call.call_id), now)
        elif isinstance(a, ReportWithdrawn):
            self._act(self.router.withdraw(now, call.call_id, a.reason), now)

    def _talk_over_at(self, call: _Call, _ev: object) -> None:
        """Talk over: the agent's side ends."""
        now = self.env.now
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
                     now)
        patience = call.arrival.patience_s
        if patience < math.inf and call_id in self._calls:
            ev = self.env.timeout(patience)
            ev.callbacks.append(functools.partial(self._on_patience_over, call))

    def _patience_over(self, call: _Call, _ev: object) -> None:
        phase = call.phase
        if phase is not Phase.TALKING and phase is not Phase.ENDED:
            now = self.env.now
            self._feed(call, _CALLER_GONE, now)
            self._sync(now)

    def _dial(self, call: _Call, d: Dial) -> None:
        """The agent rings: they answer after their delay, or let it ring (ring-no-answer)."""
        call.ring_token += 1
        if self._rona_p > 0 and self._rng_rona.random() < self._rona_p:
            return  # the agent lets it ring; the router's ring timer takes it back
        if self._answers_at_once:
            call.answer_token = call.ring_token
            self._follow_answer.append(call)
            return
        delay = self._answer_delay()
        if delay >= d.ring_timeout_s:
            return
        ev = self.env.timeout(delay)
        ev.callbacks.append(functools.partial(self._on_answer, call, call.ring_token, d.agent_id))

    def _answer(self, call: _Call, token: int, agent_id: str, _ev: object) -> None:
        if call.ring_token == token:
            now = self.env.now
            self._feed(call, Answered(agent_id), now)
            self._sync(now)
