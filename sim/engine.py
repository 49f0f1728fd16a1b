"""The SimPy engine: callers, agents and the real router in simulated time.

The router is the production :class:`acd.core.router.Router`; this module only does what
Asterisk and people do around it: callers arrive, spend time in the IVR, wait with finite
patience, agents answer after a short ring (or not: ring-no-answer), talk, and work shifts with
breaks. The router is woken at its ``next_deadline()`` exactly as the live service wakes it.

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
from typing import Any

import numpy as np
import simpy

from acd.config.load import LoadedCenter
from acd.config.policy import center_policy
from acd.core.model import (
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CancelOffer,
    Offer,
    OfferCallback,
    Outcome,
    Output,
    Overflow,
    RoutingError,
)
from acd.core.router import OTHER, Router
from sim.ivrsim import QUEUED, IvrCallers, estimate_from, load_sim_flow
from sim.records import (
    ABANDONED,
    AGENT_TIME,
    ANSWERED,
    BUSY,
    CALLBACK,
    IVR_ABANDONED,
    IVR_HANGUP,
    NO_SITE,
    OVERFLOWED,
    PAUSED,
    READY,
    VOICEMAIL,
    AgentTime,
    CallLog,
    RunResult,
)
from sim.scenario import Behaviour, DistSpec
from sim.staffing import StaffAction
from sim.traffic import Arrival

#: After the last arrival the run goes on this long so calls in progress can finish.
DRAIN_S = 3 * 3600.0
#: How often queue depth is sampled (simulated seconds).
DEPTH_SAMPLE_S = 60.0
#: How calls that end in the IVR are recorded (they never enter a queue).
_IVR_END = {"voicemail": VOICEMAIL, "callback": CALLBACK, "abandoned": IVR_ABANDONED}
#: States in which a logout waits for the call (and wrap-up) to end.
_LOGOUT_DEFERRED = frozenset({AgentState.ON_CALL, AgentState.WRAP_UP})


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


class _Call:
    __slots__ = ("arrival", "index", "offer_token", "talking", "target")

    def __init__(self, arrival: Arrival, index: int) -> None:
        self.arrival = arrival
        self.index = index
        self.offer_token = 0
        self.talking = False
        self.target: str | None = None


class Simulation:
    """One replication: arrivals and a staffing timeline through the real router."""

    def __init__(self, center: LoadedCenter, arrivals: Iterable[Arrival],
                 staffing: list[StaffAction], behaviour: Behaviour, start: datetime,
                 horizon_s: float, interval_s: float, seed: int) -> None:
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
        self._wake_at: float | None = None
        self._calls: dict[str, _Call] = {}
        self.queues = tuple(self.config.queues)
        self.languages = tuple(self.config.languages)
        self.countries = (*self.config.countries, OTHER)
        self.sites = tuple(self.config.sites)
        self._code_q = {n: i for i, n in enumerate(self.queues)}
        self._code_l = {n: i for i, n in enumerate(self.languages)}
        self._code_c = {n: i for i, n in enumerate(self.countries)}
        self._code_s = {n: i for i, n in enumerate(self.sites)}
        n_cat = len(AGENT_TIME)
        # Agent state log: (time, agent index, site x category key or -1 when logged out);
        # turned into seconds per interval, site and category at the end, vectorised.
        self._agent_index = {a.id: i for i, a in enumerate(center.agents)}
        #: Per agent index: the first key of its site (site x category keys).
        self._site_base = [self._code_s[a.site] * n_cat for a in center.agents]
        # Agent time is accrued as states change: seconds per (interval, site x category) in a
        # flat list, and each agent's current key (-1 = logged out) and since when.
        self._n_int = math.ceil(horizon_s / interval_s)
        self._n_keys = len(self.sites) * n_cat
        self._acc = [0.0] * (self._n_int * self._n_keys)
        self._ag_key = [-1] * len(center.agents)
        self._ag_since = [0.0] * len(center.agents)
        self._follow_up: list[str] = []
        self._entries: list[tuple[float, _Call]] = []
        self._next_entry = 0
        self._rona_p = float(behaviour.rona_probability)
        self._depth_samples: list[list[int]] = []
        self._follow_answer: list[str] = []
        # Call rows.
        self._rows: list[tuple[float, float, float, float, int, int, int, int, int]] = []
        self.routing_errors = 0

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
        for call_id in list(self._calls):
            self._handle(self.router.hangup(env.now, call_id), env.now)
        return self._result(time.perf_counter() - t_wall)

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
        for i in np.flatnonzero(gone):
            a = arrivals[i]
            self._rows.append((a.t, math.nan, 0.0, 0.0, self._q(a.queue), self._l(a.language),
                               self._c(a.country), NO_SITE, IVR_ABANDONED))
        # Callers reach the queue in order of queue entry; each entry's timeout schedules the
        # next (a chain of callbacks costs less than resuming a process for every caller).
        entry_s: list[float] = entry.tolist()
        gone_l: list[bool] = gone.tolist()
        order: list[int] = np.argsort(entry, kind="stable").tolist()
        self._entries = [(entry_s[i], _Call(arrivals[i], i)) for i in order if not gone_l[i]]
        self._next_entry = 0
        self._enter_due(None)

    def _enter_due(self, _ev: object) -> None:
        """Queue every caller whose entry time has come; wake up again for the next one."""
        entries = self._entries
        env = self.env
        now = env.now
        k = self._next_entry
        while k < len(entries):
            t, call = entries[k]
            if t > now:
                ev = env.timeout(t - now)
                ev.callbacks.append(self._enter_due)
                break
            k += 1
            self._enter_queue(call, now)
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
                self._rows.append((a.t, math.nan, 0.0, 0.0, self._q(r.queue),
                                   self._l(r.language), self._c(a.country), NO_SITE,
                                   _IVR_END.get(r.status, IVR_HANGUP)))

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
        samples = self._depth_samples
        while env.now < self.horizon_s:
            samples.append(depths())
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
        """Act on the router's outputs at ``now`` (the current simulated time)."""
        # An isinstance chain, most frequent first: compiled, it is a pointer comparison each.
        for o in out:
            if isinstance(o, AgentStateChanged):
                self._agent_state(o)
            elif isinstance(o, Offer):
                self._offer(o)
            elif isinstance(o, CallAnswered):
                self._answered(o)
            elif isinstance(o, CallEnded):
                self._ended(o)
            elif isinstance(o, CancelOffer):
                self._cancel_offer(o)
            elif isinstance(o, Overflow):
                self._overflowed(o)
            elif isinstance(o, OfferCallback):
                self._callback_offered(o)
        if self._follow_answer:
            answers, self._follow_answer = self._follow_answer, []
            for call_id in answers:
                if call_id in self._calls:
                    self._act(self.router.offer_answered(now, call_id), now)
        if self._follow_up:
            follow_up, self._follow_up = self._follow_up, []
            for call_id in follow_up:
                if call_id in self._calls:
                    self._act(self.router.callback_accepted(now, call_id), now)

    def _cancel_offer(self, o: CancelOffer) -> None:
        call = self._calls.get(o.call_id)
        if call is not None:
            call.offer_token += 1

    def _overflowed(self, o: Overflow) -> None:
        call = self._calls.get(o.call_id)
        if call is not None:
            call.target = o.target

    def _callback_offered(self, o: OfferCallback) -> None:
        if self._rng_caller.random() < self.behaviour.callback_accept_probability:
            self._follow_up.append(o.call_id)

    # -------------------------------------------------------------------------- callers

    def _enter_queue(self, call: _Call, now: float) -> None:
        a = call.arrival
        call_id = str(call.index)
        self._calls[call_id] = call
        self._handle(self.router.call_arrived(now, call_id, a.queue, a.language, a.country,
                                              a.priority, a.customer_id), now)
        patience = a.patience_s
        if patience < math.inf and call_id in self._calls:
            ev = self.env.timeout(patience)
            ev.callbacks.append(lambda _e: self._patience_over(call_id))

    def _patience_over(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is not None and not call.talking:
            now = self.env.now
            self._handle(self.router.hangup(now, call_id), now)

    def _offer(self, o: Offer) -> None:
        call = self._calls.get(o.call_id)
        if call is None:
            return
        call.offer_token += 1
        if self._rona_p > 0 and self._rng_rona.random() < self._rona_p:
            return  # the agent lets it ring; the router's ring timer takes it back
        if self._answers_at_once:
            self._follow_answer.append(o.call_id)
            return
        delay = self._answer_delay()
        if delay >= o.ring_timeout_s:
            return
        token = call.offer_token
        ev = self.env.timeout(delay)
        ev.callbacks.append(lambda _e: self._answer(o.call_id, token))

    def _answer(self, call_id: str, token: int) -> None:
        call = self._calls.get(call_id)
        if call is None or call.offer_token != token or call.talking:
            return
        now = self.env.now
        self._handle(self.router.offer_answered(now, call_id), now)

    def _answered(self, o: CallAnswered) -> None:
        call = self._calls[o.call_id]
        call.talking = True
        ev = self.env.timeout(call.arrival.talk_s)
        ev.callbacks.append(lambda _e: self._talk_over(o.call_id, call.arrival.wrap_s))

    def _talk_over(self, call_id: str, wrap_s: float | None) -> None:
        now = self.env.now
        self._handle(self.router.hangup(now, call_id, wrap_s), now)

    def _ended(self, o: CallEnded) -> None:
        call = self._calls.pop(o.call_id, None)
        if call is None:
            return
        a = call.arrival
        if o.outcome is Outcome.ANSWERED:
            code, site = ANSWERED, self._code_s[o.site] if o.site else NO_SITE
        elif o.outcome is Outcome.ABANDONED:
            code, site = ABANDONED, NO_SITE
        elif o.outcome is Outcome.CALLBACK:
            code, site = CALLBACK, NO_SITE
        else:
            code, site = OVERFLOWED, NO_SITE
        self._rows.append((a.t, o.arrived, o.wait_s, o.talk_s, self._q(o.queue),
                           self._l(o.language), self._c(o.country), site, code))

    # --------------------------------------------------------------------------- agents

    def _agent_state(self, o: AgentStateChanged) -> None:
        # Identity tests on the state, not a dict: an Enum member hashes in Python code.
        state = o.state
        if state is AgentState.READY:
            category = READY
        elif state is AgentState.PAUSED:
            category = PAUSED
        elif state is AgentState.LOGGED_OUT:
            category = -1
        else:  # ringing, on a call, wrapping up
            category = BUSY
        i = self._agent_index[o.agent_id]
        key = self._ag_key[i]
        if key >= 0:
            self._accrue(key, self._ag_since[i], o.at)
        self._ag_since[i] = o.at
        self._ag_key[i] = self._site_base[i] + category if category >= 0 else -1

    def _accrue(self, key: int, t0: float, t1: float) -> None:
        """Add one agent's span [t0, t1) in ``key`` to the intervals it covers."""
        interval = self.interval_s
        k = int(t0 // interval)
        acc = self._acc
        n_keys = self._n_keys
        n_int = self._n_int
        while t0 < t1 and k < n_int:
            end = min((k + 1) * interval, t1)
            acc[k * n_keys + key] += end - t0
            t0 = end
            k += 1

    # -------------------------------------------------------------------------- records

    def _q(self, name: str) -> int:
        return self._code_q.get(name, -1)

    def _l(self, name: str) -> int:
        return self._code_l.get(name, -1)

    def _c(self, name: str) -> int:
        return self._code_c.get(name, len(self.countries) - 1)

    def _agent_seconds(self) -> np.ndarray:
        """Seconds per (interval, site, category), the spans still open ending now."""
        now = self.env.now
        for i, key in enumerate(self._ag_key):
            if key >= 0:
                self._accrue(key, self._ag_since[i], now)
                self._ag_since[i] = now
        return np.array(self._acc, dtype=float).reshape(self._n_int, len(self.sites),
                                                        len(AGENT_TIME))

    def _depth_per_interval(self) -> tuple[np.ndarray, np.ndarray]:
        n_int = math.ceil(self.horizon_s / self.interval_s)
        mean = np.zeros((n_int, len(self.queues)))
        top = np.zeros((n_int, len(self.queues)))
        if self._depth_samples:
            samples = np.asarray(self._depth_samples, dtype=float)
            cell = (np.arange(len(samples)) * DEPTH_SAMPLE_S // self.interval_s).astype(int)
            counts = np.bincount(cell, minlength=n_int)[:n_int]
            for q in range(samples.shape[1]):
                sums = np.bincount(cell, weights=samples[:, q], minlength=n_int)[:n_int]
                mean[:, q] = np.divide(sums, counts, out=np.zeros(n_int), where=counts > 0)
                np.maximum.at(top[:, q], cell[cell < n_int], samples[cell < n_int, q])
        return mean, top

    def _result(self, wall_s: float) -> RunResult:
        rows = self._rows
        cols = list(zip(*rows, strict=True)) if rows else [()] * 9
        n = len(rows)

        def col(i: int, dtype: type) -> np.ndarray:
            return np.fromiter(cols[i], dtype=dtype, count=n)

        calls = CallLog(
            arrival_s=col(0, np.float64), queued_s=col(1, np.float64), wait_s=col(2, np.float64),
            talk_s=col(3, np.float64), queue=col(4, np.int16), language=col(5, np.int16),
            country=col(6, np.int16), site=col(7, np.int16), outcome=col(8, np.int8),
            queues=self.queues, languages=self.languages, countries=self.countries,
            sites=self.sites)
        order = np.argsort(calls.arrival_s, kind="stable")
        calls = CallLog(**{f: (getattr(calls, f)[order] if isinstance(getattr(calls, f),
                                                                         np.ndarray)
                               else getattr(calls, f))
                           for f in calls.__dataclass_fields__})
        depth_mean, depth_max = self._depth_per_interval()
        sl = self.config.center.service_level
        return RunResult(
            seed=self.seed, calls=calls,
            agent_time=AgentTime(self._agent_seconds(), self.sites, self.interval_s),
            start_iso=self.start.isoformat(), duration_s=self.horizon_s,
            interval_s=self.interval_s, threshold_s=sl.threshold_s, target=sl.target,
            queue_sl=tuple((self.config.sl_for(q).threshold_s, self.config.sl_for(q).target)
                           for q in self.queues),
            short_abandon_s=self.config.center.short_abandon_s, wall_s=wall_s,
            queue_depth_mean=depth_mean, queue_depth_max=depth_max)
