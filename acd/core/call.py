"""The lifecycle of one call after the router decides: a pure, table-driven state machine.

The router (:mod:`acd.core.router`) decides *who* takes which call. This module decides *what
happens to one call* on the telephony side: hold, ring an agent, answer or ring-no-answer, talk,
the callback question on hold, overflow and hand-back to the dialplan, and which router entry
point to report each outcome to. FastAGI, ARI and the simulator each run one
:class:`CallMachine` per call and only translate between their medium and it, in the h11
shape: no I/O, no clock; events in (:meth:`CallMachine.handle`), actions out.

States (:class:`Phase`)
    ``NEW`` created, not yet queued; ``QUEUED`` waiting in the router's queue with the caller
    at the engine (on hold or about to be); ``ASKING`` the callback question is being asked;
    ``RINGING`` the medium dials the offered agent; ``RING_CANCELLED`` the router withdrew
    that offer but the medium's dial has not ended yet (FastAGI cannot stop ``Dial()``);
    ``TALKING`` the agent answered; ``ENDED`` the call is over for the engine (terminal).

Events in
    Router commands, as the router emits them: :class:`~acd.core.model.Offer`,
    :class:`~acd.core.model.CancelOffer`, :class:`~acd.core.model.Overflow`,
    :class:`~acd.core.model.OfferCallback`. Driver facts: :class:`Queued` (about to give the
    call to the router), :class:`Refused` (the router refused it), :class:`Idle` (the medium is
    with the caller and has nothing to do; carries ``now`` for the hold deadline),
    :class:`Drain` (the service shuts down), :class:`Adopted` (a call found alive after a
    restart or reconnect), :class:`Lost` (after a restart, the medium will never report on the
    call again: its channel is gone, or nothing came and Asterisk cannot be asked).
    Telephony facts: :class:`HoldStarted`, :class:`Answered`, :class:`DialFailed`,
    :class:`CallerGone`, :class:`AgentGone`, :class:`CallbackAnswer`.

Actions out (small records, executed by the driver in order; read-only by convention)
    Medium: :class:`StartHold`, :class:`StopHold`, :class:`Dial` (agent, endpoint, whole-second
    ring timeout from :func:`ring_seconds`), :class:`ReleaseAgent` (stop ringing or hang up the
    agent's leg), :class:`Connect` (the answer is accepted: bridge caller and agent),
    :class:`RefuseAnswer` (a stale answer: drop that agent's leg), :class:`AskCallback` (prompt
    language already chosen), :class:`StoreCallback`, :class:`HandBack` (to the dialplan with a
    result, or ``None`` for its fallback, plus the queue and language to set), and
    :class:`Finished` (always the last action, exactly once: forget the call). Router calls:
    :class:`ReportAnswered` / :class:`ReportFailed` (always with the agent id, so the router's
    own guard refuses a report for an offer it has moved on from), :class:`ReportHangup`,
    :class:`ReportWithdrawn`, :class:`ReportCallback`. Stale reports come out as
    :class:`~acd.core.model.Ignored` with the reason, never as errors.

    Events and actions that carry data are plain slotted dataclasses with their ``__init__``
    written out, like the router's records in :mod:`acd.core.model`: this module is compiled
    with mypyc (``setup.py``), which compiles such an ``__init__`` but leaves a frozen
    dataclass's generated one interpreted (0.5-0.8 us per record, several per call). Actions
    without data, :class:`Finished` and the end-of-talk :class:`HandBack` are shared instances.
    Treat all of them as read-only.

Transitions are one table, :data:`TRANSITIONS`, keyed by (phase, event type). An event with no
entry raises :class:`LocalCallError` when the driver misused the machine (a router command or a
driver fact that cannot happen in this phase) or :class:`RemoteCallError` when the telephony
side reported something impossible (an answer for a call never queued); both name the phase,
the event and the events valid there.

How a driver uses it
    1. Create the machine with the call's data, its hold deadline and the driver's shared
       :class:`CallPolicy`; feed :class:`Queued`, then call the router's ``call_arrived`` (feed
       :class:`Refused` if it raises). Register an owner whose ``handle_command`` feeds the
       router's commands to :meth:`CallMachine.handle`.
    2. Execute every action in order. ``Report*`` actions call the router service at once
       (``offer_answered(call, agent_id=...)`` and so on); the router's reaction may feed new
       commands back in before the driver has executed the rest of the list: the machine is
       already in its next phase, so feed them as they come. Each transition reports to the
       router at most once, so the router never acts on a half-told story.
    3. Feed the medium's facts as they happen. A medium that holds its own music (ARI's holding
       bridge) feeds :class:`HoldStarted` and sets ``hold_while_ringing``; a medium that must be
       asked (FastAGI's hold session) feeds :class:`Idle` whenever it has nothing left to do,
       and again at :meth:`CallMachine.next_deadline`.
    4. Stop at :class:`Finished`; reports for a call the driver no longer knows go through
       :func:`without_call` so they are answered the same way.

Ports
    FastAGI (:mod:`acd.asterisk.agi.route`, the first port): router reports and callback
    storage are done at once; music, dial variables, the question and the hand-back queue up
    for the AGI session that has the caller, which feeds :class:`Idle` when it runs dry.
    ``answered`` replies ``ok`` on :class:`Connect`, ``refused`` on :class:`RefuseAnswer`.

    Restarts (:mod:`acd.service.state`, every port): a call the engine had ringing or talking
    is put back on its agent in the router (``adopt_call``) with a machine
    ``Adopted(RINGING|TALKING, agent)`` that waits on the restart board until a shell claims
    it (FastAGI: its next ``answered``/``dialresult``/``ended``; ARI: cold start) and carries
    on; a call nobody claims gets :class:`Lost` once Asterisk says its channel is gone, or at
    the board's bound when Asterisk cannot be asked.

    ARI (:mod:`acd.asterisk.ari.commands`): policy ``hold_while_ringing=True``; feed
    :class:`Queued`, then :class:`HoldStarted` once the holding bridge plays music; router
    reports and callback storage at once, the medium's work in order in one task per call.
    :class:`Dial` originates the agent leg with ``ring_timeout_s`` (an originate error is
    ``DialFailed(agent, "unavailable")``); the leg's StasisStart is :class:`Answered`;
    :class:`Connect` builds the mixing bridge and removes the holding bridge;
    :class:`RefuseAnswer` hangs up the answering channel; an unanswered leg's end is
    :class:`DialFailed` with the Q.850 reason, an answered one's :class:`AgentGone`;
    :class:`ReleaseAgent` hangs up the leg and feeds :class:`DialFailed` at once (its later
    destruction is then nobody's), which lets the next offer ring. :class:`HandBack` continues
    in the dialplan: ``voicemail``/``callback`` in the overflow context, ``None`` after
    ``Stasis()``, ``ended`` hangs up the caller, a ``callback_accepted`` hand-back plays the
    confirmation and hangs up. With ``hold_while_ringing`` a :class:`Dial` from a phase without
    music (after the callback question) comes after a :class:`StartHold`, so the agent always
    rings with the caller on hold. Cold start (:mod:`acd.asterisk.ari.adoption`): a requeued
    caller is ``Adopted(QUEUED, holding=True)`` before ``call_arrived(arrived_at=...)``; a
    talking one is claimed from the restart board (below) or ``Adopted(TALKING, agent)`` with
    the agent read from the channel variables and ``adopt_call`` in the router; a ring the
    board put back keeps its leg; reconcile feeds the facts it finds (caller gone, leg gone,
    leg answered). Settled
    as on FastAGI: an offer (or overflow) made during the callback question waits for the
    answer (at most the question's timeout), and a caller without a number is asked too
    (nothing is stored, an ``Ignored`` says why).

    Simulator (``sim/engine.py``): policy ``hold_while_ringing`` without ``dialable`` (the
    simulated caller stays at the engine while the agent rings); feed :class:`Queued` before
    ``call_arrived`` (no music to model: no :class:`HoldStarted`, no :class:`Idle`).
    :class:`Dial` schedules the agent's answer (:class:`Answered`) or nothing when the agent
    lets it ring: the router's own ring timer (never later than the dial's whole-second
    timeout) comes as ``CancelOffer`` -> :class:`ReleaseAgent`, on which the simulator drops
    its pending answer and feeds :class:`DialFailed` at once, so the call waits again exactly
    when it did before the port. Patience over is :class:`CallerGone` (while not talking),
    talk over is :class:`AgentGone` (the call's own wrap-up goes to ``hangup`` when executing
    :class:`ReportHangup`), an accepted or declined offer is :class:`CallbackAnswer`, given
    once the router's current outputs are dealt with. A simple lifecycle costs about 7 us of
    pure Python and about 2 us compiled (no allocation but the machine, its lists and the
    actions with data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NoReturn

# Re-exported: the errors are part of the machine's vocabulary.
from acd.core.errors import CallMachineError, LocalCallError, RemoteCallError  # noqa: F401
from acd.core.model import CancelOffer, Ignored, Offer, OfferCallback, Overflow

# --- rounding ----------------------------------------------------------------------------


def ring_seconds(ring_timeout_s: float) -> int:
    """The router's ring timeout as whole seconds for a dial (rounded up, at least 1)."""
    return max(1, math.ceil(ring_timeout_s))


