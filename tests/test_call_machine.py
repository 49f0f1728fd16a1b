"""The call machine's transition table, pair by pair, and the decisions it makes once.

Every (phase, event type) pair is fed one representative event: a legal pair must give the
listed next phase and actions, an illegal one the named error (local for a driver's misuse,
remote for an impossible telephony report). Further tests pin the deferred work (offers,
overflows, callbacks and shutdown that wait for the medium), stale reports and rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from acd.core.call import (
    TRANSITIONS,
    Adopted,
    AgentGone,
    Answered,
    AskCallback,
    CallbackAnswer,
    CallerGone,
    CallMachine,
    CallPolicy,
    Connect,
    Dial,
    DialFailed,
    Drain,
    Finished,
    HandBack,
    HoldStarted,
    Idle,
    LocalCallError,
    Lost,
    Phase,
    Queued,
    RefuseAnswer,
    Refused,
    ReleaseAgent,
    RemoteCallError,
    ReportAnswered,
    ReportCallback,
    ReportFailed,
    ReportHangup,
    ReportWithdrawn,
    StartHold,
    StopHold,
    StoreCallback,
    ring_seconds,
    without_call,
)
from acd.core.model import CancelOffer, Ignored, Offer, OfferCallback, Overflow

C = "1795609297.77"
NUMBER = "+79161234567"
AGI = CallPolicy()

EVENTS: dict[type, object] = {
    Offer: Offer(C, "b", "PJSIP/2", 15.2),
    CancelOffer: CancelOffer(C, "a", "ring_timeout"),
    Overflow: Overflow(C, "voicemail", "max_wait"),
    OfferCallback: OfferCallback(C, 300.0),
    Queued: Queued(),
    Refused: Refused("duplicate"),
    Idle: Idle(10.0),
    Drain: Drain(),
    Adopted: Adopted(Phase.TALKING, "a"),
    HoldStarted: HoldStarted(),
    Answered: Answered("a"),
    DialFailed: DialFailed("a", "no_answer"),
    CallerGone: CallerGone(),
    AgentGone: AgentGone(),
    CallbackAnswer: CallbackAnswer(True),
    Lost: Lost("unknown_after_restart"),
}


def new(policy: CallPolicy = AGI, number: str | None = NUMBER) -> CallMachine:
    """A fresh machine for a Russian tech call held until t=100."""
    return CallMachine(C, "tech", "ru", "RU", 0, number, None, 100.0, policy)


def machine_in(phase: Phase, policy: CallPolicy = AGI) -> CallMachine:
    """A machine driven to ``phase`` through legal events (queued ones hold music)."""
    m = new(policy)
    if phase is Phase.NEW:
        return m
    m.handle(Queued())
    m.handle(Idle(0.0))
    if phase is Phase.ASKING:
        m.handle(OfferCallback(C, 300.0))
    elif phase in (Phase.RINGING, Phase.RING_CANCELLED, Phase.TALKING):
        m.handle(Offer(C, "a", "PJSIP/1", 15.0))
        if phase is Phase.RING_CANCELLED:
            m.handle(CancelOffer(C, "a", "ring_timeout"))
        elif phase is Phase.TALKING:
            m.handle(Answered("a"))
    elif phase is Phase.ENDED:
        m.handle(CallerGone())
    assert m.phase is phase
    return m


def shape(actions: Sequence[object]) -> list[object]:
    """Actions with an ``Ignored`` reduced to what it ignored (its reason is prose)."""
    return [("ignored", a.what) if isinstance(a, Ignored) else a for a in actions]


def ig(what: str) -> tuple[str, str]:
    return ("ignored", what)


Q, A, R, X, T, E, N = (Phase.QUEUED, Phase.ASKING, Phase.RINGING, Phase.RING_CANCELLED,
                       Phase.TALKING, Phase.ENDED, Phase.NEW)
TO_VOICEMAIL = HandBack("voicemail", "max_wait", "tech", "ru")

#: (phase, event type) -> (next phase, actions) for every legal pair of the table.
LEGAL: dict[tuple[Phase, type], tuple[Phase, list[object]]] = {
    (N, Queued): (Q, []),
    (N, Adopted): (T, []),
    (N, CallerGone): (E, [Finished("abandoned")]),

    (Q, Refused): (E, [HandBack(None, "duplicate"), Finished("refused")]),
    (Q, Idle): (Q, []),
    (Q, HoldStarted): (Q, []),
    (Q, Offer): (R, [Dial("b", "PJSIP/2", 16), StopHold()]),
    (Q, CancelOffer): (Q, [ig("cancel_offer")]),
    (Q, Overflow): (E, [StopHold(), TO_VOICEMAIL, Finished("overflowed")]),
    (Q, OfferCallback): (A, [StopHold(), AskCallback("ru")]),
    (Q, Drain): (E, [ReportWithdrawn("shutdown"), HandBack(None, "shutdown"),
                     Finished("handed_back")]),
    (Q, CallerGone): (E, [ReportHangup(), Finished("abandoned")]),
    (Q, Answered): (Q, [RefuseAnswer("a"), ig("answer")]),
    (Q, DialFailed): (Q, [ig("DialFailed")]),
    (Q, AgentGone): (Q, [ig("AgentGone")]),

    (A, Offer): (A, []),
    (A, CancelOffer): (A, [ig("cancel_offer")]),
    (A, Overflow): (A, []),
    (A, Drain): (A, []),
    (A, CallerGone): (E, [ReportHangup(), Finished("abandoned")]),
    (A, CallbackAnswer): (E, [ReportCallback(),
                              StoreCallback("tech", "ru", "RU", NUMBER, 0, None),
                              HandBack("callback", "callback_accepted", "tech", "ru"),
                              Finished("callback")]),
    (A, OfferCallback): (A, [ig("offer_callback")]),
    (A, Answered): (A, [RefuseAnswer("a"), ig("answer")]),
    (A, DialFailed): (A, [ig("DialFailed")]),
    (A, AgentGone): (A, [ig("AgentGone")]),
    (A, Lost): (E, [ReportHangup(), Finished("unknown_after_restart")]),
    (Q, Lost): (E, [ReportHangup(), Finished("unknown_after_restart")]),
    (R, Lost): (E, [ReleaseAgent("a"), ReportHangup(), Finished("unknown_after_restart")]),
    (X, Lost): (E, [ReportHangup(), Finished("unknown_after_restart")]),
    (T, Lost): (E, [ReleaseAgent("a"), ReportHangup(), Finished("unknown_after_restart")]),
    (E, Lost): (E, [ig("Lost")]),

    (R, Answered): (T, [ReportAnswered("a"), Connect("a")]),
    (R, DialFailed): (Q, [ReportFailed("a", "no_answer")]),
    (R, AgentGone): (Q, [ReportFailed("a", "unavailable")]),
    (R, CancelOffer): (X, [ReleaseAgent("a")]),
    (R, OfferCallback): (R, [ig("OfferCallback")]),
    (R, HoldStarted): (R, []),
    (R, Drain): (R, []),
    (R, CallerGone): (E, [ReleaseAgent("a"), ReportHangup(), Finished("abandoned")]),

    (X, Offer): (X, []),
    (X, CancelOffer): (X, [ig("cancel_offer")]),
    (X, Overflow): (X, []),
    (X, Drain): (X, []),
    (X, CallerGone): (E, [ReportHangup(), Finished("abandoned")]),
    (X, OfferCallback): (X, []),
    (X, Answered): (X, [RefuseAnswer("a"), ig("answer")]),
    (X, DialFailed): (Q, [ig("dial_failed")]),
    (X, AgentGone): (Q, [ig("dial_failed")]),
    (X, HoldStarted): (X, []),

    (T, AgentGone): (E, [ReportHangup(), HandBack("ended", "talk_ended"), Finished("answered")]),
    (T, DialFailed): (E, [ReportHangup(), HandBack("ended", "talk_ended"),
                          Finished("answered")]),
    (T, CallerGone): (E, [ReleaseAgent("a"), ReportHangup(), Finished("answered")]),
    (T, Answered): (T, [RefuseAnswer("a"), ig("answer")]),
    (T, CancelOffer): (T, [ig("cancel_offer"), ReportWithdrawn("answered_late")]),
    (T, Drain): (T, [ig("Drain")]),

    (E, CallerGone): (E, [ig("CallerGone")]),
    (E, AgentGone): (E, [ig("AgentGone")]),
    (E, DialFailed): (E, [ig("DialFailed")]),
    (E, CallbackAnswer): (E, [ig("CallbackAnswer")]),
    (E, CancelOffer): (E, [ig("cancel_offer")]),
    (E, Drain): (E, [ig("Drain")]),
    (E, Answered): (E, [RefuseAnswer("a"), ig("answer")]),
    (E, Offer): (E, [ig("offer"), ReportWithdrawn("call_finished")]),
    (E, Overflow): (E, [ig("Overflow")]),
    (E, OfferCallback): (E, [ig("OfferCallback")]),
}
REMOTE = {HoldStarted, Answered, DialFailed, CallerGone, AgentGone}
PAIRS = [(p, t) for p in Phase for t in EVENTS]


def test_the_table_is_exactly_the_legal_pairs() -> None:
    """The machine's transition table holds every legal pair listed here and nothing else."""
    assert set(TRANSITIONS) == set(LEGAL)


