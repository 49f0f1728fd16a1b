"""Call machines and a real router under any interleaving, as a Hypothesis state machine.

A small driver runs one :class:`~acd.core.call.CallMachine` per call against the reference
center's :class:`~acd.core.router.Router`, the way the FastAGI and ARI drivers do: router
commands go to the call's machine (outputs of a router call made while dispatching queue up
behind, as in the live service), ``Report*`` actions call the router with the agent id, and a
model of the medium executes the rest (music, dials, bridges, hand-backs). Rules interleave
arrivals, idle hold sessions, answers (current and stale), dial failures, hang-ups from either
side, callback answers, agent logins, readies and pauses, time jumps (ring timeouts, callback
offers, overflows), shutdown drains and engine restarts. A restart is modelled as the facts a
FastAGI driver has: sessions on hold die with the engine (the dialplan takes those callers),
dials and talks survive and are adopted by a new machine; a ringing or talking call is put back
on its agent in the new router (``Router.adopt_call``, as the persisted call rows allow), a
dial the router had withdrawn keeps its agent out of the new router until it is over; an
adopted call may later be ``Lost`` (Asterisk says its channel is gone). Invariants after
every step: no agent is connected to two calls, music is never started twice or stopped
when off, no action follows a call's end, and the machine's view matches the router's. At
teardown every caller hangs up and every call must have ended exactly once, with no music
left playing.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from routerkit import reference_center

from acd.config.policy import center_policy
from acd.core.call import (
    Action,
    Adopted,
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
    Drain,
    Finished,
    HandBack,
    Idle,
    Lost,
    Phase,
    Queued,
    RefuseAnswer,
    ReleaseAgent,
    ReportAnswered,
    ReportCallback,
    ReportFailed,
    ReportHangup,
    ReportWithdrawn,
    StartHold,
    StopHold,
    StoreCallback,
    without_call,
)
from acd.core.model import (
    AgentState,
    CallState,
    CancelOffer,
    Ignored,
    Offer,
    OfferCallback,
    Output,
    Overflow,
)
from acd.core.router import Router

SETTINGS = settings(max_examples=int(os.environ.get("CALL_MACHINE_EXAMPLES", "150")),
                    stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
AGENTS = ("msk-tech-ru-001", "msk-tech-ru-002", "msk-tech-ru-003")
COMMANDS = (Offer, CancelOffer, Overflow, OfferCallback)
TIME_JUMPS = st.sampled_from([0.5, 5.0, 16.0, 31.0, 151.0, 1300.0, 1300.0])


@dataclass
class Medium:
    """What the telephony side holds for one caller (the model the actions run against)."""

    call_id: str
    holding: bool = False
    dialling: str | None = None  # agent whose phone rings for this caller
    connected: str | None = None  # agent talking to this caller
    asked: bool = False  # the callback question is out
    over: str | None = None  # how the call ended for the engine (once)
    ends: int = 0
    log: list[object] = field(default_factory=list)


class CallsAndRouter(RuleBasedStateMachine):
    """Drives machines, a medium model and a real router; checks the lifecycle invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.count = 0
        self.machines: dict[str, CallMachine] = {}
        self.media: dict[str, Medium] = {}
        self.held_out: set[str] = set()  # agents kept out of a restarted router
        self.pending: deque[list[Output]] = deque()
        self.dispatching = False
        self.router = self._new_router()
        self.policy = CallPolicy()
        self.release_stops_ring = False
        self.deferred: deque[tuple[str, CallEvent]] = deque()

    def _new_router(self) -> Router:
        center = reference_center()
        return Router(center_policy(center.config), center.agents)

    @initialize(ari_like=st.booleans(), staffed=st.sets(st.sampled_from(AGENTS)))
    def medium_kind(self, ari_like: bool, staffed: set[str]) -> None:
        """FastAGI-like (Dial replaces hold, a ring cannot be stopped) or ARI-like; some
        agents logged in from the start."""
        self.policy = CallPolicy(hold_while_ringing=ari_like)
        self.release_stops_ring = ari_like
        for agent in sorted(staffed):
            self._router("login", agent, None, None)

    # ------------------------------------------------------------------ the driver

    def _router(self, name: str, *args: object, **kwargs: object) -> None:
        out: list[Output] = getattr(self.router, name)(self.now, *args, **kwargs)
        self.pending.append(out)
        if self.dispatching:
            return
        self.dispatching = True
        try:
            while self.pending:
                for o in self.pending.popleft():
                    if isinstance(o, COMMANDS):
                        assert o.call_id in self.machines, f"command for an unknown call {o}"
                        self._feed(o.call_id, o)
        finally:
            self.dispatching = False

    def _feed(self, call_id: str, event: CallEvent) -> None:
        machine = self.machines.get(call_id)
        actions = machine.handle(event) if machine is not None else without_call(call_id, event)
        for action in actions:
            self._execute(call_id, action)
        medium = self.media.get(call_id)
        if medium is not None and medium.over is None and not self.policy.hold_while_ringing:
            assert not (medium.holding and medium.dialling), "music while Dial() rings"
        self._release_held_out()

    def _execute(self, call_id: str, action: Action) -> None:
        medium = self.media.get(call_id)
        if isinstance(action, Ignored):
            return
        if medium is None:  # a report without a machine: only router calls may follow
            assert isinstance(action, ReportHangup | RefuseAnswer | HandBack), action
            if isinstance(action, ReportHangup):
                self._router("hangup", call_id)
            return
        assert medium.over is None or isinstance(action, RefuseAnswer), \
            f"{action} after the end of {call_id} ({medium.over})"
        medium.log.append(action)
        match action:
            case StartHold():
                assert not medium.holding, "music started twice"
                medium.holding = True
            case StopHold():
                assert medium.holding, "music stopped while off"
                medium.holding = False
            case Dial(agent_id=agent):
                assert medium.dialling is None and medium.connected is None
                medium.dialling = agent
            case ReleaseAgent(agent_id=agent):
                if medium.dialling == agent and self.release_stops_ring:
                    medium.dialling = None
                    self._later(call_id, DialFailed(agent, "unavailable"))
                elif medium.connected == agent:
                    medium.connected = None
            case Connect(agent_id=agent):
                assert medium.dialling == agent
                for other in self.media.values():
                    assert other.connected != agent or other.over is not None, \
                        f"agent {agent} connected to {other.call_id} and {call_id}"
                medium.dialling, medium.connected = None, agent
            case RefuseAnswer(agent_id=agent):
                if medium.dialling == agent:  # the dial ends after the refused answer
                    medium.dialling = None
                    self._later(call_id, AgentGone())
            case AskCallback():
                assert not medium.holding and not medium.asked
                medium.asked = True
            case StoreCallback() | HandBack():
                pass
            case Finished(how=how):
                medium.ends += 1
                medium.over = how
                medium.holding = False
                medium.dialling = medium.connected = None
            case ReportAnswered(agent_id=agent):
                self._router("offer_answered", call_id, agent)
            case ReportFailed(agent_id=agent, reason=reason):
                self._router("offer_failed", call_id, reason, agent)
            case ReportHangup():
                self._router("hangup", call_id)
            case ReportWithdrawn(reason=reason):
                self._router("withdraw", call_id, reason)
            case ReportCallback():
                self._router("callback_accepted", call_id)

    def _later(self, call_id: str, event: CallEvent) -> None:
        # A fact the medium reports right after the current one (after this action list).
        self.deferred.append((call_id, event))

    def _drain_deferred(self) -> None:
        while self.deferred:
            call_id, event = self.deferred.popleft()
            self._feed(call_id, event)

    def _release_held_out(self) -> None:
        busy = {a for m in self.media.values() if m.over is None
                for a in (m.dialling, m.connected) if a is not None}
        for agent in sorted(self.held_out - busy):
            self.held_out.discard(agent)
            if self.router.agent_state(agent) is AgentState.LOGGED_OUT:  # else adopted
                self._router("login", agent, None, None)

    def _live(self) -> list[Medium]:
        return [m for m in self.media.values() if m.over is None]

    def _step(self, call_id: str, event: CallEvent) -> None:
        self._feed(call_id, event)
        self._drain_deferred()

    # ------------------------------------------------------------------ rules

    @rule()
    def arrive(self) -> None:
        """A caller leaves the IVR for the tech queue; the session then idles (hold)."""
        self.count += 1
        call_id = f"c{self.count}"
        machine = CallMachine(call_id, "tech", "ru", "RU", 0, "+79161234567", None,
                              self.now + 1500.0, self.policy)
        self.machines[call_id] = machine
        self.media[call_id] = Medium(call_id)
        self._step(call_id, Queued())
        self._router("call_arrived", call_id, "tech", "ru", "RU", 0, None, None)
        self._drain_deferred()
        if machine.phase is Phase.QUEUED:
            self._step(call_id, Idle(self.now))

    @rule(data=st.data())
    def idle(self, data: st.DataObject) -> None:
        """A hold session with nothing to do asks the machine (music, deadline)."""
        queued = [m for m in self._live() if self.machines[m.call_id].phase is Phase.QUEUED]
        if queued:
            self._step(data.draw(st.sampled_from(queued)).call_id, Idle(self.now))

    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        """The rung agent picks up."""
        ringing = [m for m in self._live() if m.dialling is not None]
        if ringing:
            medium = data.draw(st.sampled_from(ringing))
            assert medium.dialling is not None
            self._step(medium.call_id, Answered(medium.dialling))

    @rule(data=st.data(), agent=st.sampled_from(AGENTS))
    def stale_answer(self, data: st.DataObject, agent: str) -> None:
        """An answer for any call, live or ended, from any agent (late, duplicate, bogus)."""
        if self.media:
            call_id = data.draw(st.sampled_from(sorted(self.media)))
            medium = self.media[call_id]
            if medium.dialling != agent and medium.connected != agent:
                self._step(call_id, Answered(agent))

    @rule(data=st.data(), reason=st.sampled_from(["no_answer", "busy", "unavailable"]))
    def dial_fails(self, data: st.DataObject, reason: str) -> None:
        """Dial() returns unanswered (ring timeout in Asterisk, busy, congestion)."""
        ringing = [m for m in self._live() if m.dialling is not None]
        if ringing:
            medium = data.draw(st.sampled_from(ringing))
            agent, medium.dialling = medium.dialling, None
            assert agent is not None
            self._step(medium.call_id, DialFailed(agent, reason))

    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        """The caller leaves in any phase (abandon, or the end of talk from their side)."""
        live = self._live()
        if live:
            medium = data.draw(st.sampled_from(live))
            medium.asked = False
            self._step(medium.call_id, CallerGone())

    @rule(data=st.data())
    def agent_hangs_up(self, data: st.DataObject) -> None:
        """The agent ends the talk."""
        talking = [m for m in self._live() if m.connected is not None]
        if talking:
            medium = data.draw(st.sampled_from(talking))
            medium.connected = None
            self._step(medium.call_id, AgentGone())

    @rule(data=st.data(), accepted=st.booleans())
    def callback_answer(self, data: st.DataObject, accepted: bool) -> None:
        """The caller answers the callback question (1 or anything else)."""
        asked = [m for m in self._live() if m.asked]
        if asked:
            medium = data.draw(st.sampled_from(asked))
            medium.asked = False
            self._step(medium.call_id, CallbackAnswer(accepted))

    @rule(agent=st.sampled_from(AGENTS))
    def login_or_ready(self, agent: str) -> None:
        """An agent logs in, or becomes ready if logged in (not while held out)."""
        if agent in self.held_out:
            return
        if self.router.agent_state(agent) is AgentState.LOGGED_OUT:
            self._router("login", agent, None, None)
        else:
            self._router("ready", agent)
        self._drain_deferred()

    @rule(agent=st.sampled_from(AGENTS))
    def pause(self, agent: str) -> None:
        """An agent pauses (a ringing offer is withdrawn by the router)."""
        if self.router.agent_state(agent) is not AgentState.LOGGED_OUT:
            self._router("pause", agent, "break")
            self._drain_deferred()

    @rule(dt=TIME_JUMPS)
    def time_passes(self, dt: float) -> None:
        """Time jumps; the router's timers run (ring timeouts, callback offers, overflows)."""
        self.now += dt
        self._router("advance")
        self._drain_deferred()

    @rule(rarely=st.integers(0, 5))
    def drain(self, rarely: int) -> None:
        """The service shuts down (now and then): every live call is told to drain."""
        if rarely:
            return
        for medium in self._live():
            self._step(medium.call_id, Drain())

    @rule(rarely=st.integers(0, 5))
    def restart(self, rarely: int) -> None:
        """The engine dies and starts again (now and then, as FastAGI sees it): held callers
        fall back, dials and talks survive and are adopted."""
        if rarely:
            return
        self.router = self._new_router()
        self.held_out = set()
        adopted: set[str] = set()
        for medium in self._live():
            agent = medium.dialling or medium.connected
            if agent is None:
                medium.over = "restart_fallback"  # the dialplan took the caller
                medium.ends += 1
                medium.holding = medium.asked = False
                self.machines.pop(medium.call_id, None)
                continue
            machine = CallMachine(medium.call_id, "tech", "ru", "RU", 0, "+79161234567", None,
                                  self.now + 1500.0, self.policy)
            # The phase the engine persisted: a dial the router withdrew still rings.
            phase = self.machines[medium.call_id].phase
            self.machines[medium.call_id] = machine
            self._step(medium.call_id, Adopted(phase, agent, holding=medium.holding))
            if phase in (Phase.RINGING, Phase.TALKING):
                self._router("adopt_call", medium.call_id, "tech", "ru", "RU", agent,
                             arrived_at=self.now - 1.0,
                             answered_at=self.now if phase is Phase.TALKING else None)
                adopted.add(agent)
                want = AgentState.ON_CALL if phase is Phase.TALKING else AgentState.RINGING
                assert self.router.agent_state(agent) is want
            else:
                self.held_out.add(agent)
        for agent in AGENTS:
            if agent not in self.held_out and agent not in adopted:
                self._router("login", agent, None, None)
        self._drain_deferred()

    @rule(data=st.data(), rarely=st.integers(0, 3))
    def lost(self, data: st.DataObject, rarely: int) -> None:
        """After a restart, Asterisk says a call's channel is gone (now and then)."""
        live = [m for m in self._live() if self.machines[m.call_id].phase is not Phase.NEW]
        if rarely or not live:
            return
        medium = data.draw(st.sampled_from(live))
        self._step(medium.call_id, Lost("gone_after_restart"))

    # ------------------------------------------------------------------ invariants

    @invariant()
    def machines_agree_with_the_router(self) -> None:
        """A call talking in the router talks in its machine with the same agent."""
        for call_id, machine in self.machines.items():
            state = self.router.call_state(call_id)
            if state is CallState.TALKING:
                assert machine.phase is Phase.TALKING
            if machine.phase is Phase.ENDED:
                assert self.media[call_id].over is not None
            if state is CallState.RINGING and machine.phase is Phase.RINGING:
                snapshot = {a.agent_id: a for a in self.router.agent_snapshot()
                            if a.call_id == call_id}
                assert machine.agent_id in snapshot

    @invariant()
    def one_end_per_call(self) -> None:
        """No call has ended twice."""
        assert all(m.ends <= 1 for m in self.media.values())

    def teardown(self) -> None:
        """Every caller hangs up: every call has ended exactly once, no music plays."""
        for medium in self._live():
            medium.asked = False
            self._step(medium.call_id, CallerGone())
        for medium in self.media.values():
            assert medium.ends == 1, f"{medium.call_id} ended {medium.ends} times"
            assert not medium.holding and medium.connected is None
        survivors = [c for c in self.media if self.router.call_state(c) is not None]
        assert not survivors, f"calls left in the router: {survivors}"


CallsAndRouter.TestCase.settings = SETTINGS
TestCallsAndRouter = CallsAndRouter.TestCase