# --- errors ------------------------------------------------------------------------------


# CallMachineError, LocalCallError and RemoteCallError live in acd.core.errors (imported
# above): a class compiled with mypyc cannot derive from a built-in exception.


# --- phases ------------------------------------------------------------------------------


class Phase(StrEnum):
    """Where a call is in its lifecycle on the telephony side."""

    NEW = "new"
    QUEUED = "queued"
    ASKING = "asking"
    RINGING = "ringing"
    RING_CANCELLED = "ring_cancelled"
    TALKING = "talking"
    ENDED = "ended"


# --- events from the driver and the telephony side ---------------------------------------


@dataclass(frozen=True, slots=True)
class Queued:
    """The driver is about to give the call to the router; the caller is at the engine."""


@dataclass(slots=True, init=False)
class Refused:
    """The router refused the call (``call_arrived`` raised): the dialplan takes it back."""

    reason: str

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(slots=True, init=False)
class Idle:
    """The medium is with the caller and has nothing to do (FastAGI's hold session)."""

    now: float

    def __init__(self, now: float) -> None:
        self.now = now


@dataclass(frozen=True, slots=True)
class Drain:
    """The service shuts down: hand the caller back as soon as the medium has them."""


@dataclass(slots=True, init=False)
class Adopted:
    """A call found alive after a restart or reconnect, in ``phase`` (queued, ringing,
    ring_cancelled or talking: the phase the engine persisted, not what the medium shows, since
    a dial the router withdrew still rings) with ``agent_id`` when an agent is on it and
    ``holding`` when music plays."""

    phase: Phase
    agent_id: str | None
    holding: bool

    def __init__(self, phase: Phase, agent_id: str | None = None, holding: bool = False) -> None:
        self.phase = phase
        self.agent_id = agent_id
        self.holding = holding


