"""The router: all routing state and decisions, sans-I/O.

Every entry point takes ``now`` (seconds; monotonic in live use, simulated in the simulator),
first runs any timer that fell due up to ``now``, then applies the event and returns the list
of commands and domain events it produced. :meth:`Router.next_deadline` tells the driver when
to call :meth:`Router.advance` next. Nothing here reads a clock or does I/O.

Data structures (why they look like this): waiting calls sit in *buckets* keyed by
``(queue, language)``, each a list sorted by ``(-priority, arrival sequence)``. A call that has
begun to accept fallback languages sits in those buckets too. A freed agent therefore looks
only at the buckets for its skills x languages and takes the first eligible call of each.
Ready agents sit in dicts keyed by ``(skill, language)`` in the order they became ready, so the
longest-idle eligible agent is usually the first one looked at.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from heapq import heappop, heappush
from typing import NoReturn

from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    AgentProfile,
    AgentSnapshot,
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallMoved,
    CallOffered,
    CallQueued,
    CallRequeued,
    CallState,
    CancelOffer,
    DuplicateCall,
    Ignored,
    InputDefaulted,
    InvalidPauseReason,
    Offer,
    OfferCallback,
    Outcome,
    Output,
    Overflow,
    QueueSnapshot,
    RoutingError,
    StepApplied,
    UnknownAgent,
    UnknownCall,
)
from acd.core.policy import (
    AgentSelection,
    CallSelection,
    CenterPolicy,
    ExpansionStep,
    NewcomerPolicy,
    QueuePolicy,
)

# Timer kinds.
# A queued call has one live _CALL timer: its next expansion step or its maximum wait.
_CALL, _RING, _WRAP, _AUTO_READY = range(4)
#: Overflow chains longer than this end in voicemail (a queue cycle in config cannot loop).
MAX_QUEUE_MOVES = 4
#: Pseudo country for callers whose country is unknown: no home site, no country-restricted agent.
OTHER = "other"
_OUT_TARGETS = frozenset({"voicemail", "callback"})
# Newcomer tiers a call looks at, in order (each a tuple of ``newcomer`` flags).
_TENURED_ONLY: tuple[tuple[bool, ...], ...] = ((False,),)
_NEWCOMERS_LAST: tuple[tuple[bool, ...], ...] = ((False,), (True,))
_ANYONE: tuple[tuple[bool, ...], ...] = ((False, True),)


_ReadyKey = tuple[str, str, str, bool]


class _QueueRt:
    """A queue's runtime view of its policy, precomputed for the hot path."""

    __slots__ = ("aht_s", "all_sites", "calls", "expansion", "line", "longest_idle", "max_length",
                 "max_wait_s", "min_level", "name", "newcomers_last_resort", "newcomers_ok",
                 "overflow", "priority", "ring_timeout_s", "rr_last", "selection",
                 "site_affinity", "skill", "sort_offset", "step_after", "threshold_s",
                 "wrap_up_s")

    def __init__(self, name: str, q: QueuePolicy) -> None:
        # Flat copies on one slotted object: the hot path reads them without indirection.
        self.name: str = name
        self.skill: str = q.skill
        self.priority: int = q.priority
        self.wrap_up_s: float = q.wrap_up_s
        self.ring_timeout_s: float = q.ring_timeout_s
        self.max_length: int = q.max_length
        self.max_wait_s: float = q.max_wait_s
        self.overflow: str = q.overflow
        self.expansion: list[ExpansionStep] = list(q.expansion)
        #: When each expansion step applies, seconds after the call entered the queue.
        self.step_after: list[float] = [float(step.after_s) for step in q.expansion]
        # The routing rule's first step.
        self.min_level: int = q.min_level
        self.all_sites: bool = q.all_sites
        self.newcomers_ok: bool = q.newcomers is not NewcomerPolicy.exclude
        self.newcomers_last_resort: bool = q.newcomers is NewcomerPolicy.last_resort
        self.selection: AgentSelection = q.agent_selection
        self.longest_idle: bool = q.agent_selection is AgentSelection.longest_idle
        self.site_affinity: bool = bool(q.site_affinity)
        self.threshold_s: float = q.sl_threshold_s
        sl_aware = q.call_selection is CallSelection.sl_aware
        self.sort_offset: float = self.threshold_s if sl_aware else 0.0
        self.aht_s: float = q.aht_hint_s
        self.rr_last: int = -1
        #: Calls of this queue that are queued or ringing (talking calls have left).
        self.calls: dict[str, _Call] = {}
        #: Queued calls as ``(-priority, seq)``, sorted: position = bisect, depth = len.
        self.line: list[tuple[int, int]] = []


class _Timed:
    """Something a timer can be armed for; a change of ``version`` disarms its timers."""

    __slots__ = ("version",)

    def __init__(self) -> None:
        self.version = 0


