"""What survives a restart: agent states and calls in progress, kept in the record store.

Every ``AgentStateChanged`` is written (one committed upsert) by :class:`AgentStateStore`;
the call records keep each call in progress in ``live_calls``
(:class:`~acd.runtime.records.CallRecords`). At start :func:`restore_agents` puts the floor
back under one rule for every mode (FastAGI and ARI): **an agent whose last known state was
ringing, talking or in wrap-up is never offered a call until the engine knows that call is
over.**

1. A call that was ringing or talking is put back on its agent (``Router.adopt_call``) and
   held by a :class:`RestoredCall` with a :class:`~acd.core.call.CallMachine` in that phase,
   until a shell claims it (:meth:`RestartBoard.claim`: FastAGI at the call's next
   ``dialresult``/``answered``/``ended`` script, ARI at cold-start adoption from the channel
   variables) and carries on with it: hangup, record and wrap-up as usual.
2. A call nobody claims is checked (a ring too: it has no router ring timeout, since its dial
   began before the restart): from ``first_check_s`` after start (plus the ring time for
   a ringing call) and every ``check_every_s`` after, Asterisk is asked whether the channel
   still exists (:class:`ChannelProbe`). Gone: the call ends now (``Lost``,
   ``gone_after_restart``). Cannot be asked: it ends at ``max_talk_s`` after start
   (``unknown_after_restart``); until then its agent is not offered another call.
3. Agents in wrap-up go back into it for the time they had left.
4. Paused agents stay paused with their reason; ready agents come back ready in their old idle
   order. An agent stored as ringing or talking whose call is unknown (a database from before
   calls were kept) comes back paused with the ring-no-answer reason, never ready; one stored
   in wrap-up without its call's row comes back ready (that call is over).
5. Calls that were waiting are followed for ``settle_s``: ARI takes its held callers back
   (their row continues); in FastAGI the dialplan's fallback took them when the engine died,
   so their row is written as ``overflowed`` with reason ``engine_restart``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from acd.core.agent_states import SYSTEM_PAUSE_REASONS
from acd.core.call import (
    Adopted,
    CallEvent,
    CallMachine,
    CallPolicy,
    Finished,
    Lost,
    Phase,
    ReportAnswered,
    ReportCallback,
    ReportFailed,
    ReportHangup,
    ReportWithdrawn,
)
from acd.core.model import AgentState, AgentStateChanged, Command, Output, RoutingError
from acd.runtime.records import CallRecords, LiveCall
from acd.runtime.router_service import CallOwner, RouterService, TimerHandle
from acd.runtime.store import RecordStore, as_store

log = structlog.get_logger("acd.state")
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedAgent:
    """One agent's last known state (``since`` in Unix seconds)."""

    agent_id: str
    state: AgentState
    reason: str | None
    endpoint: str | None
    since: float


class AgentStateStore:
    """A service observer that persists agent states; also remembers login endpoints."""

    def __init__(self, db: RecordStore | sqlite3.Connection) -> None:
        self.db = as_store(db)
        #: State changes that could not be written (each logged).
        self.failures = 0

    def __call__(self, output: Output, wall: float) -> None:
        """Persist an ``AgentStateChanged`` (other outputs are ignored); a failed write is
        logged and counted, never raised into the call path."""
        if isinstance(output, AgentStateChanged):
            try:
                self.db.execute(
                    "INSERT INTO agent_states (agent_id, state, reason, since)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET"
                    " state = excluded.state, reason = excluded.reason, since = excluded.since,"
                    # An API login's endpoint ends with that login; the API sets it again
                    # after its own login, any other login uses the roster's endpoint.
                    " endpoint = CASE WHEN excluded.state = 'logged_out' THEN NULL"
                    " ELSE agent_states.endpoint END",
                    (output.agent_id, output.state.value, output.reason, wall))
            except self.db.errors as exc:
                self.failures += 1
                log.error("agent_state_write_failed", agent_id=output.agent_id,
                          state=output.state.value, error=str(exc))

    def set_endpoint(self, agent_id: str, endpoint: str | None) -> None:
        """Remember the endpoint an agent logged in from (None: the roster's default); a
        failed write is logged and counted (the login itself has happened)."""
        try:
            self.db.execute("UPDATE agent_states SET endpoint = ? WHERE agent_id = ?",
                            (endpoint, agent_id))
        except self.db.errors as exc:
            self.failures += 1
            log.error("agent_state_write_failed", agent_id=agent_id, error=str(exc))

    def endpoint(self, agent_id: str) -> str | None:
        """The endpoint an agent last logged in from through the API (None: the roster's)."""
        row = self.db.execute("SELECT endpoint FROM agent_states WHERE agent_id = ?",
                              (agent_id,)).fetchone()
        return row[0] if row is not None else None

    def saved(self) -> list[SavedAgent]:
        """Every stored agent, longest in their state first."""
        rows = self.db.execute(
            "SELECT agent_id, state, reason, endpoint, since FROM agent_states ORDER BY since"
        ).fetchall()
        out = []
        for agent_id, state, reason, endpoint, since in rows:
            try:
                out.append(SavedAgent(agent_id, AgentState(state), reason, endpoint, since))
            except ValueError:
                log.warning("agent_state_unreadable", agent_id=agent_id, state=state)
        return out