@dataclass(frozen=True, slots=True)
class Lost:
    """Nothing more will come from the medium about this call (``reason``, e.g.
    ``gone_after_restart`` or ``unknown_after_restart``): end it as if the caller left, so
    the router ends it with its outcome (answered after talk) and the agent wraps up."""

    reason: str


@dataclass(frozen=True, slots=True)
class HoldStarted:
    """The medium put the caller on hold by itself (ARI's holding bridge with music)."""


@dataclass(slots=True, init=False)
class Answered:
    """``agent_id`` answered the dial."""

    agent_id: str

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


@dataclass(slots=True, init=False)
class DialFailed:
    """The dial to ``agent_id`` ended unanswered (``reason``: no_answer, busy, unavailable);
    the caller is back at the engine."""

    agent_id: str
    reason: str

    def __init__(self, agent_id: str, reason: str) -> None:
        self.agent_id = agent_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CallerGone:
    """The caller hung up (or Asterisk's ``h`` extension reported the call's end)."""


@dataclass(frozen=True, slots=True)
class AgentGone:
    """The agent's side ended after an answer: talk is over, the caller is still there."""


@dataclass(slots=True, init=False)
class CallbackAnswer:
    """The caller's reply to the callback question (``accepted``: pressed the accept key)."""

    accepted: bool

    def __init__(self, accepted: bool) -> None:
        self.accepted = accepted


CallEvent = (Offer | CancelOffer | Overflow | OfferCallback | Queued | Refused | Idle | Drain
             | Adopted | Lost | HoldStarted | Answered | DialFailed | CallerGone | AgentGone
             | CallbackAnswer)
#: Events only the telephony side originates (an impossible one is a remote error).
_REMOTE_EVENTS: Final = frozenset({HoldStarted, Answered, DialFailed, CallerGone, AgentGone})


# --- actions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartHold:
    """Play music on hold to the caller."""


@dataclass(frozen=True, slots=True)
class StopHold:
    """Stop the music on hold."""


@dataclass(slots=True, init=False)
class Dial:
    """Ring ``agent_id`` at ``endpoint`` for at most ``ring_timeout_s`` whole seconds."""

    agent_id: str
    endpoint: str
    ring_timeout_s: int

    def __init__(self, agent_id: str, endpoint: str, ring_timeout_s: int) -> None:
        self.agent_id = agent_id
        self.endpoint = endpoint
        self.ring_timeout_s = ring_timeout_s


@dataclass(slots=True, init=False)
class ReleaseAgent:
    """Stop ringing ``agent_id`` or hang up their leg, if the medium can."""

    agent_id: str

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


@dataclass(slots=True, init=False)
class Connect:
    """``agent_id``'s answer is accepted: connect caller and agent."""

    agent_id: str

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


@dataclass(slots=True, init=False)
class RefuseAnswer:
    """``agent_id``'s answer is stale: drop their leg, the caller is not theirs."""

    agent_id: str

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


