"""Per-call state of the Stasis application: the caller's channel, its bridges and agent leg.

An :class:`AriCall` is the router's :class:`~acd.runtime.router_service.CallOwner` for one
caller; it also buffers what the caller does (keys, prompt ends, hangup) for the IVR channel.
Where the call is in its lifecycle is its :class:`~acd.core.call.CallMachine`'s business
(from the queue on); the ARI side only keeps what Asterisk has: channel ids and bridges.
Names of everything the engine creates in Asterisk start with ``acd-`` so that a restarted
engine can tell its own bridges and agent legs from anyone else's.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from acd.asterisk.ari.client import (
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriNotFound,
    AriServerError,
    AriTimeout,
)
from acd.core.call import Action, CallMachine
from acd.core.call import Phase as CallPhase
from acd.core.model import Command
from ivr.actions import Outcome

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Prefixes of the ids the engine gives to what it creates (bridges, agent legs, playbacks).
HOLD_PREFIX = "acd-hold-"
TALK_PREFIX = "acd-talk-"
LEG_PREFIX = "acd-agent-"
#: Channel variable that keeps a queued caller's routing data in Asterisk, for a cold start.
QUEUED_VAR = "ACD_QUEUED"
#: Most buffered keys per caller; a caller leaning on the keypad cannot grow memory.
MAX_BUFFERED_DIGITS = 32
#: Errors worth one more try: Asterisk busy, slow or briefly unreachable.
TRANSIENT = (AriServerError, AriTimeout, AriConnectionError)
#: Errors that mean "already gone" when cleaning up.
GONE = (AriNotFound, AriConflict, AriBadRequest)
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def safe_id(text: str, limit: int = 64) -> str:
    """Text reduced to characters safe inside an ARI id or a channel variable value."""
    return _SAFE.sub("_", text)[:limit]


class Phase(StrEnum):
    """Where a caller is in the engine, as the IVR, logs and tests see it (read-only: derived
    from the call's machine once queued, see :attr:`AriCall.phase`)."""

    IVR = "ivr"
    HOLD = "hold"
    RINGING = "ringing"
    TALKING = "talking"
    LEAVING = "leaving"  # handed back to the dialplan or hung up by the engine
    ENDED = "ended"


#: The machine's phases as ARI shows them (the question and a withdrawn ring keep the hold).
_VIEW = {
    CallPhase.NEW: Phase.IVR,
    CallPhase.QUEUED: Phase.HOLD,
    CallPhase.ASKING: Phase.HOLD,
    CallPhase.RING_CANCELLED: Phase.HOLD,
    CallPhase.RINGING: Phase.RINGING,
    CallPhase.TALKING: Phase.TALKING,
}


@dataclass
class AgentLeg:
    """The channel originated to an agent for one offer (``answered``: it entered Stasis)."""

    channel_id: str
    agent_id: str
    call_id: str
    answered: bool = False


@dataclass
class QueueSlot:
    """What the router needs to (re)queue a call; kept on the channel as ``ACD_QUEUED``."""

    queue: str
    language: str
    country: str
    priority: int = 0
    customer_id: str | None = None
    queued_at_epoch: float = 0.0

    @classmethod
    def from_outcome(cls, outcome: Outcome, queued_at_epoch: float, *, base_priority: int = 0,
                     customer_id: str | None = None) -> QueueSlot | None:
        """Where an IVR outcome queues the call (None: the flow did not queue it); the flow's
        priority comes on top of ``base_priority`` (a callback task's own)."""
        if outcome.status not in ("queued", "hop_limit") or outcome.queue is None:
            return None
        return cls(outcome.queue, outcome.language, outcome.country,
                   base_priority + outcome.priority, customer_id, queued_at_epoch)

    def encode(self) -> str:
        """The channel variable value: ``queue|language|country|priority|customer|epoch``."""
        customer = safe_id(self.customer_id or "")
        parts = [self.queue, self.language, self.country, str(self.priority), customer]
        return "|".join([*parts, f"{self.queued_at_epoch:.3f}"])

    @classmethod
    def decode(cls, text: str) -> QueueSlot | None:
        """Read a value written by :meth:`encode`; anything else gives None."""
        parts = text.split("|")
        if len(parts) != 6:
            return None
        queue, language, country, priority, customer, epoch = parts
        try:
            return cls(queue, language, country, int(priority), customer or None, float(epoch))
        except ValueError:
            return None


@dataclass(eq=False)
class AriCall:
    """One caller in Stasis: the router's owner of the call and the IVR's event mailbox."""

    call_id: str
    caller_number: str
    on_command: Callable[[AriCall, Command], None]
    slot: QueueSlot | None = None
    #: The call's lifecycle from the queue on (None while in the IVR).
    machine: CallMachine | None = None
    #: The IVR or the engine handed the caller to the dialplan before queueing it.
    left: bool = False
    hold_bridge: str | None = None
    talk_bridge: str | None = None
    leg: AgentLeg | None = None
    #: True when the router does not know this call (adopted in talk after a cold start).
    unmanaged: bool = False
    hung_up: bool = False
    digits: deque[str] = field(default_factory=deque)
    playbacks_done: set[str] = field(default_factory=set)
    recordings_done: dict[str, bool] = field(default_factory=dict)
    #: Recordings started and not yet reported (their report may come after a hangup).
    recordings_open: set[str] = field(default_factory=set)
    pending_playbacks: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    #: The machine's medium work not yet done, in order, and the task doing it.
    todo: deque[Action] = field(default_factory=deque)
    worker: asyncio.Task[None] | None = None
    #: The agent ended the talk and the caller goes to the post-call survey.
    survey_after: bool = False
    _seq: int = 0

    @property
    def phase(self) -> Phase:
        """Where the caller is: the machine's phase as ARI shows it, or the IVR's."""
        machine = self.machine
        if machine is None or machine.phase is CallPhase.ENDED:
            if self.hung_up:
                return Phase.ENDED
            return Phase.LEAVING if self.left or machine is not None else Phase.IVR
        return _VIEW[machine.phase]

    def handle_command(self, command: Command) -> None:
        """Hand a router command to the application (which schedules the I/O)."""
        self.on_command(self, command)

    def next_id(self, kind: str) -> str:
        """A fresh id of our own for a playback, recording or agent leg of this call."""
        self._seq += 1
        return f"acd-{kind}-{safe_id(self.call_id)}-{self._seq}"

    def poke(self) -> None:
        """Wake whoever waits on this call's mailbox."""
        self.changed.set()

    def push_digit(self, digit: str) -> None:
        """Buffer one key the caller pressed (the oldest is dropped when the buffer is full)."""
        if len(self.digits) >= MAX_BUFFERED_DIGITS:
            self.digits.popleft()
        self.digits.append(digit)
        self.poke()

    def playback_finished(self, playback_id: str) -> None:
        """A prompt of this call ended (finished, stopped or gone)."""
        if playback_id in self.pending_playbacks:  # a late event for a stopped prompt is stale
            self.pending_playbacks.discard(playback_id)
            self.playbacks_done.add(playback_id)
            self.poke()

    def mark_hung_up(self) -> None:
        """The caller is gone: every wait on this call ends."""
        self.hung_up = True
        self.poke()


async def retry(
    make: Callable[[], Awaitable[T]], attempts: int = 3, delay: float = 0.05
) -> T:
    """Await ``make()``, trying again on transient ARI errors (5xx, timeout, connection)."""
    for attempt in range(1, attempts + 1):
        try:
            return await make()
        except TRANSIENT:
            if attempt == attempts:
                raise
            await asyncio.sleep(delay * attempt)
    raise AssertionError("unreachable")


async def quietly(make: Callable[[], Awaitable[object]], attempts: int = 3) -> bool:
    """Clean-up call: True if done, False if the target was already gone or Asterisk failed."""
    try:
        await retry(make, attempts)
    except GONE:
        return False
    except AriError as exc:
        log.warning("ari clean-up step failed: %s", exc)
        return False
    return True
