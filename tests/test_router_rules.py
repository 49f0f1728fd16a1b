"""One routing rule per test, on small hand-made centers validated by ``center_from_data``.

Each center is built as a dict with ``routerkit`` (one agent per group, agent id = group name)
and the router is driven directly with explicit times, starting at 0 like the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from routerkit import agent, center_data, of_type, one, queue, small_router

from acd.core.model import (
    AgentAlreadyLoggedIn,
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
    InvalidPauseReason,
    Offer,
    OfferCallback,
    Outcome,
    Output,
    Overflow,
    StepApplied,
    UnknownAgent,
    UnknownCall,
)
from acd.core.router import Router


def make(agents: Sequence[Mapping[str, Any]], queues: Mapping[str, Any] | None = None,
         countries: Sequence[str] = ("RU",), login: Sequence[str] = (), **top: Any) -> Router:
    """A router over a small center, with ``login`` agents logged in (in order) at t=0."""
    router = small_router(center_data(agents, queues, countries, **top))
    for agent_id in login:
        router.login(0.0, agent_id)
    return router


def offered(outputs: Sequence[Output]) -> list[tuple[str, str]]:
    """(call, agent) of every Offer command, in order."""
    return [(o.call_id, o.agent_id) for o in of_type(outputs, Offer)]


def ended(outputs: Sequence[Output]) -> CallEnded:
    """The single CallEnded among ``outputs``."""
    return one(outputs, CallEnded)


def talk(router: Router, now: float, call_id: str, until: float) -> None:
    """Answer ``call_id`` at ``now``, hang up at ``until`` and run the wrap-up timer."""
    router.offer_answered(now, call_id)
    router.hangup(until, call_id)
    deadline = router.next_deadline()
    if deadline is not None and deadline <= until:
        router.advance(until)


# ----------------------------------------------------------------------------- eligibility


def test_skill_below_minimum_level_is_not_offered() -> None:
    """An agent below the queue's minimum level is skipped; one at or above it is offered."""
    router = make([agent("low", skills={"tech": 3}), agent("high", skills={"tech": 4})],
                  {"tech": queue(routing={"min_level": 4})}, login=["low", "high"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "high")]


def test_agent_without_the_callers_language_is_not_offered() -> None:
    """A Kazakh call goes to the Kazakh speaker, not to the Russian-only agent idle longer."""
    router = make([agent("ru"), agent("kk", languages=["kk", "ru"])], countries=["RU", "KZ"],
                  login=["ru", "kk"])
    assert offered(router.call_arrived(1, "c1", "tech", "kk", "KZ")) == [("c1", "kk")]


def test_home_site_only_until_add_sites_step() -> None:
    """With ``sites: home`` a Kazakh caller (home Moscow) waits for Kyiv until the step."""
    router = make([agent("kyiv", site="kyiv", languages=["kk"])],
                  {"tech": queue(routing={"sites": "home"},
                                 expansion=[{"after_s": 12, "add_sites": "all"}])},
                  countries=["KZ"], login=["kyiv"])
    assert offered(router.call_arrived(0, "c1", "tech", "kk", "KZ")) == []
    out = router.advance(12)
    assert one(out, StepApplied).index == 0
    assert offered(out) == [("c1", "kyiv")]


def test_country_restricted_agent_serves_only_those_countries() -> None:
    """An agent restricted to UA callers is not offered a Russian caller."""
    router = make([agent("ua-only", countries=["UA"], languages=["ru", "uk"]),
                   agent("any", languages=["ru", "uk"])],
                  countries=["RU", "UA"], login=["ua-only", "any"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "any")]
    assert offered(router.call_arrived(3, "c2", "tech", "uk", "UA")) == [("c2", "ua-only")]


def test_newcomers_excluded_until_include_newcomers_step() -> None:
    """Under ``exclude`` a newcomer gets no call until the include_newcomers step."""
    router = make([agent("new", newcomer=True)],
                  {"tech": queue(routing={"newcomers": "exclude"},
                                 expansion=[{"after_s": 15, "include_newcomers": True}])},
                  login=["new"])
    assert offered(router.call_arrived(0, "c1", "tech", "ru", "RU")) == []
    assert offered(router.advance(15)) == [("c1", "new")]


