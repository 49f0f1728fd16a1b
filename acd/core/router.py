"""The router: all routing state and decisions, sans-I/O.

Every entry point takes ``now`` (seconds; monotonic in live use, simulated in the simulator),
first runs any timer that fell due up to ``now``, then applies the event and returns the list
of commands and domain events it produced. :meth:`Router.next_deadline` tells the driver when
to call :meth:`Router.advance` next. Nothing here reads a clock or does I/O.

Data structures (why they look like this): waiting calls sit in *buckets* keyed by
``(queue, language)``, each a list sorted by ``(-priority, arrival, arrival sequence)``. A
call that has begun to accept fallback languages sits in those buckets too. A freed agent
therefore looks only at the buckets for its skills x languages and takes the first eligible
call of each.
Ready agents sit in lines keyed by ``(skill, language, site, newcomer)`` in the order they
became ready (:class:`~acd.core.floor.ReadyLine`), so the longest-idle eligible agent is
usually the first one looked at.

The parts: :mod:`acd.core.floor` (the runtime records), :mod:`acd.core.selection` (who takes
which call, the buckets), :mod:`acd.core.expansion` (a call's time in queue: steps, overflow,
offer, end) and :mod:`acd.core.agent_states` (the agent transition table). :class:`Router` is
the façade: its entry points check the request, then run those parts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn

from acd.core.agent_states import (
    ADOPT,
    ANSWER,
    AUTO_READY,
    CALL_ENDED,
    CALLER_GONE,
    LOGIN,
    LOGOUT,
    NO_ANSWER,
    PAUSE,
    READY,
    SYSTEM_PAUSE_REASONS,
    WRAP_UP_ENDED,
    enter_ready,
    leave_wrap_up,
    set_state,
    stop_busy,
)
from acd.core.expansion import call_timer, end, enter_queue, offer, wait
from acd.core.floor import (
    AUTO_READY_TIMER,
    CALL_TIMER,
    OTHER,
    RING_TIMER,
    WRAP_TIMER,
    AgentRt,
    CallRt,
    Floor,
)
from acd.core.model import (
    AgentAlreadyLoggedIn,
    AgentNotLoggedIn,
    AgentProfile,
    AgentSnapshot,
    AgentState,
    CallAnswered,
    CallRequeued,
    CallState,
    CancelOffer,
    DuplicateCall,
    Ignored,
    InputDefaulted,
    InvalidPauseReason,
    Outcome,
    Output,
    QueueSnapshot,
    RoutingError,
    UnknownAgent,
    UnknownCall,
)
from acd.core.policy import CenterPolicy
from acd.core.selection import call_for, ewt_for

__all__ = ["OTHER", "Router"]


class CountryRt:
    """A caller country as the router reads it on every arrival (plain, for speed)."""

    __slots__ = ("fallbacks", "home_at", "home_site", "native", "native_fallbacks")

    def __init__(self, home_site: str | None, home_at: int, fallbacks: tuple[str, ...],
                 native: str) -> None:
        self.home_site = home_site
        #: The home site's number on the floor (-1: none).
        self.home_at = home_at
        self.fallbacks = fallbacks
        self.native = native
        #: The fallbacks of a call in the native language, the usual case: built once.
        self.native_fallbacks = self.fallbacks_for_other(native)

    def fallbacks_for(self, language: str) -> tuple[str, ...]:
        """The fallback languages of a call in ``language`` (its own left out)."""
        return self.native_fallbacks if language == self.native \
            else self.fallbacks_for_other(language)

    def fallbacks_for_other(self, language: str) -> tuple[str, ...]:
        return tuple(f for f in self.fallbacks if f != language)


class Router:
    """Routes calls to agents by skill, language, country and site; pure and deterministic."""

    def __init__(self, policy: CenterPolicy, agents: Sequence[AgentProfile],
                 progress: bool = True) -> None:
        """``progress``: report each call's progress (``CallQueued``, ``StepApplied``,
        ``CallOffered``, ``CallAnswered``), events for logs and dashboards that change nothing
        the router does. A driver that reads none of them (the simulator) may leave them out;
        every other output is the same either way."""
        self.policy = policy
        self._f = f = Floor(policy, agents, progress)
        # The floor's own dicts, named here for the entry points (and for tests to adjust).
        self._queues = f.queues
        self._agents = f.agents
        self._calls = f.calls
        self._carry: list[Output] = []
        self._pause_reasons = frozenset(policy.pause_reasons) | SYSTEM_PAUSE_REASONS
        #: Per country: home site, fallback languages, native language (plain, for speed).
        self._country_rt: dict[str, CountryRt] = {
            code: CountryRt(c.home_site, f.site_at[c.home_site], tuple(c.fallback_languages),
                            c.language)
            for code, c in policy.countries.items()}
        self._languages = frozenset(policy.languages)
        self._default_language = policy.default_language
        self._default_queue = policy.default_queue
        #: The ``now`` of the latest entry point: the default time of wait estimates.
        self._now = 0.0

    # ----------------------------------------------------------------------------- driver API

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`advance` has work to do, or None."""
        timers = self._f.timers
        while True:
            first = timers.first()
            if first is None:
                return None
            if first.armed():
                return first.when
            timers.recycle(timers.pop())  # disarmed: drop it so the next look is quick

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
        call = self._new_call(now, call_id, queue, language, country, priority, customer_id,
                              arrived_at, out)
        enter_queue(self._f, now, call, call.q, call.arrived)
        return out

    def adopt_call(self, now: float, call_id: str, queue: str, language: str, country: str,
                   agent_id: str, *, arrived_at: float, answered_at: float | None = None,
                   priority: int = 0, customer_id: str | None = None,
                   endpoint: str | None = None, ring_timeout_s: float | None = None
                   ) -> list[Output]:
        """After a restart: a call found ringing ``agent_id`` (``answered_at`` None) or
        talking to them since ``answered_at``; the agent, logged out as every agent is at
        start, is put straight back on it (no offer goes out: the phone already rings).

        The call then ends through the usual entry points (``offer_failed``,
        ``offer_answered``, ``hangup``), so its record and the agent's wrap-up follow. A
        ringing call gets a fresh ring timeout (``ring_timeout_s``, else the queue's).
        Refused when the call is already in the router or the agent is not logged out.
        """
        out = self._begin(now)
        agent = self._agent(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            self._refuse(AgentAlreadyLoggedIn(
                f"agent {agent_id!r} is already {agent.state.value}; a restored call needs "
                "its agent logged out"))
        f = self._f
        call = self._new_call(now, call_id, queue, language, country, priority, customer_id,
                              arrived_at, out)
        call.entered = call.arrived
        call.agent = agent
        agent.call = call
        agent.endpoint = endpoint or agent.profile.endpoint
        agent.login_at = now
        agent.busy_s = 0.0
        agent.pending = None
        if answered_at is None:
            call.state = CallState.RINGING
            call.q.calls[call_id] = call
            set_state(f, now, agent, ADOPT, AgentState.RINGING, None)
            ring = call.q.ring_timeout_s if ring_timeout_s is None else ring_timeout_s
            f.timer(now + ring, RING_TIMER, call)
        else:
            call.state = CallState.TALKING
            call.answered_at = min(answered_at, now)
            set_state(f, now, agent, ADOPT, AgentState.ON_CALL, None)
            agent.busy_since = now
        return out

    def adopt_wrap_up(self, now: float, agent_id: str, remaining_s: float,
                      endpoint: str | None = None) -> list[Output]:
        """After a restart: a logged-out agent goes back into the wrap-up it was in, for the
        ``remaining_s`` it had left; then ready, as after any wrap-up."""
        out = self._begin(now)
        agent = self._agent(agent_id)
        if agent.state is not AgentState.LOGGED_OUT:
            self._refuse(AgentAlreadyLoggedIn(
                f"agent {agent_id!r} is already {agent.state.value}; a restored wrap-up needs "
                "its agent logged out"))
        agent.endpoint = endpoint or agent.profile.endpoint
        agent.login_at = now
        agent.busy_s = 0.0
        agent.pending = None
        set_state(self._f, now, agent, ADOPT, AgentState.WRAP_UP, None)
        agent.busy_since = now
        agent.free_at = now + remaining_s  # the wait estimate knows when it ends
        if remaining_s > 0:
            self._f.timer(now + remaining_s, WRAP_TIMER, agent)
        else:
            self._leave_wrap_up(now, agent, WRAP_UP_ENDED, None, None)
        return out

    def _new_call(self, now: float, call_id: str, queue: str, language: str, country: str,
                  priority: int, customer_id: str | None, arrived_at: float | None,
                  out: list[Output]) -> CallRt:
        """A new call record, with unknown queue, language or country defaulted."""
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
            country, home_site, home_at = OTHER, None, -1
        else:
            home_site, home_at = c.home_site, c.home_at
        if language not in self._languages:
            used = c.native if c is not None else self._default_language
            out.append(InputDefaulted(call_id, "language", language, used))
            language = used
        fallbacks = c.fallbacks_for(language) if c is not None else ()
        f = self._f
        f.seq += 1
        since = now if arrived_at is None else min(arrived_at, now)
        call = CallRt(call_id, q, language, country, home_site, home_at, fallbacks,
                      q.priority + priority, since, f.seq, customer_id)
        self._calls[call_id] = call
        return call

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
        # A ringing call is in its queue's calls (offer and adopt_call keep it there): a
        # plain ``del``, without the membership test of ``forget``.
        del q.calls[call.id]
        set_state(self._f, now, agent, ANSWER, AgentState.ON_CALL, None)
        if self._f.progress:
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
                 ) -> CallRt | None:
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
            end(self._f, now, call, Outcome.ANSWERED, wrap_s=wrap_s)
            self._start_wrap_up(now, agent, wrap_s)
        elif call.state is CallState.RINGING:
            agent = call.agent
            assert agent is not None
            out.append(CancelOffer(call.id, agent.profile.id, "caller_hangup"))
            end(self._f, now, call, Outcome.ABANDONED)
            self._agent_freed(now, agent)
        else:
            end(self._f, now, call, Outcome.ABANDONED)
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
            end(self._f, now, call, Outcome.OVERFLOWED)
            self._agent_freed(now, agent)
        else:
            end(self._f, now, call, Outcome.OVERFLOWED)
        return out

    def callback_accepted(self, now: float, call_id: str) -> list[Output]:
        """The caller took the callback offer: the call leaves the queue as a callback."""
        out = self._begin(now)
        call = self._calls.get(call_id)
        if call is None or call.state is not CallState.QUEUED:
            state = call.state.value if call is not None else "not in the router"
            out.append(Ignored(call_id, "callback_accepted", f"call is {state}"))
            return out
        end(self._f, now, call, Outcome.CALLBACK)
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
            set_state(self._f, now, agent, LOGIN, AgentState.PAUSED, paused_reason)
        else:
            self._make_ready(now, agent, LOGIN)
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
                self._leave_wrap_up(now, agent, LOGOUT, AgentState.LOGGED_OUT, None)
            else:
                agent.pending, agent.pending_reason = AgentState.LOGGED_OUT, None
            return out
        if st is AgentState.RINGING:
            assert agent.call is not None
            self._rona(now, agent.call, "agent_logout", cancel=True, event=LOGOUT,
                       then=(AgentState.LOGGED_OUT, None))
            return out
        set_state(self._f, now, agent, LOGOUT, AgentState.LOGGED_OUT, None)
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
            self._leave_wrap_up(now, agent, PAUSE, AgentState.PAUSED, reason)
        elif st is AgentState.RINGING:
            assert agent.call is not None
            self._rona(now, agent.call, "agent_paused", cancel=True, event=PAUSE,
                       then=(AgentState.PAUSED, reason))
        else:
            set_state(self._f, now, agent, PAUSE, AgentState.PAUSED, reason)
        return out

    def ready(self, now: float, agent_id: str) -> list[Output]:
        """Make an agent ready: from a pause, or ending wrap-up early."""
        out = self._begin(now)
        agent = self._agent(agent_id)
        st = agent.state
        if st is AgentState.LOGGED_OUT:
            self._refuse(AgentNotLoggedIn(f"agent {agent_id!r} is not logged in"))
        if st is AgentState.PAUSED:
            self._make_ready(now, agent, READY)
        elif st is AgentState.WRAP_UP:
            self._leave_wrap_up(now, agent, READY, AgentState.READY, None)
        elif st is AgentState.ON_CALL:
            agent.pending, agent.pending_reason = None, None
        else:
            out.append(Ignored(agent_id, "ready", f"agent is {st.value}"))
        return out

    # --------------------------------------------------------------------------- queries

    def ewt(self, call_id: str, now: float | None = None) -> float:
        """Estimated remaining wait of a call at ``now`` (default: the time of the latest
        entry point), from live state: 0 while it rings or an eligible agent is ready; see
        :func:`~acd.core.selection.ewt_for`. Computed when asked, never per event."""
        return ewt_for(self._f, self._now if now is None else now, self._call(call_id))

    def ewt_new(self, queue: str, language: str | None = None, country: str | None = None,
                now: float | None = None) -> float:
        """Estimated wait of a call that would arrive at ``now`` at ``queue`` (unknown: the
        default queue) in ``language`` from ``country``, with base priority, behind every
        call waiting. Without a language the center's default is used; without a (known)
        country the call has no home site."""
        return ewt_for(self._f, self._now if now is None else now,
                       self._probe(queue, language, country, now))

    def _probe(self, queue: str, language: str | None, country: str | None,
               now: float | None) -> CallRt:
        """A call that is not in the router, as it would stand on arrival (for estimates)."""
        q = self._queues.get(queue) or self._queues[self._default_queue]
        c = self._country_rt.get(country) if country is not None else None
        home_site = c.home_site if c is not None else None
        home_at = c.home_at if c is not None else -1
        if language is None or language not in self._languages:
            language = c.native if c is not None else self._default_language
        fallbacks = c.fallbacks_for(language) if c is not None else ()
        f = self._f
        return CallRt("", q, language, country if c is not None and country else OTHER, home_site,
                      home_at, fallbacks, q.priority, self._now if now is None else now, f.seq + 1,
                      None)

    def queue_snapshot(self, now: float) -> list[QueueSnapshot]:
        """Every queue's depth, oldest wait and staffing at ``now`` (one pass over the agents,
        one over each queue's calls: wallboards ask for it several times a second)."""
        talking: dict[str, int] = {}
        logged_in: dict[str, int] = {}
        ready: dict[str, int] = {}
        for a in self._agents.values():
            st = a.state
            if st is AgentState.LOGGED_OUT:
                continue
            if st is AgentState.ON_CALL and a.call is not None:
                talking[a.call.q.name] = talking.get(a.call.q.name, 0) + 1
            for skill in a.profile.skills:
                logged_in[skill] = logged_in.get(skill, 0) + 1
                if st is AgentState.READY:
                    ready[skill] = ready.get(skill, 0) + 1
        snaps = []
        for q in self._queues.values():
            waiting = ringing = 0
            oldest = 0.0
            for c in q.calls.values():
                if c.state is CallState.QUEUED:
                    waited = now - c.arrived
                    oldest = waited if not waiting or waited > oldest else oldest
                    waiting += 1
                elif c.state is CallState.RINGING:
                    ringing += 1
            snaps.append(QueueSnapshot(
                q.name, waiting, ringing, talking.get(q.name, 0), oldest,
                logged_in.get(q.skill, 0), ready.get(q.skill, 0),
                self.ewt_new(q.name, now=now)))
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
        self._now = now
        self._f.out = out
        first = self._f.timers.first()
        if first is not None and first.when <= now:
            self._run_timers(now)
        return out

    def _refuse(self, error: RoutingError) -> NoReturn:
        self._carry = self._f.out
        self._f.out = []
        raise error

    def _call(self, call_id: str) -> CallRt:
        call = self._calls.get(call_id)
        if call is None:
            # Queries only: raised without _refuse, which would carry the previous request's
            # outputs (already delivered) into the next request, or drop a pending carry.
            raise UnknownCall(f"call {call_id!r} is not in the router")
        return call

    def _agent(self, agent_id: str) -> AgentRt:
        agent = self._agents.get(agent_id)
        if agent is None:
            self._refuse(UnknownAgent(f"agent {agent_id!r} is not on the roster"))
        return agent

    def _check_reason(self, reason: str) -> None:
        if reason not in self._pause_reasons:
            self._refuse(InvalidPauseReason(
                f"pause reason {reason!r} is not configured; valid: "
                f"{', '.join(sorted(self._pause_reasons))}"))

    def _run_timers(self, now: float) -> None:
        f = self._f
        timers = f.timers
        while True:
            first = timers.first()
            if first is None or first.when > now:
                return
            timers.pop()
            armed = first.armed()
            when, kind, obj = first.when, first.kind, first.obj
            timers.recycle(first)  # read: what it runs may arm a timer in its place
            if not armed:
                continue
            if kind == CALL_TIMER:
                call_timer(f, when, obj)  # type: ignore[arg-type]
            elif kind == RING_TIMER:
                self._rona(when, obj, "ring_timeout", cancel=True)  # type: ignore[arg-type]
            elif kind == WRAP_TIMER:
                self._leave_wrap_up(when, obj, WRAP_UP_ENDED, None, None)  # type: ignore[arg-type]
            elif kind == AUTO_READY_TIMER:
                agent: AgentRt = obj  # type: ignore[assignment]
                if agent.state is AgentState.PAUSED:
                    self._make_ready(when, agent, AUTO_READY)

    # --- what the entry points and timers do to agents

    def _rona(self, now: float, call: CallRt, reason: str, cancel: bool,
              then: tuple[AgentState, str | None] | None = None, event: str = NO_ANSWER
              ) -> None:
        """An offer failed: the agent stops (paused ``rona`` by default), the call waits again."""
        agent = call.agent
        if call.state is not CallState.RINGING or agent is None:
            return
        f = self._f
        if cancel:
            f.out.append(CancelOffer(call.id, agent.profile.id, reason))
        f.out.append(CallRequeued(call.id, agent.profile.id, reason, now))
        call.agent = None
        agent.call = None
        stop_busy(now, agent)
        if then is None:
            then = (AgentState.PAUSED, self.policy.rona_pause_reason)
        state, pause_reason = then
        set_state(f, now, agent, event, state, pause_reason)
        auto_ready_s = self.policy.rona_auto_ready_after_s
        if state is AgentState.PAUSED and auto_ready_s is not None \
                and pause_reason == self.policy.rona_pause_reason:
            f.timer(now + auto_ready_s, AUTO_READY_TIMER, agent)
        wait(f, now, call)

    def _make_ready(self, now: float, agent: AgentRt, event: str) -> None:
        enter_ready(self._f, now, agent, event)
        self._match_agent(now, agent)

    def _match_agent(self, now: float, agent: AgentRt) -> None:
        """Offer the best waiting call to a freed agent, if there is one."""
        call = call_for(self._f, agent)
        if call is not None:
            offer(self._f, now, call, agent)

    def _agent_freed(self, now: float, agent: AgentRt) -> None:
        """The agent's offer ended without a call (caller gone while ringing)."""
        agent.call = None
        stop_busy(now, agent)
        self._make_ready(now, agent, CALLER_GONE)

    def _start_wrap_up(self, now: float, agent: AgentRt, wrap_up_s: float) -> None:
        agent.call = None
        agent.free_at = now + wrap_up_s
        set_state(self._f, now, agent, CALL_ENDED, AgentState.WRAP_UP, None)
        if wrap_up_s > 0:
            self._f.timer(now + wrap_up_s, WRAP_TIMER, agent)
        else:
            self._leave_wrap_up(now, agent, WRAP_UP_ENDED, None, None)

    def _leave_wrap_up(self, now: float, agent: AgentRt, event: str, state: AgentState | None,
                       reason: str | None) -> None:
        if leave_wrap_up(self._f, now, agent, event, state, reason):
            self._match_agent(now, agent)