@dataclass(slots=True, init=False)
class AskCallback:
    """Ask the callback question (one key) in ``language``."""

    language: str

    def __init__(self, language: str) -> None:
        self.language = language


@dataclass(slots=True, init=False)
class StoreCallback:
    """Store the callback promise for this caller."""

    queue: str
    language: str
    country: str
    number: str
    priority: int
    customer_id: str | None

    def __init__(self, queue: str, language: str, country: str, number: str, priority: int,
                 customer_id: str | None) -> None:
        self.queue = queue
        self.language = language
        self.country = country
        self.number = number
        self.priority = priority
        self.customer_id = customer_id


@dataclass(slots=True, init=False)
class HandBack:
    """The dialplan takes the caller: ``result`` for it (``None``: its fallback), ``reason``
    why, and the ``queue``/``language`` variables to set (``None``: leave unset)."""

    result: str | None
    reason: str
    queue: str | None
    language: str | None

    def __init__(self, result: str | None, reason: str, queue: str | None = None,
                 language: str | None = None) -> None:
        self.result = result
        self.reason = reason
        self.queue = queue
        self.language = language


@dataclass(slots=True, init=False)
class Finished:
    """The call is over for the engine (``how``); the last action, exactly once."""

    how: str

    def __init__(self, how: str) -> None:
        self.how = how


@dataclass(slots=True, init=False)
class ReportAnswered:
    """Call ``offer_answered(call_id, agent_id=agent_id)``."""

    agent_id: str

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id


@dataclass(slots=True, init=False)
class ReportFailed:
    """Call ``offer_failed(call_id, reason, agent_id=agent_id)``."""

    agent_id: str
    reason: str

    def __init__(self, agent_id: str, reason: str) -> None:
        self.agent_id = agent_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReportHangup:
    """Call ``hangup(call_id)``."""


@dataclass(slots=True, init=False)
class ReportWithdrawn:
    """Call ``withdraw(call_id, reason)``."""

    reason: str

    def __init__(self, reason: str) -> None:
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ReportCallback:
    """Call ``callback_accepted(call_id)``."""


Action = (StartHold | StopHold | Dial | ReleaseAgent | Connect | RefuseAnswer | AskCallback
          | StoreCallback | HandBack | Finished | ReportAnswered | ReportFailed | ReportHangup
          | ReportWithdrawn | ReportCallback | Ignored)
#: Router entry points, by report type (for drivers and tests).
REPORTS: Final = (ReportAnswered, ReportFailed, ReportHangup, ReportWithdrawn, ReportCallback)

_START_HOLD: Final = StartHold()
_STOP_HOLD: Final = StopHold()
_HANGUP: Final = ReportHangup()
_CALLBACK: Final = ReportCallback()
_TALK_ENDED: Final = HandBack("ended", "talk_ended")
#: One shared Finished per way a call ends (built once, not once per call).
_FINISHED: Final = {how: Finished(how) for how in (
    "answered", "abandoned", "overflowed", "callback", "handed_back", "refused")}
_ANSWERED: Final = _FINISHED["answered"]


# --- policy ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallPolicy:
    """What a driver's medium can do and the few settings the lifecycle needs (shared)."""

    #: The caller stays on hold while the agent rings (ARI); FastAGI's Dial() replaces hold.
    hold_while_ringing: bool = False
    #: Languages the callback prompt exists in (None: ask in the call's own language).
    callback_languages: frozenset[str] | None = None
    #: The language to ask in when the call's language has no callback prompt.
    default_language: str = "en"
    #: Whether the medium can dial ``(agent_id, endpoint)`` (None: every offer).
    dialable: Callable[[str, str], bool] | None = None


# --- the machine -------------------------------------------------------------------------