class _Call(_Timed):
    """A call in the router (mutable; never leaves the module)."""

    __slots__ = ("accept_fallback", "agent", "all_sites", "answered_at", "arrived", "buckets",
                 "country", "customer_id", "entered", "fallbacks", "home_site", "id", "language",
                 "min_level", "moves", "newcomers_ok", "priority", "q", "seq", "state", "step")

    def __init__(self, call_id: str, q: _QueueRt, language: str, country: str,
                 home_site: str | None, fallbacks: tuple[str, ...], priority: int, now: float,
                 seq: int, customer_id: str | None) -> None:
        self.id = call_id
        self.q = q
        self.language = language
        self.country = country
        self.home_site = home_site
        self.fallbacks = fallbacks
        self.priority = priority
        self.arrived = now
        self.entered = now
        self.seq = seq
        self.customer_id = customer_id
        self.state = CallState.QUEUED
        self.agent: _Agent | None = None
        self.answered_at = 0.0
        self.version = 0
        self.moves = 0
        self.buckets: list[list[tuple[int, int, _Call]]] = []
        self.reset_rules()

    def reset_rules(self) -> None:
        """Start the current queue's routing rule from its first step."""
        q = self.q
        self.min_level = q.min_level
        self.all_sites = q.all_sites or self.home_site is None
        self.accept_fallback = False
        self.newcomers_ok = q.newcomers_ok
        self.step = 0


class _Agent(_Timed):
    """An agent's runtime state."""

    __slots__ = ("busy_s", "busy_since", "call", "endpoint", "idle_since", "index", "login_at",
                 "pending", "pending_reason", "profile", "ready_keys", "reason", "since", "state")

    def __init__(self, profile: AgentProfile, index: int,
                 ready_keys: list[_ReadyKey]) -> None:
        self.profile = profile
        self.index = index
        self.ready_keys = ready_keys
        self.state = AgentState.LOGGED_OUT
        self.reason: str | None = None
        self.since = 0.0
        self.idle_since = 0.0
        self.call: _Call | None = None
        self.endpoint = profile.endpoint
        self.pending: AgentState | None = None
        self.pending_reason: str | None = None
        self.login_at = 0.0
        self.busy_s = 0.0
        self.busy_since: float | None = None
        self.version = 0


