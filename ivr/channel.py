"""Drive a FlowRun over an asyncio channel: the protocol AGI and ARI sessions implement.

``run_flow`` performs each action the flow asks for on the channel and returns the
:class:`ivr.actions.Outcome`; queueing with the router is left to the caller of ``run_flow``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ivr import actions as a
from ivr.engine import CallContext, FlowRun
from ivr.flow import Flow


class CallerHungUp(Exception):
    """Raised by a channel when the caller hangs up during an action."""


class Channel(Protocol):
    """What a telephony session must offer the IVR (each call one channel object)."""

    async def play(self, prompt: str, language: str, sound: str) -> None:
        """Play the sound file of ``prompt`` in ``language`` to the caller."""

    async def collect(self, prompt: str, language: str, sound: str, max_digits: int,
                      timeout_s: float, terminator: str = "#") -> str | None:
        """Play the prompt and return up to ``max_digits`` DTMF digits, or None on timeout."""

    async def lookup_customer(self, number: str) -> list[a.CustomerCard]:
        """Customer cards for an E.164 number (empty when none or the directory failed)."""

    async def lookup_order(self, order_number: str) -> str | None:
        """Status name of a repair order, or None when unknown."""

    async def estimate_wait(self, queue: str, language: str) -> float:
        """Expected wait in seconds for a new call in ``queue`` (asks the router)."""

    async def voicemail(self, queue: str, language: str, max_seconds: float) -> str | None:
        """Record a message after the beep; return its reference, or None if nothing was said."""

    async def create_callback(self, task: a.CallbackTask) -> None:
        """Store a callback task."""

    async def transfer(self, number: str) -> None:
        """Transfer the call to an external E.164 number from the flow config."""

    async def hangup(self, reason: str) -> None:
        """Hang up the call."""


async def perform(channel: Channel, action: a.Action) -> object:
    """Perform one non-terminal action on a channel and return its result for the FlowRun."""
    match action:
        case a.Play(prompt, language, sound):
            await channel.play(prompt, language, sound)
            return None
        case a.Collect(prompt, language, sound, max_digits, timeout_s, terminator):
            return await channel.collect(prompt, language, sound, max_digits, timeout_s,
                                         terminator)
        case a.OfferCallback():
            return await channel.collect(action.prompt, action.language, action.sound, 1,
                                         action.timeout_s)
        case a.LookupCustomer(number):
            return await channel.lookup_customer(number)
        case a.LookupOrder(order_number):
            return await channel.lookup_order(order_number)
        case a.EstimateWait(queue, language):
            return await channel.estimate_wait(queue, language)
        case a.Voicemail(queue, language, max_seconds):
            return await channel.voicemail(queue, language, max_seconds)
        case a.CreateCallback(task):
            await channel.create_callback(task)
            return None
    raise TypeError(f"not a non-terminal IVR action: {action!r}")


async def run_flow(flow: Flow, ctx: CallContext, channel: Channel) -> a.Outcome:
    """Run ``flow`` for one call over ``channel``; a caller hangup gives outcome ``abandoned``."""
    run = FlowRun(flow, ctx)
    try:
        action = run.start()
        while not run.done:
            action = run.send(await perform(channel, action))
        if isinstance(action, a.Transfer):
            await channel.transfer(action.number)
        elif isinstance(action, a.Hangup):
            await channel.hangup(action.reason)
    except CallerHungUp:
        return run.abandon()
    assert run.outcome is not None
    return run.outcome


@dataclass
class FakeChannel:
    """A scripted channel for tests: digits to press, cards and statuses to return, a log."""

    digits: Sequence[str | None] = ()
    cards: Mapping[str, list[a.CustomerCard]] = field(default_factory=dict)
    orders: Mapping[str, str] = field(default_factory=dict)
    ewt: Mapping[str, float] = field(default_factory=dict)
    recording: str | None = "vm-0001"
    #: Raise CallerHungUp on this action number (1-based), to test abandons.
    hang_up_at: int | None = None
    played: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    callbacks: list[a.CallbackTask] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._digits = list(self.digits)

    def _step(self, entry: str) -> None:
        self.log.append(entry)
        if self.hang_up_at is not None and len(self.log) >= self.hang_up_at:
            raise CallerHungUp(entry)

    async def play(self, prompt: str, language: str, sound: str) -> None:
        """Record the prompt."""
        self._step(f"play {sound}")
        self.played.append(prompt)

    async def collect(self, prompt: str, language: str, sound: str, max_digits: int,
                      timeout_s: float, terminator: str = "#") -> str | None:
        """Record the prompt and return the next scripted digits (None when the script ends)."""
        self._step(f"collect {sound} max={max_digits}")
        self.played.append(prompt)
        return self._digits.pop(0) if self._digits else None

    async def lookup_customer(self, number: str) -> list[a.CustomerCard]:
        """Cards scripted for the number."""
        self._step(f"lookup_customer {number}")
        return list(self.cards.get(number, []))

    async def lookup_order(self, order_number: str) -> str | None:
        """Status scripted for the order."""
        self._step(f"lookup_order {order_number}")
        return self.orders.get(order_number)

    async def estimate_wait(self, queue: str, language: str) -> float:
        """Scripted wait for the queue (0 when not scripted)."""
        self._step(f"estimate_wait {queue} {language}")
        return self.ewt.get(queue, 0.0)

    async def voicemail(self, queue: str, language: str, max_seconds: float) -> str | None:
        """Return the scripted recording reference."""
        self._step(f"voicemail {queue} {language}")
        return self.recording

    async def create_callback(self, task: a.CallbackTask) -> None:
        """Keep the callback task."""
        self._step(f"create_callback {task.queue} {task.reason}")
        self.callbacks.append(task)

    async def transfer(self, number: str) -> None:
        """Record the transfer."""
        self._step(f"transfer {number}")

    async def hangup(self, reason: str) -> None:
        """Record the hangup."""
        self.log.append(f"hangup {reason}")


def digits_script(text: str | Iterable[str]) -> list[str | None]:
    """Parse ``"2,1,-"`` (``-`` or empty = timeout) into a FakeChannel / trace digit script."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [None if p.strip() in ("", "-") else p.strip() for p in parts] if parts != [""] else []
