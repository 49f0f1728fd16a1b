"""The call machine's direct dispatch of the answered call's moves agrees with its table.

Twin machines, driven through the same random event sequences, get each event once through
:meth:`CallMachine.handle` and once through the handler :data:`TRANSITIONS` lists for it: the
actions and the resulting state must be the same, for the four moves handle() dispatches
directly and for every other pair.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from acd.core import call as call_module
from acd.core.call import (
    TRANSITIONS,
    Action,
    Adopted,
    AgentGone,
    Answered,
    CallbackAnswer,
    CallerGone,
    CallEvent,
    CallMachine,
    CallMachineError,
    CallPolicy,
    Connect,
    Dial,
    DialFailed,
    Drain,
    Finished,
    HoldStarted,
    Idle,
    Lost,
    Phase,
    Queued,
    Refused,
    ReportAnswered,
    ReportFailed,
    ReportHangup,
)
from acd.core.model import CancelOffer, Offer, OfferCallback, Overflow

#: The (phase, event type) pairs CallMachine.handle dispatches without the table.
DIRECT = {
    (Phase.QUEUED, Offer): "_queued_offer",
    (Phase.RINGING, Answered): "_ringing_answered",
    (Phase.TALKING, AgentGone): "_talk_ended",
    (Phase.NEW, Queued): "_new_queued",
}


@pytest.mark.parametrize(("pair", "name"), list(DIRECT.items()))
def test_direct_moves_are_the_tables_own(pair: tuple[Phase, type], name: str) -> None:
    """Each move handle() takes without the table is the handler the table lists for it."""
    assert TRANSITIONS[pair] is getattr(call_module, name)


def test_an_answered_call_runs_through_the_direct_moves() -> None:
    """Queued, offered, answered and ended, a call gives the table's actions in order."""
    m = CallMachine("c1", "sales", "en", "GB", 0, "+441", None, 60.0,
                    CallPolicy(hold_while_ringing=True))
    assert m.handle(Queued()) == []
    assert m.phase is Phase.QUEUED
    dial = m.handle(Offer("c1", "a1", "SIP/a1", 14.5))
    assert dial[-1] == Dial("a1", "SIP/a1", 15) and m.phase is Phase.RINGING
    answered = m.handle(Answered("a1"))
    assert answered[0] == ReportAnswered("a1") and answered[-1] == Connect("a1")
    assert m.phase is Phase.TALKING
    ended = m.handle(AgentGone())
    assert isinstance(ended[0], ReportHangup) and ended[-1] == Finished("answered")
    assert m.phase is Phase.ENDED


def test_a_move_outside_the_direct_ones_still_uses_the_table() -> None:
    """A failed dial while ringing goes through the table: reported, and the call waits."""
    m = CallMachine("c1", "sales", "en", "GB", 0, None, None, 60.0, CallPolicy())
    m.handle(Queued())
    m.handle(Offer("c1", "a1", "SIP/a1", 10.0))
    assert (Phase.RINGING, DialFailed) not in DIRECT
    assert m.handle(DialFailed("a1", "busy")) == [ReportFailed("a1", "busy")]
    assert m.phase is Phase.QUEUED


# --- handle() against the table, on twin machines driven through real event sequences

#: Every event type the machine knows, with a strategy for its fields (agent ids from a small
#: set, so reports often name the agent being dialled and sometimes another).
AGENT_IDS = ("a1", "a2")
ENDPOINTS = ("SIP/a1", "SIP/a2", "Local/a1 bad")


def _event_of(kind: type, data: st.DataObject, m: CallMachine) -> CallEvent:
    """An event of ``kind`` for machine ``m``, its fields drawn by Hypothesis; agent ids lean
    toward the agent ``m`` dials or has an offer waiting for."""
    own = [o.agent_id for o in (m.offer, m.next_offer) if o is not None]
    agent = data.draw(st.sampled_from([*own, *own, *AGENT_IDS]))
    if kind is Offer:
        return Offer(m.call_id, agent, data.draw(st.sampled_from(ENDPOINTS)),
                     data.draw(st.sampled_from([0.5, 10.0, 14.5, 30.0])))
    if kind is CancelOffer:
        return CancelOffer(m.call_id, agent, "ring_timeout")
    if kind is Overflow:
        return Overflow(m.call_id, data.draw(st.sampled_from(["voicemail", "callback"])),
                        "max_wait")
    if kind is OfferCallback:
        return OfferCallback(m.call_id, 42.0)
    if kind is Refused:
        return Refused("admission")
    if kind is Idle:
        return Idle(data.draw(st.sampled_from([0.0, 59.0, 60.0, 200.0])))
    if kind is Adopted:
        return Adopted(data.draw(st.sampled_from(list(Phase))),
                       data.draw(st.sampled_from([None, "", agent])), data.draw(st.booleans()))
    if kind is Lost:
        return Lost("gone_after_restart")
    if kind is Answered:
        return Answered(agent)
    if kind is DialFailed:
        return DialFailed(agent, data.draw(st.sampled_from(["no_answer", "busy"])))
    if kind is CallbackAnswer:
        return CallbackAnswer(data.draw(st.booleans()))
    event: CallEvent = kind()
    return event