def test_newcomers_last_resort_prefers_tenured() -> None:
    """Under ``last_resort`` a tenured agent wins over a newcomer idle longer; else the newcomer."""
    router = make([agent("new", newcomer=True), agent("old")],
                  {"tech": queue(routing={"newcomers": "last_resort"})}, login=["new", "old"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "old")]
    assert offered(router.call_arrived(2, "c2", "tech", "ru", "RU")) == [("c2", "new")]


def test_newcomers_equal_are_routed_like_everyone() -> None:
    """Under ``equal`` the newcomer idle longest gets the call."""
    router = make([agent("new", newcomer=True), agent("old")],
                  {"tech": queue(routing={"newcomers": "equal"})}, login=["new", "old"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "new")]


# ----------------------------------------------------------------------------- agent selection


def test_longest_idle_agent_is_chosen() -> None:
    """The agent ready the longest gets the call, whatever the roster order."""
    router = make([agent("a"), agent("b")])
    router.login(0, "b")
    router.login(5, "a")
    assert offered(router.call_arrived(10, "c1", "tech", "ru", "RU")) == [("c1", "b")]


def test_highest_proficiency_agent_is_chosen() -> None:
    """``highest_proficiency`` picks the best-skilled agent over one idle longer."""
    router = make([agent("junior", skills={"tech": 3}), agent("expert", skills={"tech": 8})],
                  {"tech": queue(routing={"agent_selection": "highest_proficiency"})},
                  login=["junior", "expert"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "expert")]


def test_least_occupied_agent_is_chosen() -> None:
    """``least_occupied`` picks the agent busy the smaller share of their logged-in time."""
    router = make([agent("a"), agent("b")],
                  {"tech": queue(wrap_up_s=0, routing={"agent_selection": "least_occupied"})},
                  login=["a", "b"])
    assert offered(router.call_arrived(0, "c1", "tech", "ru", "RU")) == [("c1", "a")]
    talk(router, 0, "c1", until=20)  # a: busy 0-20 s, then ready (idle the longest)
    assert offered(router.call_arrived(25, "c2", "tech", "ru", "RU")) == [("c2", "b")]
    talk(router, 25, "c2", until=30)  # b: busy 5 s
    # At t=100 a was busy 20% and b 5%: least occupied is b although a is idle longer.
    assert offered(router.call_arrived(100, "c3", "tech", "ru", "RU")) == [("c3", "b")]


def test_round_robin_rotates_through_the_roster() -> None:
    """``round_robin`` continues after the last agent offered, not with the longest idle."""
    router = make([agent("a"), agent("b"), agent("c")],
                  {"tech": queue(wrap_up_s=0, routing={"agent_selection": "round_robin"})},
                  login=["a", "b", "c"])
    for t, call_id in enumerate(["c1", "c2", "c3"], start=1):
        router.call_arrived(t, call_id, "tech", "ru", "RU")
        router.offer_answered(t, call_id)
    for t, call_id in [(10, "c3"), (11, "c2"), (12, "c1")]:  # c is idle the longest
        router.hangup(t, call_id)
        router.advance(t)
    assert offered(router.call_arrived(20, "c4", "tech", "ru", "RU")) == [("c4", "a")]


def test_site_affinity_prefers_the_callers_home_site() -> None:
    """With both sites allowed, a Moscow agent gets a Russian caller over a Kyiv agent."""
    agents = [agent("kyiv", site="kyiv"), agent("msk", site="moscow")]
    router = make(agents, {"tech": queue(routing={"sites": "all", "site_affinity": True})},
                  login=["kyiv", "msk"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "msk")]
    router = make(agents, {"tech": queue(routing={"sites": "all", "site_affinity": False})},
                  login=["kyiv", "msk"])
    assert offered(router.call_arrived(1, "c1", "tech", "ru", "RU")) == [("c1", "kyiv")]