@pytest.mark.parametrize(("phase", "kind"), PAIRS,
                         ids=[f"{p.value}-{t.__name__}" for p, t in PAIRS])
def test_every_phase_and_event(phase: Phase, kind: type) -> None:
    """A legal pair gives its next phase and actions; an illegal one raises the named error."""
    m = machine_in(phase)
    event = EVENTS[kind]
    expected = LEGAL.get((phase, kind))
    if expected is None:
        error = RemoteCallError if kind in REMOTE else LocalCallError
        with pytest.raises(error) as info:
            m.handle(event)  # type: ignore[arg-type]
        assert phase.value in str(info.value) and kind.__name__ in str(info.value)
        assert m.phase is phase
        return
    next_phase, actions = expected
    assert shape(m.handle(event)) == actions  # type: ignore[arg-type]
    assert m.phase is next_phase


def test_idle_starts_hold_once_then_hands_back_at_the_deadline() -> None:
    """The first Idle starts music, later ones wait, and the hold deadline withdraws the call."""
    m = new()
    m.handle(Queued())
    assert m.handle(Idle(0.0)) == [StartHold()]
    assert m.handle(Idle(50.0)) == []
    assert m.next_deadline() == 100.0
    assert m.handle(Idle(100.0)) == [ReportWithdrawn("hold_deadline"),
                                     HandBack(None, "hold_deadline"), Finished("handed_back")]
    assert m.next_deadline() is None