class CallMachine:
    """One call's lifecycle on the telephony side (see the module docstring)."""

    __slots__ = (
        "call_id",
        "callback_due",
        "country",
        "customer_id",
        "draining",
        "hold_until",
        "holding",
        "language",
        "next_offer",
        "number",
        "offer",
        "overflow",
        "phase",
        "policy",
        "priority",
        "queue",
        "router_done",
    )

    def __init__(self, call_id: str, queue: str, language: str, country: str, priority: int,
                 number: str | None, customer_id: str | None, hold_until: float,
                 policy: CallPolicy) -> None:
        self.call_id = call_id
        self.queue = queue
        self.language = language
        self.country = country
        self.priority = priority
        self.number = number
        self.customer_id = customer_id
        self.hold_until = hold_until
        self.policy = policy
        self.phase = Phase.NEW
        #: Music on hold plays (as far as the actions out say).
        self.holding = False
        #: The offer the medium dials (RINGING, RING_CANCELLED, TALKING).
        self.offer: Offer | None = None
        #: Work waiting until the medium has the caller again (ASKING, RING_CANCELLED).
        self.next_offer: Offer | None = None
        self.overflow: Overflow | None = None
        self.callback_due = False
        self.draining = False
        #: The router no longer has the call (it overflowed it): report nothing more.
        self.router_done = False

    def __repr__(self) -> str:
        return f"CallMachine({self.call_id!r}, {self.phase.value})"

    @property
    def agent_id(self) -> str | None:
        """The agent the medium dials or talks to, if any."""
        return self.offer.agent_id if self.offer is not None else None

    def next_deadline(self) -> float | None:
        """When to feed :class:`Idle` again while the caller holds (None: not holding)."""
        return self.hold_until if self.phase is Phase.QUEUED else None

    def handle(self, event: CallEvent) -> list[Action]:
        """Apply one event; the actions to execute, in order."""
        # The four moves of every answered call go straight to their handlers (the ones
        # TRANSITIONS lists for them; tests/test_call_dispatch.py holds the two together):
        # compiled, that is a native call, where the table costs two dict reads and a call
        # through a Python function object, about 450 machine instructions an event.
        phase, kind = self.phase, type(event)
        if phase is Phase.QUEUED and kind is Offer:
            return _queued_offer(self, event)
        if phase is Phase.RINGING and kind is Answered:
            return _ringing_answered(self, event)
        if phase is Phase.TALKING and kind is AgentGone:
            return _talk_ended(self, event)
        if phase is Phase.NEW and kind is Queued:
            return _new_queued(self, event)
        handler = _BY_PHASE[phase].get(kind)
        if handler is None:
            self._illegal(event)
        return handler(self, event)

    def _illegal(self, event: object) -> NoReturn:
        valid = ", ".join(sorted(t.__name__ for t in _BY_PHASE[self.phase]))
        kind = RemoteCallError if type(event) in _REMOTE_EVENTS else LocalCallError
        raise kind(f"Call {self.call_id!r}: {type(event).__name__} cannot happen in phase "
                   f"{self.phase.value}; valid there: {valid or 'nothing'}.")

    # --- building blocks

    def _ignored(self, what: str, reason: str) -> Ignored:
        return Ignored(self.call_id, what, reason)

    def _end(self, out: list[Action], how: str) -> list[Action]:
        finished = _FINISHED.get(how)  # shared for the usual endings; rare ones built here
        out.append(finished if finished is not None else Finished(how))
        self._ended()
        return out

    def _ended(self) -> None:
        """The machine's side of ending: ENDED, nothing offered, held or waiting."""
        self.phase = Phase.ENDED
        self.offer = self.next_offer = self.overflow = None
        self.holding = False

    def _report_hangup(self, out: list[Action]) -> None:
        if not self.router_done:
            out.append(_HANGUP)

    def _dial(self, offer: Offer, out: list[Action]) -> list[Action]:
        """Hand ``offer`` to the medium (or report it undialable) from QUEUED."""
        dialable = self.policy.dialable
        if dialable is not None and not dialable(offer.agent_id, offer.endpoint):
            self.phase = Phase.QUEUED
            out.append(self._ignored("offer", f"agent {offer.agent_id!r} has endpoint "
                                              f"{offer.endpoint!r}, not a dial string"))
            out.append(ReportFailed(offer.agent_id, "unavailable"))
            return out
        self.offer = offer
        self.phase = Phase.RINGING
        if self.policy.hold_while_ringing and not self.holding:
            # The callback question stopped the music: the agent rings with the caller on hold.
            self.holding = True
            out.append(_START_HOLD)
        out.append(Dial(offer.agent_id, offer.endpoint, ring_seconds(offer.ring_timeout_s)))
        if self.holding and not self.policy.hold_while_ringing:
            self.holding = False
            out.append(_STOP_HOLD)
        return out

    def _overflow(self, overflow: Overflow, out: list[Action]) -> list[Action]:
        """Carry out the router's overflow (the router has already ended the call)."""
        if self.holding:
            out.append(_STOP_HOLD)
        callback = overflow.target == "callback"
        if callback:
            self._store_callback(out)
        out.append(HandBack("callback" if callback else "voicemail", overflow.reason,
                            self.queue, self.language))
        return self._end(out, "overflowed")

    def _store_callback(self, out: list[Action]) -> None:
        if self.number is None:
            out.append(self._ignored("callback", "no caller number to call back"))
        else:
            out.append(StoreCallback(self.queue, self.language, self.country, self.number,
                                     self.priority, self.customer_id))

    def _hand_back(self, reason: str, out: list[Action]) -> list[Action]:
        """Give a waiting caller back to the dialplan's fallback; the router ends it."""
        if not self.router_done:
            out.append(ReportWithdrawn(reason))
        out.append(HandBack(None, reason))
        return self._end(out, "handed_back")

    def _resume(self, out: list[Action]) -> list[Action]:
        """The medium has the caller again (QUEUED): do what waited for it, in priority."""
        self.phase = Phase.QUEUED
        self.offer = None
        overflow, offer = self.overflow, self.next_offer
        self.next_offer = None
        if self.draining:
            return self._hand_back("shutdown", out)
        if overflow is not None:
            return self._overflow(overflow, out)
        if offer is not None:
            self.callback_due = False
            return self._dial(offer, out)
        if self.callback_due:
            self.callback_due = False
            return self._ask(out)
        return out

    def _ask(self, out: list[Action]) -> list[Action]:
        self.phase = Phase.ASKING
        if self.holding:
            self.holding = False
            out.append(_STOP_HOLD)
        known = self.policy.callback_languages
        language = self.language if known is None or self.language in known \
            else self.policy.default_language
        out.append(AskCallback(language))
        return out