EVENT_TYPES: tuple[type, ...] = (
    Offer, CancelOffer, Overflow, OfferCallback, Queued, Refused, Idle, Drain, Adopted, Lost,
    HoldStarted, Answered, DialFailed, CallerGone, AgentGone, CallbackAnswer)
#: Events that end a call or leave it unable to wait again (a drain hands the caller back at
#: the next chance, an overflow or callback takes it out): left out of the walks that must
#: still reach a phase.
FINAL_KINDS = (Refused, Overflow, Drain, Lost, CallerGone)
SLOTS: tuple[str, ...] = (
    "call_id", "callback_due", "country", "customer_id", "draining", "hold_until", "holding",
    "language", "next_offer", "number", "offer", "overflow", "phase", "policy", "priority",
    "queue", "router_done")


def _dialable(agent_id: str, endpoint: str) -> bool:
    """A medium that can dial SIP endpoints only."""
    return endpoint.startswith("SIP/")


POLICIES = st.builds(
    CallPolicy, hold_while_ringing=st.booleans(),
    callback_languages=st.sampled_from([None, frozenset({"en"}), frozenset({"de"})]),
    default_language=st.just("en"), dialable=st.sampled_from([None, _dialable]))


def _twins(policy: CallPolicy, number: str | None) -> tuple[CallMachine, CallMachine]:
    """Two machines for the same call, built alike."""
    return tuple(CallMachine("c1", "sales", "en", "GB", 1, number, "cust-7", 60.0, policy)
                 for _ in range(2))  # type: ignore[return-value]


def _state(m: CallMachine) -> dict[str, object]:
    """Every field of the machine (phase, offers, flags, the call's data)."""
    assert set(SLOTS) == set(getattr(CallMachine, "__slots__", SLOTS)), "a field was added"
    return {name: getattr(m, name) for name in SLOTS}


def _outcome(run: Callable[[], list[Action]]) -> tuple[str, object]:
    """The actions ``run`` returns, or the machine error it raises (type and message)."""
    try:
        return ("actions", run())
    except CallMachineError as error:
        return (type(error).__name__, str(error))


def _step(by_handle: CallMachine, by_table: CallMachine, event: CallEvent) -> object:
    """Send ``event`` to one twin through handle() and to the other through the handler the
    table lists for the pair; both must return the same actions (or raise the same error) and
    end in the same state. A pair the table does not list must be refused by handle()."""
    assert _state(by_handle) == _state(by_table)
    before = _state(by_handle)
    pair = (by_handle.phase, type(event))
    got = _outcome(lambda: by_handle.handle(event))
    if pair not in TRANSITIONS:
        assert got[0] in ("LocalCallError", "RemoteCallError"), (pair, got)
        assert _state(by_handle) == before, f"{pair} refused but the machine changed"
        return got
    handler = TRANSITIONS[pair]
    want = _outcome(lambda: handler(by_table, event))
    assert got == want, (pair, event)
    assert _state(by_handle) == _state(by_table), (pair, event)
    return got


def _walk(a: CallMachine, b: CallMachine, data: st.DataObject, steps: int) -> None:
    """Drive both twins (checked at each step) through up to ``steps`` legal events that keep
    the call alive and able to wait again (no end, drain or overflow; no yes to the callback
    question, no hold past its deadline, no end of talk)."""
    for _ in range(steps):
        valid = sorted({t for p, t in TRANSITIONS if p is a.phase and t not in FINAL_KINDS
                        and not (p is Phase.TALKING and t in (AgentGone, DialFailed))},
                       key=lambda t: t.__name__)
        if not valid:
            return
        event = _event_of(data.draw(st.sampled_from(valid)), data, a)
        if isinstance(event, CallbackAnswer):
            event = CallbackAnswer(False)
        elif isinstance(event, Idle):
            event = Idle(0.0)
        _step(a, b, event)


