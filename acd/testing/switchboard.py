"""An independent model of a contact center's telephony side, to check a router against.

:class:`Switchboard` drives a :class:`~acd.core.router.Router` the way a telephony shell does
(arrivals, answers, failed offers, hangups, callbacks, agent requests, time) and checks every
output it gets against a model of its own: eligibility is recomputed from agent profiles, the
config and the ``StepApplied`` events, never read from router internals. It raises
:class:`ModelError` (an ``AssertionError``) at the first output that contradicts the model; call
:meth:`Switchboard.check` after each action for the whole-state invariants. Tests and
benchmarks build property tests and random drives on it::

    sb = Switchboard(loaded.config, loaded.agents)
    sb.login("msk-tech-ru-001")
    sb.arrive("c1", "tech", "ru", "RU")
    sb.advance_to_deadline()
    sb.check()
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from acd.config.policy import center_policy
from acd.config.schema import AgentSelection, CallSelection, CenterConfig, NewcomerPolicy
from acd.core.model import (
    AgentProfile,
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
    Ignored,
    InputDefaulted,
    Offer,
    OfferCallback,
    Outcome,
    Output,
    Overflow,
    RoutingError,
    StepApplied,
)
from acd.core.router import OTHER, Router

__all__ = ["AgentView", "CallView", "ModelError", "Rules", "Switchboard"]


class ModelError(AssertionError):
    """The router's outputs or state contradict the independent model."""


@dataclass
class CallView:
    """What the model knows about a live call, rebuilt from the router's events."""

    id: str
    order: int
    arrived: float
    priority: int
    queue: str
    language: str
    country: str
    steps: int = 0
    state: CallState = CallState.QUEUED
    agent: str | None = None
    eligible: frozenset[str] = frozenset()


@dataclass
class AgentView:
    """What the model knows about an agent, rebuilt from ``AgentStateChanged`` events."""

    profile: AgentProfile
    endpoint: str
    state: AgentState = AgentState.LOGGED_OUT
    reason: str | None = None
    call: str | None = None
    idle_since: float = 0.0
    #: How many agents had become ready when this one last did (from the events' order): of
    #: agents idle since the same moment, the one that became ready first has waited longest.
    ready_order: int = 0
    #: Logged out during a call: the logout applies when the call (and wrap-up) ends.
    logout_pending: bool = False


_LEGAL: dict[AgentState, frozenset[AgentState]] = {
    AgentState.LOGGED_OUT: frozenset({AgentState.READY, AgentState.PAUSED}),
    AgentState.READY: frozenset({AgentState.RINGING, AgentState.PAUSED, AgentState.LOGGED_OUT}),
    AgentState.RINGING: frozenset({AgentState.ON_CALL, AgentState.PAUSED, AgentState.READY,
                                   AgentState.LOGGED_OUT}),
    AgentState.ON_CALL: frozenset({AgentState.WRAP_UP}),
    AgentState.WRAP_UP: frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT}),
    AgentState.PAUSED: frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT}),
}


@dataclass(frozen=True)
class Rules:
    """A call's routing rule after some expansion steps, rebuilt from the config (design §4)."""

    skill: str
    min_level: int
    languages: frozenset[str]
    home: str | None
    all_sites: bool
    country: str
    newcomers_ok: bool

    @classmethod
    def of(cls, cfg: CenterConfig, queue: str, steps: int, language: str,
           country: str) -> Rules:
        """The rule for a ``queue`` call in ``language`` from ``country`` after ``steps`` steps."""
        q = cfg.queues[queue]
        min_level = q.routing.min_level
        home = cfg.countries[country].home_site if country in cfg.countries else None
        all_sites = q.routing.sites == "all" or home is None
        fallback = False
        newcomers_ok = q.routing.newcomers is not NewcomerPolicy.exclude
        for step in q.expansion[:steps]:
            if step.min_level is not None:
                min_level = min(min_level, step.min_level)
            all_sites = all_sites or step.add_sites is not None
            fallback = fallback or step.accept_fallback_languages
            newcomers_ok = newcomers_ok or step.include_newcomers
        languages = {language}
        if fallback and country in cfg.countries:
            languages.update(cfg.countries[country].fallback_languages)
        return cls(q.skill, min_level, frozenset(languages), home, all_sites, country,
                   newcomers_ok)

    def admits(self, p: AgentProfile) -> bool:
        """Skill at or above the minimum level, a common language, allowed site and country."""
        return (p.skills.get(self.skill, 0) >= self.min_level
                and not self.languages.isdisjoint(p.languages)
                and (self.all_sites or p.site == self.home)
                and (p.countries is None or self.country in p.countries)
                and (self.newcomers_ok or not p.newcomer))