# --- handlers: one per (phase, event type) ------------------------------------------------
# Each takes the machine and the event, sets the next phase and returns the actions.

Handler = Callable[[CallMachine, object], list[Action]]


def _new_queued(m: CallMachine, e: object) -> list[Action]:
    m.phase = Phase.QUEUED
    return []


_ADOPTABLE: Final = (Phase.QUEUED, Phase.RINGING, Phase.RING_CANCELLED, Phase.TALKING)


def _new_adopted(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Adopted)
    if e.phase not in _ADOPTABLE or (e.phase is not Phase.QUEUED and not e.agent_id):
        raise LocalCallError(f"Call {m.call_id!r}: cannot adopt a call in phase "
                             f"{e.phase.value} (agent {e.agent_id!r}); valid: queued, or "
                             f"ringing, ring_cancelled or talking with an agent id.")
    m.phase = e.phase
    m.holding = e.holding
    if e.agent_id:
        m.offer = Offer(m.call_id, e.agent_id, "", 0.0)
    return []


def _gone_before_queue(m: CallMachine, e: object) -> list[Action]:
    return m._end([], "abandoned")


def _refused(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Refused)
    m.router_done = True
    out: list[Action] = [HandBack(None, e.reason)]
    return m._end(out, "refused")


def _queued_idle(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Idle)
    if m.draining:
        return m._hand_back("shutdown", [])
    if not m.holding:
        m.holding = True
        return [_START_HOLD]
    if e.now >= m.hold_until:
        return m._hand_back("hold_deadline", [])
    return []


def _hold_started(m: CallMachine, e: object) -> list[Action]:
    m.holding = True
    return []


def _queued_offer(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Offer)
    return m._dial(e, [])


def _stale_cancel(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, CancelOffer)
    return [m._ignored("cancel_offer", f"agent {e.agent_id} is not being dialled "
                                       f"({m.phase.value})")]


def _queued_overflow(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Overflow)
    m.router_done = True
    return m._overflow(e, [])


def _queued_offer_callback(m: CallMachine, e: object) -> list[Action]:
    return m._ask([])


def _caller_gone(m: CallMachine, e: object) -> list[Action]:
    out: list[Action] = []
    if m.offer is not None and m.phase is not Phase.RING_CANCELLED:
        out.append(ReleaseAgent(m.offer.agent_id))
    m._report_hangup(out)
    how = "answered" if m.phase is Phase.TALKING else "abandoned"
    return m._end(out, how)


def _lost(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Lost)
    out: list[Action] = []
    if m.offer is not None and m.phase is not Phase.RING_CANCELLED:
        out.append(ReleaseAgent(m.offer.agent_id))
    m._report_hangup(out)
    return m._end(out, e.reason)


def _stale_answer(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Answered)
    return [RefuseAnswer(e.agent_id),
            m._ignored("answer", f"agent {e.agent_id} answered a call in phase "
                                 f"{m.phase.value} (offer withdrawn or ended)")]


def _stale_report(m: CallMachine, e: object) -> list[Action]:
    return [m._ignored(type(e).__name__, f"call is {m.phase.value}")]


def _drain_now(m: CallMachine, e: object) -> list[Action]:
    return m._hand_back("shutdown", [])


def _drain_later(m: CallMachine, e: object) -> list[Action]:
    m.draining = True
    return []


def _asking_answer(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, CallbackAnswer)
    out: list[Action] = []
    if e.accepted and (m.overflow is not None or m.next_offer is not None):
        out.append(m._ignored("callback_accepted", "the router moved on during the question"))
    elif e.accepted:
        out.append(_CALLBACK)
        m._store_callback(out)
        out.append(HandBack("callback", "callback_accepted", m.queue, m.language))
        m.router_done = True
        return m._end(out, "callback")
    m._resume(out)
    if m.phase is Phase.QUEUED and not m.holding:
        m.holding = True
        out.append(_START_HOLD)
    return out