def test_offer_during_the_question_waits_and_a_late_accept_is_stale() -> None:
    """An offer made while the caller is asked is dialled after the answer; a "1" then is stale."""
    m = machine_in(Phase.ASKING)
    m.handle(Offer(C, "b", "PJSIP/2", 15.0))
    assert shape(m.handle(CallbackAnswer(True))) == [ig("callback_accepted"),
                                                     Dial("b", "PJSIP/2", 15)]
    assert m.phase is Phase.RINGING and m.agent_id == "b"


def test_cancelled_offer_during_the_question_is_never_dialled() -> None:
    """An offer withdrawn before the medium could dial it disappears; a decline resumes hold."""
    m = machine_in(Phase.ASKING)
    m.handle(Offer(C, "b", "PJSIP/2", 15.0))
    assert m.handle(CancelOffer(C, "b", "agent_paused")) == []
    assert m.handle(CallbackAnswer(False)) == [StartHold()]
    assert m.phase is Phase.QUEUED


def test_overflow_during_the_question_wins_over_the_accept() -> None:
    """The router's overflow (it already ended the call) is carried out and reports nothing."""
    m = machine_in(Phase.ASKING)
    m.handle(Overflow(C, "callback", "max_wait"))
    out = m.handle(CallbackAnswer(True))
    assert shape(out) == [ig("callback_accepted"),
                          StoreCallback("tech", "ru", "RU", NUMBER, 0, None),
                          HandBack("callback", "max_wait", "tech", "ru"), Finished("overflowed")]