class Switchboard:
    """A fake telephony side: calls the router at its clock and checks every output it gets.

    Raises :class:`ModelError` as soon as an output contradicts the model: an agent offered two
    calls, a call offered twice, an ineligible agent, FIFO broken, a call ended twice, ...
    :meth:`check` verifies the whole-state invariants (call it after every action).
    ``snapshot_every`` > 1 compares the full agent snapshot only every so many checks (the
    agents an action touched are compared at every check); it keeps big rosters fast.
    """

    def __init__(self, config: CenterConfig, agents: Sequence[AgentProfile],
                 start: float = 0.0, snapshot_every: int = 1) -> None:
        self.config = config
        self.router = Router(center_policy(config), agents)
        self.now = start
        self.agents = {p.id: AgentView(p, p.endpoint) for p in agents}
        self.calls: dict[str, CallView] = {}
        self.ended: dict[str, Outcome] = {}
        self.ready: set[str] = set()
        #: Agents become ready so far, by the events (:attr:`AgentView.ready_order`).
        self.readied = 0
        #: Offers the telephony side is ringing: Offer commands minus CancelOffer commands and
        #: minus the answers and failures this side reported.
        self.offers: dict[str, str] = {}
        self.arrivals = 0
        self.log: list[Output] = []
        self.stats: Counter[str] = Counter()
        self.snapshot_every = snapshot_every
        self._eligible: dict[tuple[str, int, str, str], frozenset[str]] = {}
        self._touched: set[str] = set()
        self._action: tuple[str, str] = ("", "")
        self._expect: tuple[str, str, str, int] | None = None
        self._rung: str | None = None
        self._late = False

    # --- actions (each returns the router's outputs)

    def arrive(self, call_id: str, queue: str, language: str, country: str,
               priority: int = 0) -> list[Output]:
        """A call arrives now."""
        cfg = self.config
        q = queue if queue in cfg.queues else cfg.center.default_queue
        c = country if country in cfg.countries or country == OTHER else OTHER
        lang = language if language in cfg.languages else (
            cfg.countries[c].language if c in cfg.countries else cfg.center.default_language)
        self._expect = (q, lang, c, cfg.queues[q].priority + priority)
        self.arrivals += 1
        out = self._run("arrive", call_id, lambda: self.router.call_arrived(
            self.now, call_id, queue, language, country, priority))
        wanted = {f for f, given, used in (("queue", queue, q), ("language", language, lang),
                                           ("country", country, c)) if given != used}
        got = {d.field for d in out if isinstance(d, InputDefaulted) and d.call_id == call_id}
        if got != wanted:
            self._fail(f"{call_id}: defaulted {got}, expected {wanted}")
        if (call_id in self.calls) == (call_id in self.ended):
            self._fail(f"{call_id} is neither in the router nor ended after arriving")
        return out

    def answer(self, call_id: str) -> list[Output]:
        """The ringing agent answers ``call_id``."""
        return self._run("answer", call_id, lambda: self.router.offer_answered(self.now, call_id))

    def no_answer(self, call_id: str, reason: str = "no_answer") -> list[Output]:
        """The offer for ``call_id`` failed on the telephony side."""
        return self._run("no_answer", call_id,
                         lambda: self.router.offer_failed(self.now, call_id, reason))

    def hangup(self, call_id: str) -> list[Output]:
        """The caller (or, while talking, either side) hangs up."""
        return self._run("hangup", call_id, lambda: self.router.hangup(self.now, call_id))

    def withdraw(self, call_id: str, reason: str = "shutdown") -> list[Output]:
        """The telephony side hands a waiting caller back to the dialplan."""
        return self._run("withdraw", call_id,
                         lambda: self.router.withdraw(self.now, call_id, reason))

    def accept_callback(self, call_id: str) -> list[Output]:
        """The caller takes a callback instead of waiting."""
        return self._run("callback", call_id,
                         lambda: self.router.callback_accepted(self.now, call_id))

    def login(self, agent_id: str, paused_reason: str | None = None,
              endpoint: str | None = None) -> list[Output]:
        """Log an agent in, ready or paused."""
        view = self.agents[agent_id]
        if view.state is AgentState.LOGGED_OUT:
            view.endpoint = endpoint or view.profile.endpoint
        elif view.logout_pending:  # the login replaces the pending logout
            view.endpoint = endpoint or view.endpoint
        out = self._run("login", agent_id, lambda: self.router.login(
            self.now, agent_id, endpoint, paused_reason))
        view.logout_pending = False
        return out

    def logout(self, agent_id: str) -> list[Output]:
        """Log an agent out (deferred while on a call)."""
        on_call = self.agents[agent_id].state is AgentState.ON_CALL
        out = self._run("logout", agent_id, lambda: self.router.logout(self.now, agent_id))
        self.agents[agent_id].logout_pending = on_call
        return out

    def pause(self, agent_id: str, reason: str) -> list[Output]:
        """Pause an agent with ``reason`` (it replaces a pending logout)."""
        out = self._run("pause", agent_id,
                        lambda: self.router.pause(self.now, agent_id, reason))
        self.agents[agent_id].logout_pending = False
        return out

    def make_ready(self, agent_id: str) -> list[Output]:
        """Make an agent ready (it cancels a pending logout)."""
        out = self._run("ready", agent_id, lambda: self.router.ready(self.now, agent_id))
        self.agents[agent_id].logout_pending = False
        return out

    def advance(self, now: float) -> list[Output]:
        """Move the clock to ``now`` and run the router's due timers."""
        self.now = max(self.now, now)
        out = self._run("advance", "", lambda: self.router.advance(self.now))
        deadline = self.router.next_deadline()
        if deadline is not None and deadline <= self.now:
            self._fail(f"next_deadline {deadline} is not after {self.now} after advance")
        return out

    def advance_to_deadline(self) -> list[Output]:
        """Advance to the router's next deadline (or stay, when it has none)."""
        deadline = self.router.next_deadline()
        return self.advance(self.now if deadline is None else deadline)

    def set_clock(self, now: float) -> None:
        """Move the clock without advancing: a late driver; the next call runs the timers."""
        self._late = self._late or now > self.now
        self.now = max(self.now, now)

    def timers_due(self) -> bool:
        """Whether a router timer is due at the current clock (the next call would run it)."""
        deadline = self.router.next_deadline()
        return deadline is not None and deadline <= self.now

    # --- selections for drivers

    def calls_in(self, state: CallState) -> list[str]:
        """Live call ids in ``state``, in arrival order."""
        return [c.id for c in sorted(self.calls.values(), key=lambda c: c.order)
                if c.state is state]

    def agents_in(self, *states: AgentState) -> list[str]:
        """Agent ids in any of ``states``, in roster order."""
        return [a for a, v in self.agents.items() if v.state in states]

    # --- whole-state invariants

    def check(self) -> None:
        """Whole-state invariants: counts, snapshots, offers, work conservation, deadlines."""
        r = self.router
        if not r.calls_in_router == self.arrivals - len(self.ended) == len(self.calls):
            self._fail(f"calls_in_router {r.calls_in_router}, arrivals {self.arrivals}, "
                       f"ended {len(self.ended)}, live in the model {len(self.calls)}")
        self.stats["checks"] += 1
        if self.stats["checks"] % self.snapshot_every == 0:
            for s in r.agent_snapshot():
                self._same_agent(s.agent_id, s.state, s.reason, s.call_id)
        else:
            for agent_id in self._touched:
                self._same_agent(agent_id, r.agent_state(agent_id), None, None)
        self._touched.clear()
        ringing = {c.id: c.agent for c in self.calls.values() if c.state is CallState.RINGING}
        if self.offers != ringing:
            self._fail(f"the telephony side rings {self.offers}, the router has {ringing}")
        for view in self.calls.values():
            if r.call_state(view.id) is not view.state:
                self._fail(f"{view.id}: router says {r.call_state(view.id)}, model {view.state}")
            if view.state is CallState.QUEUED and not view.eligible.isdisjoint(self.ready):
                self._fail(f"{view.id} waits in {view.queue} while eligible agents "
                           f"{sorted(view.eligible & self.ready)} are ready")
        deadline = r.next_deadline()
        if not self._late and deadline is not None and deadline < self.now:
            self._fail(f"next_deadline {deadline} is before now {self.now}")

    def _same_agent(self, agent_id: str, state: AgentState, reason: str | None,
                    call_id: str | None) -> None:
        v = self.agents[agent_id]
        if state is not v.state or (self.stats["checks"] % self.snapshot_every == 0
                                    and (reason, call_id) != (v.reason, v.call)):
            self._fail(f"router has {agent_id} {state.value}/{reason}/{call_id}, "
                       f"events say {v.state.value}/{v.reason}/{v.call}")

    # --- per-output checks

    def _run(self, action: str, subject: str, call: Callable[[], list[Output]]) -> list[Output]:
        self._action = (action, subject)
        try:
            out = call()
        except RoutingError:
            # A refused request may have run due timers first; the router keeps their
            # outputs for its next call, here the driver's wake-up at the same instant. A
            # lost output (a ring timeout's CancelOffer, say) fails the next check.
            self._late = False
            self._run("carried", "", lambda: self.router.advance(self.now))
            raise
        self._late = False  # every entry point first runs the timers due at its clock
        self.log.extend(out)
        overflowed: set[str] = set()
        for o in out:
            self._apply(o, overflowed)
        self.stats["actions"] += 1
        return out

    def _fail(self, message: str) -> None:
        raise ModelError(f"t={self.now} after {self._action[0]} {self._action[1]}: {message}")

    def _view(self, call_id: str) -> CallView:
        view = self.calls.get(call_id)
        if view is None:
            raise ModelError(f"t={self.now}: event for a call not in the router: {call_id}")
        return view

    def _rules_changed(self, view: CallView) -> None:
        key = (view.queue, view.steps, view.language, view.country)
        found = self._eligible.get(key)
        if found is None:
            rules = Rules.of(self.config, *key)
            found = self._eligible[key] = frozenset(
                a for a, v in self.agents.items() if rules.admits(v.profile))
        view.eligible = found

    def _fifo_key(self, view: CallView) -> tuple[int, float, int]:
        q = self.config.queues[view.queue]
        offset = 0.0
        if q.routing.call_selection is CallSelection.sl_aware:
            offset = self.config.sl_for(view.queue).threshold_s
        return (-view.priority, view.arrived + offset, view.order)

    def _apply(self, o: Output, overflowed: set[str]) -> None:
        if isinstance(o, CallQueued):
            self._queued(o)
        elif isinstance(o, CallMoved):
            self._moved(o)
        elif isinstance(o, StepApplied):
            view = self._view(o.call_id)
            if view.state is not CallState.QUEUED or (o.queue, o.index) != (view.queue,
                                                                             view.steps):
                self._fail(f"{o}: expected step {view.steps} of {view.queue} on a queued call")
            view.steps += 1
            self._rules_changed(view)
        elif isinstance(o, OfferCallback):
            # Asked after the routing of the steps that fell due together, so the step that
            # offers a callback need not be the last one applied.
            view = self._view(o.call_id)
            steps = self.config.queues[view.queue].expansion[:view.steps]
            if view.state is not CallState.QUEUED or not any(s.offer_callback for s in steps):
                self._fail(f"{o} without an offer_callback step")
            if not view.eligible.isdisjoint(self.ready):
                self._fail(f"{o} while eligible agents {sorted(view.eligible & self.ready)} "
                           f"are ready")
        elif isinstance(o, AgentStateChanged):
            self._agent_changed(o)
        elif isinstance(o, CallOffered):
            self._offered(o)
        elif isinstance(o, (Offer, CancelOffer)):
            self._command(o)
        elif isinstance(o, CallRequeued):
            self._requeued(o)
        elif isinstance(o, CallAnswered):
            self._answered(o)
        elif isinstance(o, Overflow):
            if o.target not in ("voicemail", "callback"):
                self._fail(f"{o}: not a target outside the ACD")
            if o.call_id in self.calls or self._action != ("arrive", o.call_id):
                view = self._view(o.call_id)  # else: a new call refused by a full queue
                if view.state is not CallState.QUEUED:
                    self._fail(f"{o} for a {view.state.value} call")
            overflowed.add(o.call_id)
        elif isinstance(o, CallEnded):
            self._ended(o, overflowed)
        elif isinstance(o, InputDefaulted):
            if self._action != ("arrive", o.call_id):
                self._fail(f"unexpected {o}")
        elif isinstance(o, Ignored):
            self.stats["ignored"] += 1

    def _queued(self, o: CallQueued) -> None:
        view = self.calls.get(o.call_id)
        if view is None:
            expect = self._expect
            if self._action != ("arrive", o.call_id) or expect is None \
                    or o.call_id in self.ended:
                self._fail(f"unexpected {o}")
            assert expect is not None
            q, lang, country, priority = expect
            if (o.queue, o.language, o.country) != (q, lang, country):
                self._fail(f"{o}: expected {q}/{lang}/{country}")
            view = CallView(o.call_id, self.arrivals, o.at, priority, q, lang, country)
            self.calls[o.call_id] = view
        elif view.state is not CallState.QUEUED or view.queue != o.queue:
            self._fail(f"{o} for a call {view.state.value} in {view.queue}")
        view.steps = 0
        self._rules_changed(view)

    def _moved(self, o: CallMoved) -> None:
        view = self.calls.get(o.call_id)
        if view is None:
            # A new call refused by a full queue moves on before it is ever queued.
            expect = self._expect
            if self._action != ("arrive", o.call_id) or expect is None \
                    or expect[0] != o.from_queue:
                self._fail(f"unexpected {o}")
            assert expect is not None
            # The call's own priority stays; its queue's base priority is the new queue's.
            queues = self.config.queues
            priority = expect[3] - queues[o.from_queue].priority + queues[o.to_queue].priority
            self._expect = (o.to_queue, expect[1], expect[2], priority)
            return
        if view.state is not CallState.QUEUED or view.queue != o.from_queue:
            self._fail(f"{o}: the call is {view.state.value} in {view.queue}")
        queues = self.config.queues
        view.priority += queues[o.to_queue].priority - queues[o.from_queue].priority
        view.queue = o.to_queue

    def _agent_changed(self, o: AgentStateChanged) -> None:
        v = self.agents[o.agent_id]
        if o.state not in _LEGAL[v.state]:
            self._fail(f"{o}: illegal from {v.state.value}")
        if o.state is AgentState.RINGING:
            self._rung = o.agent_id
        elif v.state is AgentState.RINGING and o.state is not AgentState.ON_CALL \
                and v.call is not None:
            self._fail(f"{o} while the offer of {v.call} is still live")
        if o.state is AgentState.PAUSED and o.reason not in self.config.pause_reasons:
            self._fail(f"{o}: unknown pause reason")
        # An agent is logged out by its own logout only, at once or when its call has ended;
        # a pending logout is not dropped unless the agent asked for something else.
        asked = self._action[1] == o.agent_id and self._action[0] in ("login", "pause", "ready")
        if o.state is AgentState.LOGGED_OUT:
            if not v.logout_pending and self._action != ("logout", o.agent_id):
                self._fail(f"{o}: the agent did not log out")
            v.logout_pending = False
        elif v.logout_pending and v.state is AgentState.WRAP_UP and not asked:
            self._fail(f"{o}: the agent's pending logout was lost")
        if o.state is AgentState.READY:
            v.idle_since = o.at
            self.readied += 1
            v.ready_order = self.readied
            self.ready.add(o.agent_id)
        else:
            self.ready.discard(o.agent_id)
        v.state, v.reason = o.state, o.reason
        self._touched.add(o.agent_id)

    def _offered(self, o: CallOffered) -> None:
        view = self._view(o.call_id)
        v = self.agents[o.agent_id]
        if self._rung != o.agent_id:
            self._fail(f"{o}: the agent was not ready just before")
        self._rung = None
        if view.state is not CallState.QUEUED or view.agent is not None:
            self._fail(f"{o}: the call is already {view.state.value} with {view.agent}")
        if v.call is not None:
            self._fail(f"{o}: the agent already has {v.call}")
        if o.agent_id not in view.eligible:
            self._fail(f"{o}: agent {o.agent_id} is not eligible for {view}")
        key = self._fifo_key(view)
        for other in self.calls.values():
            if other is not view and other.state is CallState.QUEUED \
                    and o.agent_id in other.eligible and self._fifo_key(other) < key:
                self._fail(f"{o} skips {other.id} ({other.queue}, priority {other.priority}, "
                           f"arrived {other.arrived}), also eligible for {o.agent_id}")
        self._check_selection(view, o.agent_id)
        view.state, view.agent = CallState.RINGING, o.agent_id
        v.call = o.call_id
        self.stats["offers"] += 1

    def _check_selection(self, view: CallView, chosen: str) -> None:
        """The chosen agent is best by the queue's policy among the eligible ready agents.

        Tiers first (home site when site affinity applies, then tenured before newcomers under
        ``last_resort``), then the policy: longest idle or highest proficiency (ties allowed).
        """
        q = self.config.queues[view.queue]
        policy = q.routing.agent_selection
        rules = Rules.of(self.config, view.queue, view.steps, view.language, view.country)
        affinity = q.routing.site_affinity and rules.all_sites and rules.home is not None
        last_resort = q.routing.newcomers is NewcomerPolicy.last_resort

        def key(agent_id: str) -> tuple[float, ...]:
            v = self.agents[agent_id]
            p = v.profile
            tier = (1.0 if affinity and p.site != rules.home else 0.0,
                    1.0 if last_resort and p.newcomer else 0.0)
            if policy is AgentSelection.longest_idle:
                return (*tier, v.idle_since)
            if policy is AgentSelection.highest_proficiency:
                return (*tier, -p.skills[q.skill], v.idle_since)
            return tier

        best = min(key(a) for a in (self.ready & view.eligible) | {chosen})
        if key(chosen) != best:
            self._fail(f"{chosen} offered {view.id} by {policy.value} with key {key(chosen)}, "
                       f"but an eligible ready agent has {best}")

    def _command(self, o: Offer | CancelOffer) -> None:
        if isinstance(o, Offer):
            view = self._view(o.call_id)
            ring = self.config.queues[view.queue].ring_timeout_s
            if view.agent != o.agent_id or o.call_id in self.offers \
                    or o.endpoint != self.agents[o.agent_id].endpoint \
                    or o.ring_timeout_s != ring:
                self._fail(f"{o} does not match the offer made")
            self.offers[o.call_id] = o.agent_id
        else:
            if self.offers.get(o.call_id) != o.agent_id:
                self._fail(f"{o} cancels an offer the telephony side is not ringing")
            del self.offers[o.call_id]

    def _requeued(self, o: CallRequeued) -> None:
        view = self._view(o.call_id)
        if view.state is not CallState.RINGING or view.agent != o.agent_id:
            self._fail(f"{o}: the call is {view.state.value} with {view.agent}")
        if self._action == ("no_answer", o.call_id) and self.offers.get(o.call_id) == o.agent_id:
            del self.offers[o.call_id]  # this side reported the failure: it stopped ringing
        if o.call_id in self.offers:
            self._fail(f"{o} but the telephony side was not told to stop ringing")
        view.state, view.agent = CallState.QUEUED, None
        self.agents[o.agent_id].call = None

    def _answered(self, o: CallAnswered) -> None:
        view = self._view(o.call_id)
        if view.state is not CallState.RINGING or view.agent != o.agent_id \
                or self._action != ("answer", o.call_id) \
                or abs(o.wait_s - (o.at - view.arrived)) > 1e-6:
            self._fail(f"{o}: the call is {view.state.value} with {view.agent}")
        if self.offers.pop(o.call_id, None) != o.agent_id:
            self._fail(f"{o} for an offer the telephony side was not ringing")
        view.state = CallState.TALKING

    def _ended(self, o: CallEnded, overflowed: set[str]) -> None:
        action, subject = self._action
        if o.call_id in self.ended:
            self._fail(f"{o}: the call already ended")
        if o.call_id not in self.calls:  # refused on arrival: the queue was full
            if (action, subject) != ("arrive", o.call_id) or o.outcome is not Outcome.OVERFLOWED \
                    or o.call_id not in overflowed:
                self._fail(f"{o} for a call never queued")
            self.ended[o.call_id] = o.outcome
            self.stats[o.outcome.value] += 1
            return
        view = self.calls.pop(o.call_id)
        if (o.queue, o.arrived, o.language, o.country) != (view.queue, view.arrived,
                                                           view.language, view.country):
            self._fail(f"{o} does not match {view}")
        if o.outcome is Outcome.ANSWERED:
            ok = view.state is CallState.TALKING and (action, subject) == ("hangup", o.call_id) \
                and o.agent_id == view.agent
        elif o.outcome is Outcome.ABANDONED:
            ok = view.state in (CallState.QUEUED, CallState.RINGING) \
                and (action, subject) == ("hangup", o.call_id)
        elif o.outcome is Outcome.CALLBACK:
            ok = view.state is CallState.QUEUED and (action, subject) == ("callback", o.call_id)
        elif (action, subject) == ("withdraw", o.call_id):
            ok = o.outcome is Outcome.OVERFLOWED \
                and view.state in (CallState.QUEUED, CallState.RINGING)
        else:
            ok = o.outcome is Outcome.OVERFLOWED and o.call_id in overflowed
        if not ok:
            self._fail(f"{o}: outcome does not fit a {view.state.value} call after {action}")
        if view.agent is not None:
            self.agents[view.agent].call = None
        self.offers.pop(o.call_id, None)
        self.ended[o.call_id] = o.outcome
        self.stats[o.outcome.value] += 1