# ----------------------------------------------------------------------------- call selection


def test_freed_agent_takes_highest_priority_then_longest_wait() -> None:
    """A freed agent takes the higher-priority call first, then the older of equal priority."""
    router = make([agent("a")])
    router.call_arrived(0, "old", "tech", "ru", "RU")
    router.call_arrived(1, "older-vip", "tech", "ru", "RU", priority=2)
    router.call_arrived(2, "newer-vip", "tech", "ru", "RU", priority=2)
    router.call_arrived(3, "new", "tech", "ru", "RU")
    assert offered(router.login(10, "a")) == [("older-vip", "a")]


def test_fifo_within_priority() -> None:
    """Among equal priorities the call that arrived first is taken first."""
    router = make([agent("a")], {"tech": queue(wrap_up_s=0)})
    for t, call_id in enumerate(["c1", "c2", "c3"]):
        router.call_arrived(t, call_id, "tech", "ru", "RU")
    assert offered(router.login(10, "a")) == [("c1", "a")]
    router.offer_answered(10, "c1")
    assert offered(router.hangup(20, "c1") + router.advance(20)) == [("c2", "a")]


def test_sl_aware_takes_the_call_closest_to_its_threshold() -> None:
    """``sl_aware`` takes the call nearest its SL threshold, not the one waiting longest."""
    def center(selection: str) -> Router:
        return make([agent("a", skills={"tech": 5, "orders": 5})],
                    {"tech": queue("tech", service_level={"threshold_s": 60, "target": 0.8},
                                   routing={"call_selection": selection}),
                     "orders": queue("orders", service_level={"threshold_s": 10, "target": 0.8},
                                     routing={"call_selection": selection})})
    for selection, first in [("sl_aware", "soon-late"), ("fifo", "patient")]:
        router = center(selection)
        router.call_arrived(0, "patient", "tech", "ru", "RU")  # breaks 20 s at t=60
        router.call_arrived(20, "soon-late", "orders", "ru", "RU")  # breaks at t=30
        assert offered(router.login(25, "a")) == [(first, "a")], selection


# ----------------------------------------------------------------------------- expansion


def test_min_level_step_lowers_the_minimum() -> None:
    """A min_level step lets a lower-skilled agent take the call."""
    router = make([agent("junior", skills={"tech": 2})],
                  {"tech": queue(routing={"min_level": 5},
                                 expansion=[{"after_s": 8, "min_level": 2}])},
                  login=["junior"])
    assert offered(router.call_arrived(0, "c1", "tech", "ru", "RU")) == []
    assert offered(router.advance(7.9)) == []
    assert offered(router.advance(8)) == [("c1", "junior")]


def test_fallback_language_step_accepts_russian_for_kazakh_callers() -> None:
    """After accept_fallback_languages a Kazakh caller may be served in Russian."""
    router = make([agent("ru")],
                  {"tech": queue(expansion=[{"after_s": 25, "accept_fallback_languages": True}])},
                  countries=["RU", "KZ"], login=["ru"])
    assert offered(router.call_arrived(0, "c1", "tech", "kk", "KZ")) == []
    assert offered(router.advance(25)) == [("c1", "ru")]


def test_offer_callback_step_emits_offer_callback_with_ewt() -> None:
    """An offer_callback step asks the caller, with the wait estimate; accepting ends the call."""
    router = make([agent("a")],
                  {"tech": queue(aht_hint_s=300,
                                 expansion=[{"after_s": 90, "offer_callback": True}])})
    router.login(0, "a")
    router.call_arrived(0, "busy", "tech", "ru", "RU")
    router.offer_answered(0, "busy")
    router.call_arrived(1, "c1", "tech", "ru", "RU")
    out = router.advance(91)
    cb = one(out, OfferCallback)
    # The one agent has talked 91 s of a 300 s handle time: 209 s are left.
    assert cb.call_id == "c1" and cb.ewt_s == pytest.approx(300.0 - 91.0)
    end = ended(router.callback_accepted(100, "c1"))
    assert end.outcome is Outcome.CALLBACK and end.wait_s == pytest.approx(99.0)