def _steer(a: CallMachine, b: CallMachine, target: Phase) -> bool:
    """Move both twins (checked at each step) to ``target`` by the usual moves; False when
    the call can no longer get there (an ended or talking call does not wait again)."""
    for _ in range(8):
        phase = a.phase
        if phase is target:
            return True
        offered = a.offer.agent_id if a.offer is not None else "a1"
        event: CallEvent
        if target is Phase.ENDED:
            event = CallerGone()
        elif phase is Phase.NEW:
            event = Queued()
        elif phase is Phase.QUEUED and target is Phase.ASKING:
            event = OfferCallback(a.call_id, 42.0)
        elif phase is Phase.QUEUED:
            event = Offer(a.call_id, "a1", "SIP/a1", 10.0)
        elif phase is Phase.ASKING:
            event = CallbackAnswer(False)
        elif phase is Phase.RINGING and target is Phase.TALKING:
            event = Answered(offered)
        elif phase is Phase.RINGING and target is Phase.RING_CANCELLED:
            event = CancelOffer(a.call_id, offered, "ring_timeout")
        elif phase in (Phase.RINGING, Phase.RING_CANCELLED):
            event = DialFailed(offered, "no_answer")
        else:
            return False
        _step(a, b, event)
    return a.phase is target


def _reach(phase: Phase, policy: CallPolicy, number: str | None, data: st.DataObject
           ) -> tuple[CallMachine, CallMachine]:
    """Twin machines in ``phase``, after a random legal event sequence (a machine is NEW only
    before its first event)."""
    a, b = _twins(policy, number)
    if phase is not Phase.NEW:
        _walk(a, b, data, data.draw(st.integers(0, 12)))
        assume(_steer(a, b, phase))
    assert a.phase is phase
    return a, b


@pytest.mark.parametrize(("pair", "name"), list(DIRECT.items()))
@settings(max_examples=60, deadline=None)
@given(policy=POLICIES, number=st.sampled_from([None, "+4412345"]), data=st.data())
def test_direct_moves_do_what_the_table_says(pair: tuple[Phase, type], name: str,
                                             policy: CallPolicy, number: str | None,
                                             data: st.DataObject) -> None:
    """For each move handle() takes without the table, from states reached by random legal
    event sequences, handle() and the table's handler give the same actions and state."""
    phase, kind = pair
    a, b = _reach(phase, policy, number, data)
    _step(a, b, _event_of(kind, data, a))


@pytest.mark.parametrize("kind", EVENT_TYPES, ids=lambda k: k.__name__)
@pytest.mark.parametrize("phase", list(Phase), ids=lambda p: p.value)
@settings(max_examples=12, deadline=None)
@given(policy=POLICIES, number=st.sampled_from([None, "+4412345"]), data=st.data())
def test_every_other_pair_does_what_the_table_says(phase: Phase, kind: type,
                                                   policy: CallPolicy, number: str | None,
                                                   data: st.DataObject) -> None:
    """Every (phase, event type) pair, from states reached by random legal event sequences,
    goes through the table in handle(): the same actions and state as the table's handler,
    or, for a pair the table does not list, a refusal that changes nothing."""
    a, b = _reach(phase, policy, number, data)
    _step(a, b, _event_of(kind, data, a))


@settings(max_examples=100, deadline=None)
@given(policy=POLICIES, number=st.sampled_from([None, "+4412345"]), data=st.data())
def test_random_lifecycles_do_what_the_table_says(
        policy: CallPolicy, number: str | None, data: st.DataObject) -> None:
    """Along random event sequences (illegal events included, and calls after their end),
    handle() and the table's handler on twin machines give the same actions and state."""
    a, b = _twins(policy, number)
    for _ in range(data.draw(st.integers(5, 40))):
        valid = sorted({t for p, t in TRANSITIONS if p is a.phase}, key=lambda t: t.__name__)
        pool = valid if data.draw(st.integers(0, 4)) else list(EVENT_TYPES)
        _step(a, b, _event_of(data.draw(st.sampled_from(pool)), data, a))
        if a.phase is Phase.ENDED and data.draw(st.booleans()):
            a, b = _twins(policy, number)