def test_next_offer_waits_for_the_cancelled_dial_to_end() -> None:
    """After the router's ring timeout the next offer is dialled once the old dial returns."""
    m = machine_in(Phase.RING_CANCELLED)
    assert m.handle(Offer(C, "b", "PJSIP/2", 15.0)) == []
    assert shape(m.handle(DialFailed("a", "no_answer"))) == [ig("dial_failed"),
                                                             Dial("b", "PJSIP/2", 15)]
    assert m.phase is Phase.RINGING


def test_work_after_a_cancelled_dial_in_priority_order() -> None:
    """Shutdown beats an overflow, an overflow beats a callback question (deferred work)."""
    m = machine_in(Phase.RING_CANCELLED)
    m.handle(OfferCallback(C, 300.0))
    m.handle(Overflow(C, "voicemail", "max_wait"))
    assert shape(m.handle(AgentGone())) == [ig("dial_failed"), TO_VOICEMAIL,
                                            Finished("overflowed")]
    m = machine_in(Phase.RING_CANCELLED)
    m.handle(OfferCallback(C, 300.0))
    assert shape(m.handle(DialFailed("a", "busy"))) == [ig("dial_failed"), AskCallback("ru")]
    m = machine_in(Phase.RINGING)
    m.handle(Drain())
    assert m.handle(DialFailed("a", "busy")) == [
        ReportWithdrawn("shutdown"), HandBack(None, "shutdown"), Finished("handed_back")]


def test_caller_gone_after_an_overflow_reports_nothing_to_the_router() -> None:
    """The router ended an overflowed call itself: a hangup before the hand-over is not sent."""
    m = machine_in(Phase.RING_CANCELLED)
    m.handle(Overflow(C, "voicemail", "max_wait"))
    assert m.handle(CallerGone()) == [Finished("abandoned")]


def test_cancel_after_the_answer_withdraws_the_call_once() -> None:
    """A ring timeout the router ran before it heard the answer takes the call out of its
    queue (never offered again) while the talk goes on; the end then reports nothing."""
    m = machine_in(Phase.TALKING)
    assert shape(m.handle(CancelOffer(C, "a", "ring_timeout"))) == [
        ig("cancel_offer"), ReportWithdrawn("answered_late")]
    assert shape(m.handle(CancelOffer(C, "a", "ring_timeout"))) == [ig("cancel_offer")]
    assert m.handle(AgentGone()) == [HandBack("ended", "talk_ended"), Finished("answered")]


def test_answer_from_another_agent_is_refused() -> None:
    """An answer or dial result from an agent other than the one rung changes nothing."""
    m = machine_in(Phase.RINGING)
    assert shape(m.handle(Answered("z"))) == [RefuseAnswer("z"), ig("answer")]
    assert shape(m.handle(DialFailed("z", "busy"))) == [ig("dial_failed")]
    assert shape(m.handle(CancelOffer(C, "z", "x"))) == [ig("cancel_offer")]
    assert m.phase is Phase.RINGING


def test_undialable_endpoint_fails_the_offer_without_touching_the_hold() -> None:
    """An endpoint the medium cannot dial is reported unavailable; the caller keeps holding."""
    policy = CallPolicy(dialable=lambda agent, endpoint: "&" not in endpoint)
    m = machine_in(Phase.QUEUED, policy)
    assert shape(m.handle(Offer(C, "b", "PJSIP/2&PJSIP/3", 15.0))) == [
        ig("offer"), ReportFailed("b", "unavailable")]
    assert m.phase is Phase.QUEUED and m.holding


def test_hold_while_ringing_keeps_music_until_the_answer() -> None:
    """A medium that rings with the caller on hold (ARI) stops the music only on answer."""
    policy = CallPolicy(hold_while_ringing=True)
    m = new(policy)
    m.handle(Queued())
    m.handle(HoldStarted())
    assert m.handle(Offer(C, "a", "PJSIP/1", 15.0)) == [Dial("a", "PJSIP/1", 15)]
    assert m.handle(Answered("a")) == [ReportAnswered("a"), StopHold(), Connect("a")]