@pytest.mark.parametrize("target", ["voicemail", "callback"])
def test_overflow_step_leaves_the_acd(target: str) -> None:
    """An overflow step to voicemail or callback sends Overflow and ends the call overflowed."""
    router = make([agent("a")], {"tech": queue(expansion=[{"after_s": 60, "overflow": target}])})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.advance(60)
    assert one(out, Overflow) == Overflow("c1", target, "step_0")
    end = ended(out)
    assert end.outcome is Outcome.OVERFLOWED and end.wait_s == 60
    assert router.call_state("c1") is None


def test_overflow_to_another_queue_keeps_the_arrival_time() -> None:
    """An overflow step to a queue moves the call (CallMoved); its wait counts from arrival."""
    router = make([agent("seller", skills={"orders": 5})],
                  {"tech": queue("tech", expansion=[{"after_s": 20, "overflow": "orders"}]),
                   "orders": queue("orders")})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.advance(20)
    assert one(out, CallMoved) == CallMoved("c1", "tech", "orders", 20)
    assert one(out, CallQueued).queue == "orders"
    assert offered(router.login(25, "seller")) == [("c1", "seller")]
    assert one(router.offer_answered(26, "c1"), CallAnswered).wait_s == 26
    end = ended(router.hangup(60, "c1"))
    assert (end.queue, end.arrived, end.wait_s) == ("orders", 0, 26)


def test_call_moved_into_a_full_queue_is_labelled_with_that_queue() -> None:
    """After CallMoved(tech -> orders) into a full queue, the call ends labelled ``orders``."""
    router = make([agent("a", skills={"tech": 5, "orders": 5})],
                  {"tech": queue("tech", max_wait_s=30, overflow="orders"),
                   "orders": queue("orders", max_length=1, overflow="voicemail")})
    router.call_arrived(0, "waiting", "orders", "ru", "RU")
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.advance(30)
    moved = of_type(out, CallMoved)
    assert moved[0] == CallMoved("c1", "tech", "orders", 30)
    # The event stream must stay consistent: whatever follows starts from ``orders``.
    assert all(m.from_queue == moved[i].to_queue for i, m in enumerate(moved[1:]))
    assert ended(out).queue == moved[-1].to_queue


# ----------------------------------------------------------------------------- ring no answer


def test_offer_failed_pauses_agent_rona_and_reoffers() -> None:
    """A failed offer pauses the agent with ``rona`` and re-offers the call to the next agent."""
    router = make([agent("a"), agent("b")], login=["a", "b"])
    router.call_arrived(1, "c1", "tech", "ru", "RU")
    out = router.offer_failed(3, "c1")
    assert of_type(out, CancelOffer) == []  # the telephony side reported it: nothing to stop
    assert one(out, CallRequeued) == CallRequeued("c1", "a", "no_answer", 3)
    assert AgentStateChanged("a", AgentState.PAUSED, "rona", 3) in out
    assert offered(out) == [("c1", "b")]