# --- calls put back on their agents ----------------------------------------------------


class ChannelProbe(Protocol):
    """Asks Asterisk whether a call's channel still exists (AMI or ARI)."""

    async def channel_exists(self, call_id: str) -> bool | None:
        """True or False; None when Asterisk cannot be asked (or cannot tell)."""


@dataclass(frozen=True)
class RestartBounds:
    """How long a call put back on its agent waits for its shell before Asterisk is asked."""

    #: After start, before the first question (a ringing call adds its queue's ring time).
    first_check_s: float = 30.0
    #: Between two questions while the channel still exists.
    check_every_s: float = 60.0
    #: When Asterisk cannot be asked: the call ends as ``unknown_after_restart`` this long
    #: after start (two hours: longer than any but a pathological conversation, short enough
    #: that a lost call does not keep its agent away for the whole day).
    max_talk_s: float = 7200.0
    #: How long calls left waiting are followed before their row is written as lost.
    settle_s: float = 30.0


class RestoredCall:
    """The router's owner of a call put back on its agent, until a shell claims it."""

    __slots__ = ("board", "claimant", "give_up_at", "live", "machine", "timer")

    def __init__(self, board: RestartBoard, live: LiveCall, machine: CallMachine,
                 give_up_at: float) -> None:
        self.board = board
        self.live = live
        self.machine = machine
        self.give_up_at = give_up_at
        self.claimant: CallOwner | None = None
        self.timer: TimerHandle | None = None

    @property
    def call_id(self) -> str:
        """The call's id."""
        return self.live.call_id

    def handle_command(self, command: Command) -> None:
        """To the shell that claimed the call, else to the machine (reports only)."""
        if self.claimant is not None:
            self.claimant.handle_command(command)
        else:
            self.board.feed(self, command)


@dataclass
class RestoreSummary:
    """What a start put back."""

    agents: int = 0
    calls_ringing: int = 0
    calls_talking: int = 0
    wrap_ups: int = 0
    waiting_followed: int = 0
    lost: list[str] = field(default_factory=list)