def test_hold_while_ringing_restarts_music_for_an_offer_made_during_the_question() -> None:
    """An offer that waited for the callback answer rings with music on hold again (ARI)."""
    policy = CallPolicy(hold_while_ringing=True)
    m = new(policy)
    m.handle(Queued())
    m.handle(HoldStarted())
    assert m.handle(OfferCallback(C, 1.0)) == [StopHold(), AskCallback("ru")]
    assert m.handle(Offer(C, "a", "PJSIP/1", 15.0)) == []
    assert m.handle(CallbackAnswer(False)) == [StartHold(), Dial("a", "PJSIP/1", 15)]
    assert m.phase is Phase.RINGING and m.holding
    assert m.handle(CancelOffer(C, "a", "paused")) == [ReleaseAgent("a")]
    assert shape(m.handle(DialFailed("a", "unavailable"))) == [ig("dial_failed")]
    assert m.phase is Phase.QUEUED and m.holding


def test_callback_prompt_language_falls_back_to_the_default() -> None:
    """The question is asked in the call's language when the prompt has it, else the default."""
    policy = CallPolicy(callback_languages=frozenset({"en", "uk"}), default_language="en")
    m = machine_in(Phase.QUEUED, policy)
    assert m.handle(OfferCallback(C, 1.0)) == [StopHold(), AskCallback("en")]
    m = CallMachine(C, "tech", "uk", "UA", 0, NUMBER, None, 100.0, policy)
    m.handle(Queued())
    assert m.handle(OfferCallback(C, 1.0)) == [AskCallback("uk")]


def test_accepted_callback_without_a_number_stores_nothing() -> None:
    """A caller with no number to call back still leaves as a callback, with nothing stored."""
    m = new(number=None)
    m.handle(Queued())
    m.handle(OfferCallback(C, 1.0))
    assert shape(m.handle(CallbackAnswer(True))) == [
        ReportCallback(), ig("callback"), HandBack("callback", "callback_accepted", "tech", "ru"),
        Finished("callback")]


def test_adoption_rebuilds_each_live_phase() -> None:
    """Adopted calls start queued (holding or not), ringing, ring-cancelled (an answer then
    is refused) or talking with their agent."""
    m = new()
    m.handle(Adopted(Phase.QUEUED, holding=True))
    assert m.phase is Phase.QUEUED and m.holding
    m = new()
    m.handle(Adopted(Phase.RINGING, "a"))
    assert m.handle(Answered("a")) == [ReportAnswered("a"), Connect("a")]
    m = new()
    m.handle(Adopted(Phase.RING_CANCELLED, "a"))
    assert shape(m.handle(Answered("a"))) == [RefuseAnswer("a"), ig("answer")]
    with pytest.raises(LocalCallError, match="cannot adopt"):
        new().handle(Adopted(Phase.TALKING))


def test_reports_without_a_machine() -> None:
    """An unknown call's answer is refused, its hangups still reach the router."""
    assert shape(without_call(C, Answered("a"))) == [RefuseAnswer("a"), ig("answer")]
    assert without_call(C, CallerGone()) == [ReportHangup()]
    assert without_call(C, AgentGone()) == [ReportHangup(), HandBack("ended", "talk_ended")]
    assert shape(without_call(C, DialFailed("a", "busy"))) == [ig("DialFailed")]


@pytest.mark.parametrize(("seconds", "whole"), [(0.0, 1), (0.1, 1), (1.0, 1), (14.2, 15),
                                                 (15.0, 15)])
def test_ring_timeout_rounds_up_to_whole_seconds(seconds: float, whole: int) -> None:
    """The router's ring timeout becomes whole seconds, rounded up, never below one."""
    assert ring_seconds(seconds) == whole


def test_error_lists_the_events_valid_in_the_phase() -> None:
    """The error message names the phase, the event and what the phase accepts."""
    m = machine_in(Phase.TALKING)
    with pytest.raises(LocalCallError, match=r"Offer cannot happen in phase talking; "
                                             r"valid there: AgentGone, Answered"):
        m.handle(Offer(C, "b", "PJSIP/2", 15.0))