def test_ring_timeout_cancels_requeues_in_place_and_reoffers() -> None:
    """On ring timeout: CancelOffer, agent paused rona, the call keeps its place ahead."""
    router = make([agent("a"), agent("b")], {"tech": queue(ring_timeout_s=15)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.call_arrived(5, "c2", "tech", "ru", "RU")
    assert router.next_deadline() == 15
    out = router.advance(15)
    assert one(out, CancelOffer) == CancelOffer("c1", "a", "ring_timeout")
    assert router.agent_state("a") is AgentState.PAUSED
    assert router.call_state("c1") is CallState.QUEUED
    assert offered(router.login(20, "b")) == [("c1", "b")]


def test_rona_auto_ready_after_configured_time() -> None:
    """A rona pause ends by itself after ``rona.auto_ready_after_s``."""
    router = make([agent("a")], {"tech": queue(ring_timeout_s=15)}, login=["a"],
                  rona={"pause_reason": "rona", "auto_ready_after_s": 30})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.advance(15)
    assert router.next_deadline() == 45
    out = router.advance(45)
    assert AgentStateChanged("a", AgentState.READY, None, 45) in out
    assert offered(out) == [("c1", "a")]


# ----------------------------------------------------------------------------- wrap-up, pause


def test_wrap_up_timer_then_ready_takes_waiting_call() -> None:
    """After talk the agent wraps up for the queue's wrap_up_s, then takes the next call."""
    router = make([agent("a")], {"tech": queue(wrap_up_s=10)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(1, "c1")
    router.call_arrived(2, "c2", "tech", "ru", "RU")
    router.hangup(30, "c1")
    assert router.agent_state("a") is AgentState.WRAP_UP
    assert router.next_deadline() == 40
    assert offered(router.advance(39.9)) == []
    assert offered(router.advance(40)) == [("c2", "a")]


def test_ready_ends_wrap_up_early() -> None:
    """An agent may end wrap-up early with ready and takes the waiting call at once."""
    router = make([agent("a")], {"tech": queue(wrap_up_s=60)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(1, "c1")
    router.call_arrived(2, "c2", "tech", "ru", "RU")
    router.hangup(30, "c1")
    assert offered(router.ready(35, "a")) == [("c2", "a")]


def test_invalid_pause_reason_lists_valid_ones() -> None:
    """An unconfigured pause reason is refused with a message listing the valid reasons."""
    router = make([agent("a")], login=["a"], pause_reasons=["break", "lunch", "rona"])
    with pytest.raises(InvalidPauseReason, match=r"smoking.*valid: break, lunch, rona"):
        router.pause(1, "a", "smoking")
    assert router.agent_state("a") is AgentState.READY


def test_paused_agent_gets_no_call_until_ready() -> None:
    """A paused agent is skipped; ready makes them take the waiting call."""
    router = make([agent("a")], login=["a"])
    router.pause(1, "a", "break")
    assert offered(router.call_arrived(2, "c1", "tech", "ru", "RU")) == []
    assert offered(router.ready(3, "a")) == [("c1", "a")]


def test_pause_during_call_applies_after_wrap_up() -> None:
    """A pause asked on a call waits for the call and its wrap-up, then pauses the agent."""
    router = make([agent("a")], {"tech": queue(wrap_up_s=10)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(1, "c1")
    router.pause(5, "a", "lunch")
    assert router.agent_state("a") is AgentState.ON_CALL
    router.hangup(30, "c1")
    assert router.agent_state("a") is AgentState.WRAP_UP
    assert AgentStateChanged("a", AgentState.PAUSED, "lunch", 40) in router.advance(40)


# ----------------------------------------------------------------------------- login, logout


def test_login_makes_agent_take_waiting_call() -> None:
    """A login (ready) takes the waiting call at once; a paused login does not."""
    router = make([agent("a"), agent("b")])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    assert offered(router.login(1, "b", paused_reason="training")) == []
    assert offered(router.login(2, "a")) == [("c1", "a")]


def test_double_login_is_refused() -> None:
    """A second login of a logged-in agent raises AgentAlreadyLoggedIn and changes nothing."""
    router = make([agent("a")], login=["a"])
    router.pause(1, "a", "break")
    with pytest.raises(AgentAlreadyLoggedIn, match="already logged in"):
        router.login(2, "a")
    assert router.agent_state("a") is AgentState.PAUSED


def test_logout_while_ringing_requeues_the_call() -> None:
    """Logging out while rung stops the ringing and puts the call back for the next agent."""
    router = make([agent("a"), agent("b")], login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.logout(3, "a")
    assert one(out, CancelOffer).agent_id == "a"
    assert one(out, CallRequeued).call_id == "c1"
    assert router.agent_state("a") is AgentState.LOGGED_OUT
    assert router.call_state("c1") is CallState.QUEUED
    assert offered(router.login(4, "b")) == [("c1", "b")]


def test_logout_on_call_waits_until_wrap_up_ends() -> None:
    """A logout asked on a call applies when the call and its wrap-up are over."""
    router = make([agent("a")], {"tech": queue(wrap_up_s=10)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(1, "c1")
    router.logout(5, "a")
    router.hangup(30, "c1")
    assert router.agent_state("a") is AgentState.WRAP_UP
    router.advance(40)
    assert router.agent_state("a") is AgentState.LOGGED_OUT


# ----------------------------------------------------------------------------- bounded queues


def test_full_queue_overflows_new_calls() -> None:
    """Beyond max_length waiting calls a new call goes to the queue's overflow."""
    router = make([agent("a")], {"tech": queue(max_length=2, overflow="callback")})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.call_arrived(1, "c2", "tech", "ru", "RU")
    out = router.call_arrived(2, "c3", "tech", "ru", "RU")
    assert one(out, Overflow) == Overflow("c3", "callback", "queue_full")
    assert ended(out).outcome is Outcome.OVERFLOWED
    assert router.calls_in_router == 2


def test_max_wait_overflows_the_call() -> None:
    """A call waiting max_wait_s goes to the queue's overflow target."""
    router = make([agent("a")], {"tech": queue(max_wait_s=60, overflow="voicemail")})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.advance(60)
    assert one(out, Overflow) == Overflow("c1", "voicemail", "max_wait")
    assert ended(out).wait_s == 60


# ----------------------------------------------------------------------------- EWT, defaults


def test_ewt_finite_when_staffed_infinite_when_not() -> None:
    """The wait estimate is finite with a logged-in agent for the skill, inf with none."""
    router = make([agent("a")], {"tech": queue(aht_hint_s=300)})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    assert math.isinf(router.ewt("c1"))
    router.login(1, "a")
    router.offer_answered(1, "c1")
    router.call_arrived(2, "c2", "tech", "ru", "RU")
    assert 0 < router.ewt("c2") < math.inf


def test_login_after_logout_during_a_call_keeps_the_agent_logged_in() -> None:
    """Logged out on a call, then in again before it ended: logged in after it, as asked."""
    router = make([agent("a"), agent("b")], login=["a", "b"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(0, "c1")
    router.call_arrived(0, "c2", "tech", "ru", "RU")
    router.offer_answered(0, "c2")
    router.logout(1, "a")
    router.logout(1, "b")
    assert router.login(2, "a") == []
    assert router.login(2, "b", paused_reason="break") == []
    router.hangup(3, "c1", wrap_up_s=0)
    router.hangup(3, "c2", wrap_up_s=0)
    assert router.agent_state("a") is AgentState.READY
    assert router.agent_state("b") is AgentState.PAUSED
    with pytest.raises(AgentAlreadyLoggedIn):
        router.login(4, "a")


def test_withdrawn_calls_end_as_overflowed_without_a_command() -> None:
    """A caller handed back to the dialplan is not an abandon; a rung agent is freed."""
    router = make([agent("a")])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    out = router.withdraw(5, "c1", "shutdown")
    assert ended(out).outcome is Outcome.OVERFLOWED and ended(out).wait_s == 5
    assert not any(isinstance(o, (Overflow, CancelOffer)) for o in out)
    router.login(6, "a")
    router.call_arrived(6, "c2", "tech", "ru", "RU")  # rings a at once
    out = router.withdraw(7, "c2", "shutdown")
    assert [(o.agent_id, o.reason) for o in out if isinstance(o, CancelOffer)] == [
        ("a", "shutdown")]
    assert ended(out).outcome is Outcome.OVERFLOWED
    assert router.agent_state("a") is AgentState.READY
    router.call_arrived(8, "c3", "tech", "ru", "RU")
    router.offer_answered(8, "c3")
    out = router.withdraw(9, "c3", "shutdown")  # talking: not the router's to take back
    assert [type(o) for o in out] == [Ignored] and router.call_state("c3") is CallState.TALKING


def test_wait_estimate_learns_each_calls_own_wrap_up() -> None:
    """Handle time for estimates is talk plus the wrap-up the call really had, not the default."""
    def estimate_after(wrap_up_s: float | None) -> float:
        router = make([agent("a")], {"tech": queue(aht_hint_s=100, wrap_up_s=10)})
        router.login(0, "a")
        router.call_arrived(0, "c1", "tech", "ru", "RU")
        router.offer_answered(0, "c1")
        router.hangup(100, "c1", wrap_up_s)
        router.ready(100, "a")  # wrap-up cut short: the agent takes the next call at once
        router.call_arrived(100, "c2", "tech", "ru", "RU")
        router.offer_answered(100, "c2")
        return router.ewt_new("tech")

    # One agent who has just answered, nobody waiting: the estimate is the learned handle
    # time itself.
    assert estimate_after(None) == pytest.approx(100 + 0.02 * (100 + 10 - 100))
    assert estimate_after(300) == pytest.approx(100 + 0.02 * (100 + 300 - 100))


def test_unknown_queue_language_country_use_defaults() -> None:
    """Unknown queue, language and country fall back to defaults, each with InputDefaulted."""
    router = make([agent("a", languages=["ru", "uk"])], countries=["RU", "UA"])
    out = router.call_arrived(0, "c1", "billing", "xx", "ZZ")
    assert of_type(out, InputDefaulted) == [
        InputDefaulted("c1", "queue", "billing", "tech"),
        InputDefaulted("c1", "country", "ZZ", "other"),
        InputDefaulted("c1", "language", "xx", "ru")]
    q = one(out, CallQueued)
    assert (q.queue, q.language, q.country) == ("tech", "ru", "other")
    lang = of_type(router.call_arrived(1, "c2", "tech", "xx", "UA"), InputDefaulted)
    assert lang == [InputDefaulted("c2", "language", "xx", "uk")]


# ----------------------------------------------------------------------------- stale reports


def test_stale_reports_are_ignored() -> None:
    """Reports that mean nothing in the current state come back as Ignored, not errors."""
    router = make([agent("a"), agent("b")], login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.call_arrived(0, "c2", "tech", "ru", "RU")  # queued: nobody free
    assert of_type(router.offer_answered(1, "c2"), Ignored)  # not ringing
    router.offer_answered(1, "c1")
    assert of_type(router.offer_failed(2, "c1"), Ignored)  # already talking
    assert of_type(router.hangup(3, "nope"), Ignored)  # never seen
    assert of_type(router.ready(4, "a"), Ignored) == []  # on call: clears a pending state
    router.login(5, "b")
    assert of_type(router.ready(6, "b"), Ignored)  # already ringing for c2
    assert router.call_state("c1") is CallState.TALKING


def test_answer_after_caller_hung_up_while_ringing_is_ignored() -> None:
    """An answer racing the caller's hangup (the call already ended) is Ignored, not raised."""
    router = make([agent("a")], login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.hangup(3, "c1")
    assert of_type(router.offer_answered(3.1, "c1"), Ignored)


def test_late_answer_from_a_previous_agent_is_not_credited_to_the_next() -> None:
    """After a ring timeout re-offers the call to b, a late answer naming a is Ignored."""
    router = make([agent("a"), agent("b")], {"tech": queue(ring_timeout_s=15)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.login(1, "b")
    router.advance(15)  # a rang out: paused rona, the call goes to b
    assert router.agent_state("b") is AgentState.RINGING
    assert of_type(router.offer_answered(15.5, "c1", agent_id="a"), Ignored)
    assert router.agent_state("b") is AgentState.RINGING
    assert of_type(router.offer_answered(16, "c1", agent_id="b"), CallAnswered)


def test_refused_request_does_not_lose_due_timer_outputs() -> None:
    """Timers run by a request that is then refused still reach the driver (here, CancelOffer)."""
    router = make([agent("a")], {"tech": queue(ring_timeout_s=15)}, login=["a"])
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    with pytest.raises(AgentAlreadyLoggedIn):
        router.login(20, "a")  # a late API request: the ring timer (t=15) runs first
    delivered = router.advance(20)
    assert CancelOffer("c1", "a", "ring_timeout") in delivered


# ----------------------------------------------------------------------------- deadlines


def test_next_deadline_is_none_when_idle() -> None:
    """A router with no calls and no timers has no deadline."""
    router = make([agent("a")], login=["a"])
    assert router.next_deadline() is None


def test_next_deadline_is_the_earliest_live_timer() -> None:
    """The deadline is the earliest of step, max-wait and ring timers that still matter."""
    router = make([agent("a")],
                  {"tech": queue(max_wait_s=60, ring_timeout_s=15,
                                 expansion=[{"after_s": 10, "offer_callback": True}])})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    assert router.next_deadline() == 10
    router.advance(10)
    assert router.next_deadline() == 60


def test_next_deadline_skips_stale_timers() -> None:
    """Timers made moot (the step of an offered call, the ring of an answered one) are skipped."""
    router = make([agent("a")],
                  {"tech": queue(wrap_up_s=10, ring_timeout_s=15,
                                 expansion=[{"after_s": 10, "offer_callback": True}])})
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.login(1, "a")
    assert router.next_deadline() == 16  # ring timer; the step at 10 no longer applies
    router.offer_answered(2, "c1")
    assert router.next_deadline() is None
    router.hangup(30, "c1")
    assert router.next_deadline() == 40
    assert of_type(router.advance(40), CallOffered) == []


# --------------------------------------------------- refused queries


def test_refused_query_does_not_replay_earlier_outputs() -> None:
    """A query refused for an unknown call or agent (``ewt``, ``agent_state``) makes the next
    request return only its own outputs, not the previous request's again."""
    router = small_router(center_data([agent("a")]))
    router.login(0, "a")
    first = router.call_arrived(1, "c1", "tech", "ru", "RU")
    assert of_type(first, Offer)
    with pytest.raises(UnknownCall):
        router.ewt("gone")
    answered = router.offer_answered(2, "c1")
    assert not of_type(answered, Offer) and not of_type(answered, CallQueued)
    assert len(of_type(answered, CallAnswered)) == 1
    with pytest.raises(UnknownAgent):
        router.agent_state("nobody")
    ended = router.hangup(3, "c1")
    assert not of_type(ended, CallAnswered)


def test_refused_query_keeps_outputs_carried_from_a_refused_request() -> None:
    """Timer outputs carried by a refused request survive a refused query in between."""
    router = small_router(center_data([agent("a")]))
    router.login(0, "a")
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    with pytest.raises(AgentAlreadyLoggedIn):
        router.login(20, "a")  # the ring timer (t=15) runs first, then the login is refused
    with pytest.raises(UnknownCall):
        router.ewt("gone")
    assert CancelOffer("c1", "a", "ring_timeout") in router.advance(20)


def test_a_call_restored_with_its_arrival_keeps_its_place_in_line() -> None:
    """A call queued again with ``arrived_at`` (after a restart or a failover) waits where its
    arrival puts it: ahead of a call that reached this router first but arrived later, and
    behind one that arrived earlier; a tie keeps the order the router took them in."""
    router = make([agent("a")])
    router.call_arrived(100, "later", "tech", "ru", "RU")
    router.call_arrived(101, "restored", "tech", "ru", "RU", arrived_at=90)
    router.call_arrived(102, "earliest", "tech", "ru", "RU", arrived_at=80)
    router.call_arrived(103, "tie", "tech", "ru", "RU", arrived_at=90)
    order: list[str] = []
    t = 104.0
    out = router.login(t, "a")
    for _ in range(4):
        (call,) = [c for c, _ in offered(out)]
        order.append(call)
        router.offer_answered(t, call, "a")
        router.hangup(t + 1, call)
        t += 20  # past the wrap-up: the agent is ready and takes the next call
        out = router.advance(t)
    assert order == ["earliest", "restored", "tie", "later"]