def _defer_offer(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Offer)
    m.next_offer = e
    return []


def _deferred_cancel(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, CancelOffer)
    if m.next_offer is not None and m.next_offer.agent_id == e.agent_id:
        m.next_offer = None  # never dialled: nothing to stop
        return []
    return _stale_cancel(m, e)


def _defer_overflow(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Overflow)
    m.overflow = e
    m.router_done = True
    m.next_offer = None
    return []


def _already_asking(m: CallMachine, e: object) -> list[Action]:
    return [m._ignored("offer_callback", "the caller is being asked already")]


def _defer_callback(m: CallMachine, e: object) -> list[Action]:
    m.callback_due = True
    return []


def _ringing_answered(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Answered) and m.offer is not None
    agent = m.offer.agent_id
    if e.agent_id != agent:
        return [RefuseAnswer(e.agent_id),
                m._ignored("answer", f"the call rings agent {agent}, not {e.agent_id}")]
    m.phase = Phase.TALKING
    # Built whole, not appended to: this runs for every answered call.
    if m.holding:
        m.holding = False
        return [ReportAnswered(agent), _STOP_HOLD, Connect(agent)]
    return [ReportAnswered(agent), Connect(agent)]


def _ringing_failed(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, DialFailed) and m.offer is not None
    if e.agent_id != m.offer.agent_id:
        return [m._ignored("dial_failed", f"the call rings agent {m.offer.agent_id}, "
                                          f"not {e.agent_id}")]
    if m.draining:
        # One report only: a withdraw ends the ringing call in the router at once, where a
        # failure first would requeue it and let the router offer it again meanwhile.
        return m._hand_back("shutdown", [])
    out: list[Action] = [ReportFailed(e.agent_id, e.reason)]
    return m._resume(out)


def _ringing_agent_gone(m: CallMachine, e: object) -> list[Action]:
    # Dial ended after an answer this machine never accepted: the offer did not connect.
    assert m.offer is not None
    return _ringing_failed(m, DialFailed(m.offer.agent_id, "unavailable"))


def _ringing_cancel(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, CancelOffer) and m.offer is not None
    if e.agent_id != m.offer.agent_id:
        return _stale_cancel(m, e)
    m.phase = Phase.RING_CANCELLED
    return [ReleaseAgent(e.agent_id)]


def _cancelled_answer(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Answered)
    return [RefuseAnswer(e.agent_id),
            m._ignored("answer", f"the offer to agent {e.agent_id} was withdrawn")]


def _cancelled_dial_over(m: CallMachine, e: object) -> list[Action]:
    agent = m.offer.agent_id if m.offer is not None else "?"
    if isinstance(e, DialFailed) and e.agent_id != agent:
        return [m._ignored("dial_failed", f"the medium dials agent {agent}, not {e.agent_id}")]
    out: list[Action] = [m._ignored("dial_failed", f"the offer to agent {agent} was "
                                                   f"withdrawn; the router has requeued it")]
    return m._resume(out)


def _talk_ended(m: CallMachine, e: object) -> list[Action]:
    # What _report_hangup and _end(out, "answered") give, built whole: this runs for every
    # answered call.
    out: list[Action] = [_TALK_ENDED, _ANSWERED] if m.router_done \
        else [_HANGUP, _TALK_ENDED, _ANSWERED]
    m._ended()
    return out


def _talking_cancel(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, CancelOffer) and m.offer is not None
    if e.agent_id != m.offer.agent_id or m.router_done:
        return _stale_cancel(m, e)
    # The router's ring timer ran before it heard the answer: the caller already talks to
    # this agent, so take the call out of the queue rather than let it be offered again.
    m.router_done = True
    return [m._ignored("cancel_offer", f"agent {e.agent_id} answered as the ring timed out"),
            ReportWithdrawn("answered_late")]


def _ended_offer(m: CallMachine, e: object) -> list[Action]:
    # Only when a router timer ran just before a final report reached it: give the call back
    # so the agent is freed; the pending report is then ignored by the router.
    assert isinstance(e, Offer)
    return [m._ignored("offer", f"offer to agent {e.agent_id} for a finished call"),
            ReportWithdrawn("call_finished")]


def _talking_answered(m: CallMachine, e: object) -> list[Action]:
    assert isinstance(e, Answered)
    return [RefuseAnswer(e.agent_id),
            m._ignored("answer", "the call is talking already")]


_ASKING_LIKE = {
    Offer: _defer_offer, CancelOffer: _deferred_cancel, Overflow: _defer_overflow,
    Drain: _drain_later, CallerGone: _caller_gone, Lost: _lost,
}

