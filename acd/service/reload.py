"""Config reload without dropping calls: a new router, rebuilt from the old one's calls and agents.

The new :class:`~acd.core.router.Router` replaces the old one inside the same
:class:`RouterService` (so call owners, observers and the HTTP API keep their reference).
It is rebuilt in an order that reproduces the old world exactly where it matters:

1. every ringing or talking call, one at a time: its agent logs in alone, the call is re-added
   with its arrival time, the router offers it to that agent (the offer is swallowed: the
   phone already rings) and, for a talking call, the answer is replayed;
2. paused agents, with their reasons;
3. waiting calls, in arrival order, with their arrival time (they keep their place and the
   clock of their expansion steps);
4. ready agents (and agents in wrap-up, whose wrap-up ends early), longest idle first.

Observers are held back during steps 1-3 (they already saw those calls and agents), and
opened for step 4, whose offers are real. If the new config cannot take a ringing or talking
call back (its agent left the roster, or is no longer eligible), the reload is refused and
the old router stays. Known losses: a caller's extra priority and pending "pause/log out
after this call" requests are not carried over; a restored ring gets a fresh ring timeout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from acd.config.load import LoadedCenter
from acd.config.policy import center_policy
from acd.core.agent_states import SYSTEM_PAUSE_REASONS
from acd.core.model import AgentState, CallEnded, CallState, Offer, RoutingError
from acd.core.router import Router
from acd.runtime.records import OpenCall
from acd.runtime.router_service import CallOwner, Command, RouterService

log = logging.getLogger(__name__)


class ReloadRefused(RoutingError):
    """The new configuration cannot take over the calls in progress; the old one stays."""


class ObserverGate:
    """Holds back observers while a reload replays calls the observers already saw.

    The replay itself is not news, with one exception: a waiting call that the new config
    ends at once (it has already waited past the new maximum wait, say). Its ``CallEnded`` is
    held and delivered when the reload stands (:meth:`open` with ``deliver``), so the call's
    record and metrics see it end; a reload that is rolled back drops it.
    """

    def __init__(self) -> None:
        self.closed = False
        self._held: list[tuple[Callable[[object, float], None], object, float]] = []

    def wrap(self, observer: Callable[[object, float], None]
             ) -> Callable[[object, float], None]:
        """An observer that hears nothing but call ends while the gate is closed."""

        def gated(output: object, wall: float) -> None:
            if not self.closed:
                observer(output, wall)
            elif isinstance(output, CallEnded):
                self._held.append((observer, output, wall))

        return gated

    def open(self, deliver: bool) -> None:
        """Let observers hear again; first, when ``deliver``, the call ends held meanwhile."""
        held, self._held = self._held, []
        self.closed = False
        if deliver:
            for observer, output, wall in held:
                observer(output, wall)


@dataclass(frozen=True)
class ReloadSummary:
    """What a reload carried over."""

    agents: int
    calls_talking: int
    calls_ringing: int
    calls_waiting: int


class _Restorer:
    """Stands in for a call's owner while the call is put back on its agent."""

    def __init__(self, service: RouterService, real: CallOwner | None, agent_id: str,
                 answer: bool) -> None:
        self.service = service
        self.real = real
        self.expect: tuple[str, bool] | None = (agent_id, answer)
        self.mismatch: str | None = None

    def handle_command(self, command: Command) -> None:
        if self.expect is not None and isinstance(command, Offer):
            agent_id, answer = self.expect
            self.expect = None
            if command.agent_id != agent_id:
                self.mismatch = (f"call {command.call_id!r} would move from agent "
                                 f"{agent_id!r} to {command.agent_id!r}")
                return
            if answer:
                self.service.offer_answered(command.call_id)
            return  # the agent's phone already rings (or is talking): nothing to do
        if self.real is not None:
            self.real.handle_command(command)


class _Orphan:
    """Owner for a call whose owner is unknown: commands are logged, not lost silently."""

    def handle_command(self, command: Command) -> None:
        log.warning("reload: command for a call with no owner: %r", command)


def _install(service: RouterService, center: LoadedCenter, router: Router) -> None:
    service.replace_router(center, router)


def rebuild(service: RouterService, center: LoadedCenter, open_calls: dict[str, OpenCall],
            gate: ObserverGate, endpoint_of: Callable[[str], str | None]) -> ReloadSummary:
    """Replace the service's router by one built from ``center``, keeping calls and agents.

    ``open_calls`` are the calls in the router as the call records know them (arrival,
    queue, language, country). Raises :class:`ReloadRefused` and keeps the old router when a
    ringing or talking call cannot be put back on its agent.
    """
    old_router, old_center = service.router, service.center
    snaps = old_router.agent_snapshot()
    busy = {a.call_id: a for a in snaps
            if a.call_id is not None and a.state in (AgentState.RINGING, AgentState.ON_CALL)}
    missing = [cid for cid in busy if cid not in open_calls]
    if missing:
        raise ReloadRefused(f"calls {missing} are not known to the call records; retry later")
    waiting = sorted((c for c in open_calls.values()
                      if old_router.call_state(c.call_id) is CallState.QUEUED),
                     key=lambda c: c.arrived)
    roster = {a.id for a in center.agents}
    gate.closed = True
    _install(service, center, Router(center_policy(center.config), center.agents))
    restorers: list[_Restorer] = []
    try:
        talking = ringing = 0
        for call in sorted((open_calls[cid] for cid in busy), key=lambda c: c.arrived):
            agent = busy[call.call_id]
            if agent.agent_id not in roster:
                raise ReloadRefused(f"agent {agent.agent_id!r} is on call {call.call_id!r} and "
                                    "is not on the new roster; retry when the call has ended")
            answer = agent.state is AgentState.ON_CALL
            service.login(agent.agent_id, endpoint_of(agent.agent_id))
            restorer = _Restorer(service, service.owner_of(call.call_id), agent.agent_id, answer)
            restorers.append(restorer)
            service.call_arrived(restorer, call.call_id, call.queue, call.language, call.country,
                                 arrived_at=call.arrived)
            want = CallState.TALKING if answer else CallState.RINGING
            if restorer.mismatch or service.router.call_state(call.call_id) is not want:
                raise ReloadRefused(restorer.mismatch or (
                    f"agent {agent.agent_id!r} cannot take call {call.call_id!r} under the new "
                    "config; retry when the call has ended"))
            talking += answer
            ringing += not answer
        agents = talking + ringing
        reasons = set(center.config.pause_reasons) | SYSTEM_PAUSE_REASONS
        for a in sorted(snaps, key=lambda a: a.since):
            if a.state is AgentState.PAUSED and a.agent_id in roster:
                reason = a.reason if a.reason in reasons else center.config.rona.pause_reason
                service.login(a.agent_id, endpoint_of(a.agent_id), reason)
                agents += 1
        for call in waiting:
            owner = service.owner_of(call.call_id) or _Orphan()
            service.call_arrived(owner, call.call_id, call.queue, call.language, call.country,
                                 arrived_at=call.arrived)
    except BaseException:
        for r in restorers:
            r.expect = None  # back on the old router, every command goes to the real owner
        gate.open(deliver=False)
        _install(service, old_center, old_router)
        raise
    gate.open(deliver=True)
    for a in sorted(snaps, key=lambda a: a.since):
        if a.state in (AgentState.READY, AgentState.WRAP_UP) and a.agent_id in roster:
            service.login(a.agent_id, endpoint_of(a.agent_id))
            agents += 1
    return ReloadSummary(agents, talking, ringing, len(waiting))