class Router:
    """Routes calls to agents by skill, language, country and site; pure and deterministic."""

    def __init__(self, policy: CenterPolicy, agents: Sequence[AgentProfile]) -> None:
        self.policy = policy
        self._queues = {name: _QueueRt(name, q) for name, q in policy.queues.items()}
        self._queues_by_skill: dict[str, list[_QueueRt]] = {}
        for q in self._queues.values():
            self._queues_by_skill.setdefault(q.skill, []).append(q)
        self._agents: dict[str, _Agent] = {}
        for i, p in enumerate(agents):
            keys = [(s, lang, p.site, p.newcomer) for s in p.skills for lang in p.languages]
            self._agents[p.id] = _Agent(p, i, keys)
        # Per agent: the buckets it must look at when freed (its skills' queues x its languages).
        self._agent_buckets: dict[str, list[tuple[str, str]]] = {
            a.profile.id: [(q.name, lang) for s in a.profile.skills
                           for q in self._queues_by_skill.get(s, ())
                           for lang in a.profile.languages]
            for a in self._agents.values()
        }
        # Ready agents by (skill, language, site, newcomer), each dict in the order they became
        # ready: a call looks only where eligible agents can be, longest idle first.
        self._ready: dict[_ReadyKey, dict[str, _Agent]] = {}
        self._sites = tuple(policy.sites)
        #: Site tiers by (home site, all sites allowed, site affinity), built on first use.
        self._site_tiers: dict[tuple[str | None, bool, bool], tuple[tuple[str, ...], ...]] = {}
        #: Agents logged in and not paused, per skill (for wait estimates).
        self._staffed: dict[str, int] = dict.fromkeys(policy.skills, 0)
        self._buckets: dict[tuple[str, str], list[tuple[int, int, _Call]]] = {}
        self._calls: dict[str, _Call] = {}
        self._timers: list[tuple[float, int, int, _Timed, int]] = []
        self._seq = 0
        self._out: list[Output] = []
        self._carry: list[Output] = []
        self._pause_reasons = frozenset(policy.pause_reasons)
        #: Per country: home site, fallback languages, native language (plain, for speed).
        self._country_rt: dict[str, tuple[str | None, tuple[str, ...], str]] = {
            code: (c.home_site, tuple(c.fallback_languages), c.language)
            for code, c in policy.countries.items()}
        self._languages = frozenset(policy.languages)
        self._default_language = policy.default_language
        self._default_queue = policy.default_queue

    # ----------------------------------------------------------------------------- driver API

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`advance` has work to do, or None."""
        timers = self._timers
        while timers:
            when, _, _kind, obj, version = timers[0]
            if obj.version == version:
                return when
            heappop(timers)
        return None

    def advance(self, now: float) -> list[Output]:
        """Run every timer due at or before ``now``."""
        out = self._begin(now)
        self._run_timers(now)
        return out

    # ------------------------------------------------------------------------------- calls

    def call_arrived(self, now: float, call_id: str, queue: str, language: str, country: str,
                     priority: int = 0, customer_id: str | None = None,
                     arrived_at: float | None = None) -> list[Output]:
        """A call enters ``queue``. Unknown queue, language or country fall back to defaults.

        ``arrived_at`` (<= ``now``) restores a call that was already waiting, e.g. after a
        config reload or a restart: it keeps its place and its expansion steps' clock.
        Calls restored together must be restored in their original arrival order.
        """
        out = self._begin(now)
        if call_id in self._calls:
            self._refuse(DuplicateCall(f"call {call_id!r} is already in the router"))
        q = self._queues.get(queue)
        if q is None:
            out.append(InputDefaulted(call_id, "queue", queue, self._default_queue))
            q = self._queues[self._default_queue]
        c = self._country_rt.get(country)
        fallbacks: tuple[str, ...]
        home_site: str | None
        if c is None:
            if country != OTHER:
                out.append(InputDefaulted(call_id, "country", country, OTHER))
            country, home_site, fallbacks = OTHER, None, ()
        else:
            home_site, fallbacks, native = c
        if language not in self._languages:
            used = native if c is not None else self._default_language
            out.append(InputDefaulted(call_id, "language", language, used))
            language = used
        fallbacks = tuple(f for f in fallbacks if f != language)
        self._seq += 1
        since = now if arrived_at is None else min(arrived_at, now)
        call = _Call(call_id, q, language, country, home_site, fallbacks,
                     q.priority + priority, since, self._seq, customer_id)
        self._calls[call_id] = call
        self._enter_queue(now, call, q, since)
        return out

    def offer_answered(self, now: float, call_id: str, agent_id: str | None = None
                       ) -> list[Output]:
        """The offered agent answered: the call is talking.

        With ``agent_id``, an answer from an agent the call is no longer offered to (a late
        report after a ring timeout re-offered it) is ignored instead of credited to another.
        """
        out = self._begin(now)
        call = self._ringing(call_id, agent_id, "answer", out)
        if call is None:
            return out
        agent = call.agent
        assert agent is not None
        call.state = CallState.TALKING
        call.answered_at = now
        call.version += 1
        q = call.q
        q.calls.pop(call.id, None)
        self._set_state(now, agent, AgentState.ON_CALL, None)
        out.append(CallAnswered(call.id, agent.profile.id, q.name, now - call.arrived, now))
        return out

    def offer_failed(self, now: float, call_id: str, reason: str = "no_answer",
                     agent_id: str | None = None) -> list[Output]:
        """The offer was not answered (no answer, busy, unavailable): ring-no-answer handling."""
        out = self._begin(now)
        call = self._ringing(call_id, agent_id, "offer_failed", out)
        if call is not None:
            self._rona(now, call, reason, cancel=False)
        return out

    def _ringing(self, call_id: str, agent_id: str | None, what: str, out: list[Output]
                 ) -> _Call | None:
        """The call if it is ringing (at ``agent_id``, when given); else an Ignored report."""
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.RINGING or call.agent is None:
            state = call.state.value if call is not None else "not in the router"
            out.append(Ignored(call_id, what, f"call is {state}"))
            return None
        if agent_id is not None and call.agent.profile.id != agent_id:
            out.append(Ignored(call_id, what, f"call now rings agent {call.agent.profile.id}, "
                                              f"not {agent_id}"))
            return None
        return call

    def hangup(self, now: float, call_id: str, wrap_up_s: float | None = None) -> list[Output]:
        """Either side hung up: an abandon while queued or ringing, the end of talk otherwise.

        After talk the agent wraps up for ``wrap_up_s`` (this call's own after-call work, e.g.
        from a replayed log), or for the queue's configured wrap-up when it is None.
        """
        out = self._begin(now)
        call = self._calls.get(call_id)
        if call is None:
            out.append(Ignored(call_id, "hangup", "call is not in the router"))
            return out
        if call.state is CallState.TALKING:
            agent = call.agent
            assert agent is not None
            wrap_s = call.q.wrap_up_s if wrap_up_s is None else max(0.0, wrap_up_s)
            self._end(now, call, Outcome.ANSWERED, wrap_s=wrap_s)
            self._start_wrap_up(now, agent, wrap_s)
        elif call.state is CallState.RINGING:
            agent = call.agent
            assert agent is not None
            out.append(CancelOffer(call.id, agent.profile.id, "caller_hangup"))
            self._end(now, call, Outcome.ABANDONED)
            self._agent_freed(now, agent)
        else:
            self._end(now, call, Outcome.ABANDONED)
        return out

    def withdraw(self, now: float, call_id: str, reason: str) -> list[Output]:
        """The telephony side took a waiting call out of the ACD itself, e.g. the service,
        shutting down, handed a held caller back to the dialplan: not an abandon, the call
        ends as overflowed. No command follows (the caller is already on the way elsewhere);
        a ringing agent gets a ``CancelOffer`` with ``reason`` and is free again.
        """
        out = self._begin(now)
        call = self._calls.get(call_id)
        if call is None or call.state is CallState.TALKING:
            state = call.state.value if call is not None else "not in the router"
            out.append(Ignored(call_id, "withdraw", f"call is {state}"))
            return out
        agent = call.agent
        if call.state is CallState.RINGING and agent is not None:
            out.append(CancelOffer(call.id, agent.profile.id, reason))
            self._end(now, call, Outcome.OVERFLOWED)
            self._agent_freed(now, agent)
        else:
            self._end(now, call, Outcome.OVERFLOWED)
        return out

    def callback_accepted(self, now: float, call_id: str) -> list[Output]:
        """The caller took the callback offer: the call leaves the queue as a callback."""
        out = self._begin(now)
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.QUEUED:
            state = call.state.value if call is not None else "not in the router"
            out.append(Ignored(call_id, "callback_accepted", f"call is {state}"))
            return out
        self._end(now, call, Outcome.CALLBACK)
        return out

    # ------------------------------------------------------------------------------ agents

    def login(self, now: float, agent_id: str, endpoint: str | None = None,
              paused_reason: str | None = None) -> list[Output]:
        """Log an agent in (ready, or paused with a reason). A second login is refused.

        An agent who logged out during a call (the logout waits for the call to end) and
        logs in again before it ended stays logged in: the login replaces the pending logout
        and applies after the call, ready or paused.
        """
        out = self._begin(now)
        agent = self._agent(agent_id)
        if agent.pending is AgentState.LOGGED_OUT:
            if paused_reason is not None:
                self._check_reason(paused_reason)
            agent.pending = AgentState.PAUSED if paused_reason is not None else None
            agent.pending_reason = paused_reason
            agent.endpoint = endpoint or agent.endpoint
            return out
        if agent.state is not AgentState.LOGGED_OUT:
            self._refuse(AgentAlreadyLoggedIn(
                f"agent {agent_id!r} is already logged in ({agent.state.value}); log out first"))
        if paused_reason is not None:
            self._check_reason(paused_reason)
        agent.endpoint = endpoint or agent.profile.endpoint
        agent.login_at = now
        agent.busy_s = 0.0
        agent.pending = None
        if paused_reason is not None:
            self._set_state(now, agent, AgentState.PAUSED, paused_reason)
        else:
            self._make_ready(now, agent)
        return out

    def logout(self, now: float, agent_id: str) -> list[Output]:
        """Log an agent out; on a call it waits until the call ends, wrap-up it ends at once."""
        out = self._begin(now)
        agent = self._agent(agent_id)
        st = agent.state
        if st is AgentState.LOGGED_OUT:
            self._refuse(AgentNotLoggedIn(f"agent {agent_id!r} is not logged in"))
        if st in (AgentState.ON_CALL, AgentState.WRAP_UP):
            if st is AgentState.WRAP_UP:
                self._leave_wrap_up(now, agent, AgentState.LOGGED_OUT, None)
            else:
                agent.pending, agent.pending_reason = AgentState.LOGGED_OUT, None
            return out
        if st is AgentState.RINGING:
            assert agent.call is not None
            self._rona(now, agent.call, "agent_logout", cancel=True,
                       then=(AgentState.LOGGED_OUT, None))
            return out
        self._set_state(now, agent, AgentState.LOGGED_OUT, None)
        return out

    def pause(self, now: float, agent_id: str, reason: str) -> list[Output]:
        """Pause an agent with a configured reason; on a call or in wrap-up it applies after."""
        out = self._begin(now)
        self._check_reason(reason)
        agent = self._agent(agent_id)
        st = agent.state
        if st is AgentState.LOGGED_OUT:
            self._refuse(AgentNotLoggedIn(f"agent {agent_id!r} is not logged in"))
        if st is AgentState.ON_CALL:
            agent.pending, agent.pending_reason = AgentState.PAUSED, reason
        elif st is AgentState.WRAP_UP:
            self._leave_wrap_up(now, agent, AgentState.PAUSED, reason)
        elif st is AgentState.RINGING:
            assert agent.call is not None
            self._rona(now, agent.call, "agent_paused", cancel=True,
                       then=(AgentState.PAUSED, reason))
        else:
            self._set_state(now, agent, AgentState.PAUSED, reason)
        return out

    def ready(self, now: float, agent_id: str) -> list[Output]:
        """Make an agent ready: from a pause, or ending wrap-up early."""
        out = self._begin(now)
        agent = self._agent(agent_id)
        st = agent.state
        if st is AgentState.LOGGED_OUT:
            self._refuse(AgentNotLoggedIn(f"agent {agent_id!r} is not logged in"))
        if st is AgentState.PAUSED:
            self._make_ready(now, agent)
        elif st is AgentState.WRAP_UP:
            self._leave_wrap_up(now, agent, AgentState.READY, None)
        elif st is AgentState.ON_CALL:
            agent.pending, agent.pending_reason = None, None
        else:
            out.append(Ignored(agent_id, "ready", f"agent is {st.value}"))
        return out

    # --------------------------------------------------------------------------- queries

    def ewt(self, call_id: str) -> float:
        """Estimated remaining wait for a queued call: calls ahead x AHT / staffed agents."""
        call = self._call(call_id)
        return self._ewt_for(call.q, self._ahead(call))

    def ewt_new(self, queue: str) -> float:
        """Estimated wait for a call that would arrive now at ``queue`` with base priority."""
        q = self._queues.get(queue) or self._queues[self._default_queue]
        return self._ewt_for(q, len(q.line))

    def queue_snapshot(self, now: float) -> list[QueueSnapshot]:
        """Every queue's depth, oldest wait and staffing at ``now``."""
        snaps = []
        for q in self._queues.values():
            waiting = [c for c in q.calls.values() if c.state is CallState.QUEUED]
            ringing = sum(1 for c in q.calls.values() if c.state is CallState.RINGING)
            talking = sum(1 for a in self._agents.values() if a.state is AgentState.ON_CALL
                          and a.call is not None and a.call.q is q)
            staffed = [a for a in self._agents.values() if q.skill in a.profile.skills
                       and a.state is not AgentState.LOGGED_OUT]
            oldest = max((now - c.arrived for c in waiting), default=0.0)
            snaps.append(QueueSnapshot(
                q.name, len(waiting), ringing, talking, oldest,
                len(staffed), sum(1 for a in staffed if a.state is AgentState.READY),
                self._ewt_for(q, len(waiting))))
        return snaps

    def queue_depths(self) -> list[int]:
        """Calls waiting (not ringing) in each queue, in config order; cheap enough to sample."""
        return [len(q.line) for q in self._queues.values()]

    def agent_snapshot(self) -> list[AgentSnapshot]:
        """Every agent's state."""
        return [AgentSnapshot(a.profile.id, a.profile.site, a.profile.group, a.state, a.reason,
                              a.call.id if a.call is not None else None, a.since,
                              a.profile.newcomer)
                for a in self._agents.values()]

    def agent_state(self, agent_id: str) -> AgentState:
        """One agent's state."""
        agent = self._agents.get(agent_id)
        if agent is None:  # a query: raised without _refuse (see _call)
            raise UnknownAgent(f"agent {agent_id!r} is not on the roster")
        return agent.state

    def call_state(self, call_id: str) -> CallState | None:
        """One call's state, or None once it has ended."""
        call = self._calls.get(call_id)
        return call.state if call is not None else None

    @property
    def calls_in_router(self) -> int:
        """Calls queued, ringing or talking."""
        return len(self._calls)

    def agent_ids(self) -> Iterable[str]:
        """Every agent on the roster, in roster order."""
        return self._agents.keys()

    # --------------------------------------------------------------------------- internals

    def _begin(self, now: float) -> list[Output]:
        # Outputs of timers run before a refused request are carried into the next call's
        # list, so a refusal never swallows e.g. a ring-timeout CancelOffer.
        out: list[Output] = self._carry
        self._carry = []
        self._out = out
        if self._timers and self._timers[0][0] <= now:
            self._run_timers(now)
        return out

    def _refuse(self, error: RoutingError) -> NoReturn:
        self._carry = self._out
        self._out = []
        raise error

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            # Queries only: raised without _refuse, which would carry the previous request's
            # outputs (already delivered) into the next request, or drop a pending carry.
            raise UnknownCall(f"call {call_id!r} is not in the router")
        return call

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            self._refuse(UnknownAgent(f"agent {agent_id!r} is not on the roster"))
        return agent

    def _check_reason(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            self._refuse(InvalidPauseReason(
                f"pause reason {reason!r} is not configured; valid: "
                f"{', '.join(sorted(self._pause_reasons))}"))

    def _timer(self, when: float, kind: int, obj: _Timed) -> None:
        self._seq += 1
        heappush(self._timers, (when, self._seq, kind, obj, obj.version))

    def _run_timers(self, now: float) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, kind, obj, version = heappop(timers)
            if obj.version != version:
                continue
            if kind == _CALL:
                self._call_timer(when, obj)  # type: ignore[arg-type]
            elif kind == _RING:
                self._rona(when, obj, "ring_timeout", cancel=True)  # type: ignore[arg-type]
            elif kind == _WRAP:
                self._leave_wrap_up(when, obj, None, None)  # type: ignore[arg-type]
            elif kind == _AUTO_READY:
                agent: _Agent = obj  # type: ignore[assignment]
                if agent.state is AgentState.PAUSED:
                    self._make_ready(when, agent)

    # --- queue membership

    def _enter_queue(self, now: float, call: _Call, q: _QueueRt,
                     entered: float | None = None) -> None:
        call.priority += q.priority - call.q.priority
        call.q = q
        if len(q.line) >= q.max_length:
            self._overflow(now, call, q.overflow, "queue_full", enqueued=False)
            return
        call.entered = now if entered is None else entered
        call.reset_rules()
        q.calls[call.id] = call
        self._out.append(CallQueued(call.id, q.name, call.language, call.country, now))
        self._wait(now, call)

    def _wait(self, now: float, call: _Call) -> None:
        """Put a queued call into its buckets, arm its timer, and try to route it."""
        call.state = CallState.QUEUED
        call.version += 1
        q = call.q
        if now >= call.entered + q.max_wait_s:
            self._overflow(now, call, q.overflow, "max_wait")
            return
        # Steps whose time has passed (e.g. while the call was ringing) apply at once.
        step_after = q.step_after
        while call.step < len(step_after) and call.entered + step_after[call.step] <= now:
            if not self._apply_step_rules(now, call):
                return
        # Route first: a call that finds an agent at once never touches the buckets.
        self._match_call(now, call)
        if call.state is CallState.QUEUED:
            langs = (call.language, *call.fallbacks) if call.accept_fallback \
                else (call.language,)
            self._bucket_in(call, langs)
            self._arm(call)

    def _arm(self, call: _Call) -> None:
        q = call.q
        when = call.entered + q.max_wait_s
        if call.step < len(q.step_after):
            when = min(when, call.entered + q.step_after[call.step])
        self._timer(when, _CALL, call)

    def _bucket_in(self, call: _Call, langs: Sequence[str]) -> None:
        entry = (-call.priority, call.seq, call)
        qn = call.q.name
        buckets = self._buckets
        if not call.buckets:
            insort(call.q.line, entry[:2])
        for lang in langs:
            b = buckets.get((qn, lang))
            if b is None:
                b = buckets[(qn, lang)] = []
            insort(b, entry)
            call.buckets.append(b)

    def _bucket_out(self, call: _Call) -> None:
        if not call.buckets:
            return
        key = (-call.priority, call.seq)
        line = call.q.line
        i = bisect_left(line, key)
        if i < len(line) and line[i] == key:
            del line[i]
        for b in call.buckets:
            i = bisect_left(b, key)
            if i < len(b) and b[i][2] is call:
                del b[i]
        call.buckets = []

    # --- expansion

    def _call_timer(self, now: float, call: _Call) -> None:
        """A queued call's timer: its maximum wait, else its next expansion step."""
        if call.state is not CallState.QUEUED:
            return
        q = call.q
        if now >= call.entered + q.max_wait_s:
            self._overflow(now, call, q.overflow, "max_wait")
            return
        had_fallback = call.accept_fallback
        if not self._apply_step_rules(now, call):
            return
        if call.accept_fallback and not had_fallback and call.fallbacks:
            self._bucket_in(call, call.fallbacks)
        self._match_call(now, call)
        if call.state is CallState.QUEUED:
            self._arm(call)

    def _apply_step_rules(self, now: float, call: _Call) -> bool:
        """Apply the call's next step; False when the step took the call out of the queue."""
        q = call.q
        step = q.expansion[call.step]
        index = call.step
        call.step += 1
        if step.min_level is not None:
            call.min_level = min(call.min_level, step.min_level)
        if step.add_sites:
            call.all_sites = True
        if step.accept_fallback_languages:
            call.accept_fallback = True
        if step.include_newcomers:
            call.newcomers_ok = True
        self._out.append(StepApplied(call.id, q.name, index, now))
        if step.offer_callback:
            self._out.append(OfferCallback(call.id, self._ewt_for(q, self._ahead(call))))
        if step.overflow:
            self._overflow(now, call, step.overflow, f"step_{index}")
            return False
        return True

    def _overflow(self, now: float, call: _Call, target: str, reason: str,
                  enqueued: bool = True) -> None:
        if call.state is not CallState.QUEUED:
            return
        if enqueued:
            self._bucket_out(call)
            call.q.calls.pop(call.id, None)
        nxt = self._queues.get(target)
        if nxt is not None and target not in _OUT_TARGETS and call.moves < MAX_QUEUE_MOVES \
                and nxt is not call.q:
            call.moves += 1
            self._out.append(CallMoved(call.id, call.q.name, nxt.name, now))
            self._enter_queue(now, call, nxt)
            return
        out_target = target if target in _OUT_TARGETS else "voicemail"
        self._out.append(Overflow(call.id, out_target, reason))
        self._end(now, call, Outcome.OVERFLOWED, enqueued=False)

    # --- matching

    def _eligible(self, agent: _Agent, call: _Call) -> bool:
        p = agent.profile
        level = p.skills.get(call.q.skill)
        if level is None or level < call.min_level:
            return False
        if not call.all_sites and p.site != call.home_site:
            return False
        if p.countries is not None and call.country not in p.countries:
            return False
        return not (p.newcomer and not call.newcomers_ok)

    def _match_call(self, now: float, call: _Call) -> None:
        """Find the best ready agent for a waiting call and offer it.

        Candidates are taken tier by tier: home site before other sites (site affinity), then
        tenured before newcomers (``last_resort``); the first tier with an eligible agent wins.
        """
        q = call.q
        tiers_key = (call.home_site, call.all_sites, q.site_affinity)
        site_tiers = self._site_tiers.get(tiers_key)
        if site_tiers is None:
            site_tiers = self._site_tiers[tiers_key] = self._tiers_for(*tiers_key)
        if not call.newcomers_ok:
            novice_tiers = _TENURED_ONLY
        elif q.newcomers_last_resort:
            novice_tiers = _NEWCOMERS_LAST
        else:
            novice_tiers = _ANYONE
        skill = q.skill
        langs = (call.language, *call.fallbacks) if call.accept_fallback else (call.language,)
        ready = self._ready
        longest_idle = q.longest_idle
        for sites in site_tiers:
            for novices in novice_tiers:
                best: _Agent | None = None
                best_key: tuple[float, ...] | None = None
                for lang in langs:
                    for site in sites:
                        for novice in novices:
                            group = ready.get((skill, lang, site, novice))
                            if not group:
                                continue
                            if longest_idle:
                                # Each dict is in idle order: its first eligible agent is its
                                # longest idle; the best of the dicts' firsts wins.
                                for agent in group.values():
                                    if self._eligible(agent, call):
                                        if best is None or agent.idle_since < best.idle_since \
                                                or (agent.idle_since == best.idle_since
                                                    and agent.index < best.index):
                                            best = agent
                                        break
                                continue
                            for agent in group.values():
                                if not self._eligible(agent, call):
                                    continue
                                key = self._selection_key(now, q, agent)
                                if best_key is None or key < best_key:
                                    best, best_key = agent, key
                if best is not None:
                    self._offer(now, call, best)
                    return

    def _selection_key(self, now: float, q: _QueueRt, agent: _Agent) -> tuple[float, ...]:
        """The agent's rank under the queue's agent selection (smallest first)."""
        policy = q.selection
        if policy is AgentSelection.highest_proficiency:
            return (-agent.profile.skills[q.skill], agent.idle_since, agent.index)
        if policy is AgentSelection.least_occupied:
            return (self._occupancy(now, agent), agent.idle_since, agent.index)
        if policy is AgentSelection.round_robin:
            return ((agent.index - q.rr_last - 1) % len(self._agents),)
        return (agent.idle_since, agent.index)

    def _tiers_for(self, home: str | None, all_sites: bool, affinity: bool
                   ) -> tuple[tuple[str, ...], ...]:
        """The sites a call looks at, tier by tier: home first under site affinity."""
        if not all_sites:
            return ((home,),) if home is not None else ()
        if home is None or not affinity:
            return (self._sites,)
        return ((home,), tuple(s for s in self._sites if s != home))

    def _match_agent(self, now: float, agent: _Agent) -> None:
        """Find the best waiting call for a freed agent and offer it."""
        best: _Call | None = None
        best_key: tuple[int, float, int] | None = None
        buckets = self._buckets
        for key in self._agent_buckets[agent.profile.id]:
            b = buckets.get(key)
            if not b:
                continue
            for neg_prio, seq, call in b:
                if best_key is not None and neg_prio > best_key[0]:
                    break
                if self._eligible(agent, call):
                    k = (neg_prio, call.arrived + call.q.sort_offset, seq)
                    if best_key is None or k < best_key:
                        best, best_key = call, k
                    break
        if best is not None:
            self._offer(now, best, agent)

    def _offer(self, now: float, call: _Call, agent: _Agent) -> None:
        self._bucket_out(call)
        call.state = CallState.RINGING
        call.agent = agent
        call.version += 1
        agent.call = call
        q = call.q
        q.rr_last = agent.index
        self._set_state(now, agent, AgentState.RINGING, None)
        self._out.append(CallOffered(call.id, agent.profile.id, now))
        self._out.append(Offer(call.id, agent.profile.id, agent.endpoint, q.ring_timeout_s))
        self._timer(now + q.ring_timeout_s, _RING, call)

    def _rona(self, now: float, call: _Call, reason: str, cancel: bool,
              then: tuple[AgentState, str | None] | None = None) -> None:
        """An offer failed: the agent stops (paused ``rona`` by default), the call waits again."""
        agent = call.agent
        if call.state is not CallState.RINGING or agent is None:
            return
        if cancel:
            self._out.append(CancelOffer(call.id, agent.profile.id, reason))
        self._out.append(CallRequeued(call.id, agent.profile.id, reason, now))
        call.agent = None
        agent.call = None
        self._stop_busy(now, agent)
        if then is None:
            then = (AgentState.PAUSED, self.policy.rona_pause_reason)
        state, pause_reason = then
        self._set_state(now, agent, state, pause_reason)
        auto_ready_s = self.policy.rona_auto_ready_after_s
        if state is AgentState.PAUSED and auto_ready_s is not None \
                and pause_reason == self.policy.rona_pause_reason:
            self._timer(now + auto_ready_s, _AUTO_READY, agent)
        self._wait(now, call)

    def _end(self, now: float, call: _Call, outcome: Outcome, enqueued: bool = True,
             wrap_s: float = 0.0) -> None:
        """The call leaves the router; an answered one teaches its queue's handle time
        (talk plus ``wrap_s``, this call's wrap-up) for wait estimates."""
        if enqueued:
            self._bucket_out(call)
            call.q.calls.pop(call.id, None)
        del self._calls[call.id]
        agent = call.agent
        if outcome is Outcome.ANSWERED and agent is not None:
            wait = call.answered_at - call.arrived
            talk = now - call.answered_at
            site: str | None = agent.profile.site
            agent_id: str | None = agent.profile.id
            q = call.q
            q.aht_s += 0.02 * (talk + wrap_s - q.aht_s)
        else:
            wait, talk, site, agent_id = now - call.arrived, 0.0, None, None
        call.state = CallState.ENDED
        call.version += 1
        self._out.append(CallEnded(call.id, outcome, call.q.name, call.language, call.country,
                                   call.arrived, wait, agent_id, site, talk, now))

    # --- agent state

    def _set_state(self, now: float, agent: _Agent, state: AgentState, reason: str | None) -> None:
        if agent.state is AgentState.READY and state is not AgentState.READY:
            rid = agent.profile.id
            for key in agent.ready_keys:
                d = self._ready.get(key)
                if d is not None:
                    d.pop(rid, None)
        if state is AgentState.RINGING:
            agent.busy_since = now
        working = state is not AgentState.LOGGED_OUT and state is not AgentState.PAUSED
        was = agent.state is not AgentState.LOGGED_OUT and agent.state is not AgentState.PAUSED
        if working is not was:
            delta = 1 if working else -1
            for skill in agent.profile.skills:
                self._staffed[skill] += delta
        agent.state = state
        agent.reason = reason
        agent.since = now
        agent.version += 1
        self._out.append(AgentStateChanged(agent.profile.id, state, reason, now))

    def _make_ready(self, now: float, agent: _Agent) -> None:
        self._set_state(now, agent, AgentState.READY, None)
        agent.idle_since = now
        agent.pending = None
        rid = agent.profile.id
        ready = self._ready
        for key in agent.ready_keys:
            d = ready.get(key)
            if d is None:
                d = ready[key] = {}
            d[rid] = agent
        self._match_agent(now, agent)

    def _agent_freed(self, now: float, agent: _Agent) -> None:
        """The agent's offer ended without a call (caller gone while ringing)."""
        agent.call = None
        self._stop_busy(now, agent)
        self._make_ready(now, agent)

    def _start_wrap_up(self, now: float, agent: _Agent, wrap_up_s: float) -> None:
        agent.call = None
        self._set_state(now, agent, AgentState.WRAP_UP, None)
        if wrap_up_s > 0:
            self._timer(now + wrap_up_s, _WRAP, agent)
        else:
            self._leave_wrap_up(now, agent, None, None)

    def _leave_wrap_up(self, now: float, agent: _Agent, state: AgentState | None,
                       reason: str | None) -> None:
        self._stop_busy(now, agent)
        if state is None:
            state, reason = agent.pending or AgentState.READY, agent.pending_reason
        agent.pending, agent.pending_reason = None, None
        if state is AgentState.READY:
            self._make_ready(now, agent)
        else:
            self._set_state(now, agent, state, reason)

    def _stop_busy(self, now: float, agent: _Agent) -> None:
        if agent.busy_since is not None:
            agent.busy_s += now - agent.busy_since
            agent.busy_since = None

    def _occupancy(self, now: float, agent: _Agent) -> float:
        logged = now - agent.login_at
        return agent.busy_s / logged if logged > 0 else 0.0

    # --- estimates

    def _ahead(self, call: _Call) -> int:
        return bisect_left(call.q.line, (-call.priority, call.seq))

    def _ewt_for(self, q: _QueueRt, ahead: int) -> float:
        staffed = self._staffed[q.skill]
        if staffed == 0:
            return float("inf")
        return (ahead + 1) * q.aht_s / staffed