#: The transition table: (phase, event type) -> handler. Missing pairs are errors.
TRANSITIONS: Final[dict[tuple[Phase, type], Handler]] = {
    (Phase.NEW, Queued): _new_queued,
    (Phase.NEW, Adopted): _new_adopted,
    (Phase.NEW, CallerGone): _gone_before_queue,

    (Phase.QUEUED, Refused): _refused,
    (Phase.QUEUED, Idle): _queued_idle,
    (Phase.QUEUED, HoldStarted): _hold_started,
    (Phase.QUEUED, Offer): _queued_offer,
    (Phase.QUEUED, CancelOffer): _stale_cancel,
    (Phase.QUEUED, Overflow): _queued_overflow,
    (Phase.QUEUED, OfferCallback): _queued_offer_callback,
    (Phase.QUEUED, Drain): _drain_now,
    (Phase.QUEUED, CallerGone): _caller_gone,
    (Phase.QUEUED, Lost): _lost,
    (Phase.QUEUED, Answered): _stale_answer,
    (Phase.QUEUED, DialFailed): _stale_report,
    (Phase.QUEUED, AgentGone): _stale_report,

    **{(Phase.ASKING, t): h for t, h in _ASKING_LIKE.items()},
    (Phase.ASKING, CallbackAnswer): _asking_answer,
    (Phase.ASKING, OfferCallback): _already_asking,
    (Phase.ASKING, Answered): _stale_answer,
    (Phase.ASKING, DialFailed): _stale_report,
    (Phase.ASKING, AgentGone): _stale_report,

    (Phase.RINGING, Answered): _ringing_answered,
    (Phase.RINGING, DialFailed): _ringing_failed,
    (Phase.RINGING, AgentGone): _ringing_agent_gone,
    (Phase.RINGING, CancelOffer): _ringing_cancel,
    (Phase.RINGING, OfferCallback): _stale_report,
    (Phase.RINGING, HoldStarted): _hold_started,
    (Phase.RINGING, Drain): _drain_later,
    (Phase.RINGING, CallerGone): _caller_gone,
    (Phase.RINGING, Lost): _lost,

    **{(Phase.RING_CANCELLED, t): h for t, h in _ASKING_LIKE.items()},
    (Phase.RING_CANCELLED, OfferCallback): _defer_callback,
    (Phase.RING_CANCELLED, Answered): _cancelled_answer,
    (Phase.RING_CANCELLED, DialFailed): _cancelled_dial_over,
    (Phase.RING_CANCELLED, AgentGone): _cancelled_dial_over,
    (Phase.RING_CANCELLED, HoldStarted): _hold_started,

    (Phase.TALKING, AgentGone): _talk_ended,
    (Phase.TALKING, DialFailed): _talk_ended,
    (Phase.TALKING, CallerGone): _caller_gone,
    (Phase.TALKING, Lost): _lost,
    (Phase.TALKING, Answered): _talking_answered,
    (Phase.TALKING, CancelOffer): _talking_cancel,
    (Phase.TALKING, Drain): _stale_report,

    (Phase.ENDED, CallerGone): _stale_report,
    (Phase.ENDED, Lost): _stale_report,
    (Phase.ENDED, AgentGone): _stale_report,
    (Phase.ENDED, DialFailed): _stale_report,
    (Phase.ENDED, CallbackAnswer): _stale_report,
    (Phase.ENDED, CancelOffer): _stale_cancel,
    (Phase.ENDED, Drain): _stale_report,
    (Phase.ENDED, Answered): _stale_answer,
    (Phase.ENDED, Offer): _ended_offer,
    (Phase.ENDED, Overflow): _stale_report,
    (Phase.ENDED, OfferCallback): _stale_report,
}

#: The same table by phase, so :meth:`CallMachine.handle` builds no key per event.
_BY_PHASE: Final[dict[Phase, dict[type, Handler]]] = {p: {} for p in Phase}
for (_phase, _event), _handler in TRANSITIONS.items():
    _BY_PHASE[_phase][_event] = _handler


def without_call(call_id: str, event: CallEvent) -> list[Action]:
    """The actions for a telephony report about a call no machine holds (ended, or never
    ours): answers are refused, hang-ups still reach the router (which ignores the unknown),
    the end of talk still tells the dialplan; everything else is ignored."""
    if isinstance(event, Answered):
        return [RefuseAnswer(event.agent_id),
                Ignored(call_id, "answer", "the call is not in the engine")]
    if isinstance(event, CallerGone):
        return [_HANGUP]
    if isinstance(event, AgentGone):
        return [_HANGUP, _TALK_ENDED]
    return [Ignored(call_id, type(event).__name__, "the call is not in the engine")]