class RestartBoard:
    """Calls put back on their agents at start, waiting for a shell to claim them."""

    def __init__(self, service: RouterService, records: CallRecords,
                 bounds: RestartBounds | None = None, probe: ChannelProbe | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.records = records
        self.bounds = bounds or RestartBounds()
        self.probe = probe
        self.wall_clock = wall_clock
        self.calls: dict[str, RestoredCall] = {}
        #: Calls left waiting, followed until ``settle_s`` (their records' open entry).
        self._waiting: list[tuple[LiveCall, object]] = []
        self._settle: TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: How restored calls ended without a shell (``Finished.how`` by call id).
        self.endings: dict[str, str] = {}

    # --- the shells' side

    def claim(self, call_id: str, make_owner: Callable[[CallMachine], CallOwner]
              ) -> CallOwner | None:
        """Hand a restored call to a shell: ``make_owner`` wraps its machine (already in the
        restored phase) into the shell's owner, which gets the router's commands from now."""
        restored = self.calls.pop(call_id, None)
        if restored is None:
            return None
        if restored.timer is not None:
            restored.timer.cancel()
        owner = make_owner(restored.machine)
        restored.claimant = owner
        log.info("restored_call_claimed", call_id=call_id, phase=restored.machine.phase.value)
        return owner

    def add(self, live: LiveCall, endpoint: str | None) -> bool:
        """Put a ringing or talking call back on its agent; False when the router refuses."""
        assert live.agent_id is not None
        s = self.service
        now, wall = s.now(), self.wall_clock()
        talking = live.state == "talking"
        machine = CallMachine(live.call_id, live.queue, live.language, live.country,
                              live.priority or 0, None, None, math.inf, CallPolicy())
        machine.handle(Adopted(Phase.TALKING if talking else Phase.RINGING, live.agent_id))
        restored = RestoredCall(self, live, machine, now + self.bounds.max_talk_s)
        arrived_at = now - max(0.0, wall - live.arrival)
        answered_at = now - max(0.0, wall - live.answered) \
            if talking and live.answered is not None else (now if talking else None)
        try:
            # A restored ring gets no router ring timeout: its dial's own timeout started
            # before the restart, so a ring nobody reports ended while no engine listened
            # (fallback taken, or answered and connected by the dialplan). Re-offering the
            # call would ring a second agent for it; the checks below end it instead.
            s.adopt_call(restored, live.call_id, live.queue, live.language, live.country,
                         live.agent_id, arrived_at=arrived_at, answered_at=answered_at,
                         endpoint=endpoint, ring_timeout_s=self.bounds.max_talk_s)
        except RoutingError as exc:
            log.warning("call_not_restored", call_id=live.call_id, agent_id=live.agent_id,
                        why=str(exc))
            return False
        self.records.resume(live, now, wall)
        self.calls[live.call_id] = restored
        first = self.bounds.first_check_s
        if not talking:
            queue = s.center.config.queues.get(live.queue)
            first += queue.ring_timeout_s if queue is not None else 0.0
        self._arm(restored, now + first)
        return True

    def follow_waiting(self, live: LiveCall) -> None:
        """Follow a call left waiting: a shell may queue it again within ``settle_s``."""
        self.records.resume(live, self.service.now(), self.wall_clock())
        self._waiting.append((live, self.records.open[live.call_id]))
        if self._settle is None:
            s = self.service
            self._settle = s.clock.call_at(s.now() + self.bounds.settle_s, self._settle_due)

    def rejoin(self, call_id: str) -> LiveCall | None:
        """A call left waiting that is still followed (not queued again, not yet written
        lost): its stored state, for a FastAGI caller re-entering after a takeover."""
        for live, followed in self._waiting:
            if live.call_id == call_id and self.records.open.get(call_id) is followed:
                return live
        return None

    def _settle_due(self) -> None:
        self.settle()

    def settle(self) -> list[str]:
        """Write the rows of waiting calls nobody queued again; returns their ids."""
        self._settle = None
        lost = []
        router, wall = self.service.router, self.wall_clock()
        for live, followed in self._waiting:
            if self.records.open.get(live.call_id) is followed \
                    and router.call_state(live.call_id) is None:
                self.records.write_lost(live, wall, "engine_restart")
                lost.append(live.call_id)
        self._waiting.clear()
        if lost:
            log.info("waiting_calls_lost_in_restart", calls=lost)
        return lost

    def close(self) -> None:
        """Stop every timer (at shutdown)."""
        for restored in self.calls.values():
            if restored.timer is not None:
                restored.timer.cancel()
        if self._settle is not None:
            self._settle.cancel()
        for task in self._tasks:
            task.cancel()

    # --- the machine's reports, for calls no shell has claimed

    def feed(self, restored: RestoredCall, event: CallEvent) -> None:
        """Give ``event`` to an unclaimed call's machine and make its router reports."""
        self._run(restored, event)

    def _run(self, restored: RestoredCall, event: CallEvent) -> None:
        s, call_id = self.service, restored.call_id
        for action in restored.machine.handle(event):
            if isinstance(action, ReportHangup):
                s.hangup(call_id)
            elif isinstance(action, ReportWithdrawn):
                s.withdraw(call_id, action.reason)
            elif isinstance(action, ReportFailed):
                s.offer_failed(call_id, action.reason, action.agent_id)
            elif isinstance(action, ReportAnswered):
                s.offer_answered(call_id, action.agent_id)
            elif isinstance(action, ReportCallback):
                s.callback_accepted(call_id)
            elif isinstance(action, Finished):
                self.calls.pop(call_id, None)
                if restored.timer is not None:
                    restored.timer.cancel()
                self.endings[call_id] = action.how
            # The medium's work (dial, music, release) waits for the shell that claims it.

    def _arm(self, restored: RestoredCall, when: float) -> None:
        clock = self.service.clock
        restored.timer = clock.call_at(min(when, restored.give_up_at),
                                       lambda: self._due(restored))

    def _due(self, restored: RestoredCall) -> None:
        restored.timer = None
        if self.calls.get(restored.call_id) is not restored:
            return
        task = asyncio.get_running_loop().create_task(self.check(restored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def check(self, restored: RestoredCall) -> None:
        """Ask Asterisk about an unclaimed call: end it if gone, or at the bound if unknown."""
        exists = await self.probe.channel_exists(restored.call_id) \
            if self.probe is not None else None
        if self.calls.get(restored.call_id) is not restored:
            return  # claimed or ended while we asked
        now = self.service.now()
        if exists is False:
            log.info("restored_call_gone", call_id=restored.call_id)
            self.feed(restored, Lost("gone_after_restart"))
        elif exists is None and now >= restored.give_up_at:
            log.warning("restored_call_unknown", call_id=restored.call_id,
                        after_s=self.bounds.max_talk_s)
            self.feed(restored, Lost("unknown_after_restart"))
        else:
            self._arm(restored, now + self.bounds.check_every_s)


def restore_agents(service: RouterService, saved: list[SavedAgent],
                   board: RestartBoard | None = None) -> int:
    """Put the floor back (see the module docstring); returns how many agents came back.

    Without ``board`` (no call records) only agent states are restored, and agents who were
    ringing or talking come back paused with the ring-no-answer reason.
    """
    return restore(service, saved, board).agents


def restore(service: RouterService, saved: list[SavedAgent],
            board: RestartBoard | None = None) -> RestoreSummary:
    """Put the floor back (see the module docstring)."""
    config = service.center.config
    roster = set(service.router.agent_ids())
    summary = RestoreSummary()
    endpoints = {a.agent_id: a.endpoint for a in saved}
    taken: set[str] = set()
    live = board.records.live_calls() if board is not None else []
    if board is not None:
        for call in live:
            who = call.agent_id
            if call.state in ("ringing", "talking") and who is not None:
                if who in roster and who not in taken \
                        and board.add(call, endpoints.get(who)):
                    taken.add(who)
                    summary.agents += 1
                    if call.state == "talking":
                        summary.calls_talking += 1
                    else:
                        summary.calls_ringing += 1
                else:
                    board.follow_waiting(call)
                    summary.waiting_followed += 1
            elif call.state == "queued":
                board.follow_waiting(call)
                summary.waiting_followed += 1
        wall = board.wall_clock()
        for call in live:
            who = call.agent_id
            if call.state != "wrap_up" or who is None:
                continue
            if who not in roster or who in taken:
                board.records.forget_live(call.call_id)
                continue
            queue = config.queues.get(call.queue)
            wrap_s = queue.wrap_up_s if queue is not None else 0.0
            remaining = wrap_s - max(0.0, wall - (call.ended or wall))
            board.records.wrapping(who)
            try:
                service.adopt_wrap_up(who, remaining, endpoints.get(who))
            except RoutingError as exc:
                log.warning("wrap_up_not_restored", agent_id=who, why=str(exc))
                board.records.forget_live(call.call_id)
                continue
            taken.add(who)
            summary.agents += 1
            summary.wrap_ups += 1
    # Paused first, then ready in their old idle order, so longest-idle stays first.
    order = sorted(saved, key=lambda a: (a.state is not AgentState.PAUSED, a.since))
    busy = (AgentState.RINGING, AgentState.ON_CALL)
    for agent in order:
        if agent.state is AgentState.LOGGED_OUT or agent.agent_id in taken:
            continue
        if agent.agent_id not in roster:
            log.warning("agent_not_restored", agent_id=agent.agent_id,
                        why="no longer on the roster")
            continue
        reason = None
        if agent.state is AgentState.PAUSED:
            # A reason dropped from the config still leaves the agent paused, as needing
            # attention (the RONA reason), rather than suddenly taking calls.
            reason = (agent.reason if agent.reason in config.pause_reasons
                      or agent.reason in SYSTEM_PAUSE_REASONS else config.rona.pause_reason)
        elif agent.state in busy:
            # Its call is unknown: never ready before someone says it is over.
            reason = config.rona.pause_reason
            log.warning("agent_restored_paused", agent_id=agent.agent_id,
                        was=agent.state.value, why="its call is not known")
        try:
            service.login(agent.agent_id, agent.endpoint, reason)
        except RoutingError as exc:
            log.warning("agent_not_restored", agent_id=agent.agent_id, why=str(exc))
            continue
        summary.agents += 1
    return summary
