"""What a flow asks its driver to do (actions), what it knows about the call, and how it ends.

Actions are small frozen dataclasses. A driver (asyncio channel, SimPy caller, trace) performs
each one and sends the result back into the :class:`ivr.engine.FlowRun` that asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class CustomerCard:
    """One customer card as the directory holds it; ``last_active`` decides between duplicates."""

    customer_id: str
    number: str
    name: str = ""
    tier: str = "standard"
    open_complaint: bool = False
    last_active: datetime | None = None


@dataclass(frozen=True, slots=True)
class CallbackTask:
    """A promise to call the customer back, from voicemail or an accepted callback offer."""

    queue: str
    language: str
    country: str
    number: str
    priority: int
    reason: Literal["voicemail", "offer"]
    recording: str | None = None
    customer_id: str | None = None


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt in a language; ``sound`` is the file name the channel hands to Asterisk.

    Result: ``None``.
    """

    prompt: str
    language: str
    sound: str


@dataclass(frozen=True, slots=True)
class Collect:
    """Play a prompt and collect at most ``max_digits`` DTMF digits (menus use max_digits=1).

    Result: the digits as a string, or ``None`` on timeout / no input.
    """

    prompt: str
    language: str
    sound: str
    max_digits: int
    timeout_s: float
    terminator: str = "#"


#: Menus and digit collection share one action; the alias keeps flow code readable.
Menu = Collect


@dataclass(frozen=True, slots=True)
class LookupCustomer:
    """Find customer cards for an E.164 number. Result: a list of :class:`CustomerCard`."""

    number: str


@dataclass(frozen=True, slots=True)
class LookupOrder:
    """Find the status of a repair order. Result: a status name (str) or ``None`` if unknown."""

    order_number: str


@dataclass(frozen=True, slots=True)
class EstimateWait:
    """Ask the router for the expected wait in a queue. Result: seconds (float)."""

    queue: str
    language: str


@dataclass(frozen=True, slots=True)
class OfferCallback:
    """Offer a callback instead of waiting: the caller presses ``accept_digit`` to accept.

    Drivers perform it as a one-digit collect. Result: the digit pressed or ``None``.
    """

    prompt: str
    language: str
    sound: str
    queue: str
    estimated_wait_s: float
    timeout_s: float
    accept_digit: str = "1"


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Record a message for a queue. Result: a recording reference (str) or ``None`` if empty."""

    queue: str
    language: str
    max_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class CreateCallback:
    """Store a callback task for the router / outbound dialler. Result: ``None``."""

    task: CallbackTask


@dataclass(frozen=True, slots=True)
class Transfer:
    """Terminal: blind-transfer the call to an external E.164 number taken from config."""

    number: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """Terminal: end the call (after self-service, voicemail, a callback promise, no input)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Queue:
    """Terminal: hand the call to the router for ``queue`` (= skill)."""

    queue: str
    language: str
    country: str
    priority: int
    variables: Mapping[str, str] = field(default_factory=dict)


_QUEUE_SLOTS = tuple(Queue.__dict__[n].__set__
                     for n in ("queue", "language", "country", "priority", "variables"))


def queue_action(queue: str, language: str, country: str, priority: int,
                 variables: Mapping[str, str]) -> Queue:
    """Build a :class:`Queue` by setting its slots directly.

    Same frozen object as ``Queue(...)``; the generated frozen ``__init__`` costs about twice
    as much, and one Queue is built per simulated call.
    """
    obj = object.__new__(Queue)
    s_queue, s_language, s_country, s_priority, s_variables = _QUEUE_SLOTS
    s_queue(obj, queue)
    s_language(obj, language)
    s_country(obj, country)
    s_priority(obj, priority)
    s_variables(obj, variables)
    return obj


Action = (
    Play | Collect | LookupCustomer | LookupOrder | EstimateWait | OfferCallback | Voicemail
    | CreateCallback | Transfer | Hangup | Queue
)
TERMINAL_ACTIONS = (Transfer, Hangup, Queue)

OutcomeStatus = Literal[
    "queued", "hop_limit", "transferred", "voicemail", "callback", "hangup", "abandoned"
]


@dataclass(slots=True)
class Outcome:
    """How the IVR part of a call ended, with everything the router and call records need.

    Read-only by convention; not frozen because one is built per simulated call and frozen
    dataclass construction costs several times more.
    """

    status: OutcomeStatus
    queue: str | None
    language: str
    country: str
    priority: int
    variables: Mapping[str, str]
    reason: str = ""
    transfer_number: str | None = None
    callback: CallbackTask | None = None
    path: tuple[str, ...] = ()


def choose_card(cards: list[CustomerCard]) -> tuple[CustomerCard | None, bool]:
    """Pick the card for a call and say whether the number had duplicate cards.

    Rule (documented in docs/ivr.md): the most recently active card wins; cards never active
    lose to any active one; a tie goes to the smallest customer id, so the choice is stable.
    """
    if not cards:
        return None, False
    if len(cards) == 1:
        return cards[0], False
    best = min(cards, key=lambda c: (
        -(c.last_active.timestamp() if c.last_active is not None else float("-inf")),
        c.customer_id,
    ))
    return best, True
