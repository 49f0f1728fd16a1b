"""The wait estimate (EWT) from live state, and callback offers that never meet a ready agent.

The estimate is zero while an agent eligible for the call is ready, grows with the calls ahead
in the buckets the call waits in, follows agents' wrap-up ends and the expansion steps that
widen the pool, and is infinite only when no logged-in agent could ever take the call.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from routerkit import agent, build, center_data, drive, queue, small_router

from acd.callbacks.dialler import AttemptResult, CallbackDialer, DialPolicy, StoredCallback
from acd.core.model import AgentState, CallState, OfferCallback
from acd.core.selection import RESIDUAL_FLOOR
from acd.runtime.records import CallbackStore, open_database
from acd.testing.switchboard import Rules, Switchboard
from ivr.actions import CallbackTask

CALLBACK_AT_150 = queue(aht_hint_s=300, expansion=[{"after_s": 150, "offer_callback": True}])


def test_one_idle_eligible_agent_gives_zero_and_no_callback_offer() -> None:
    """A call requeued past its offer step while an eligible agent is ready is offered to that
    agent, never asked about a callback; the estimate for a new call is zero meanwhile."""
    router = small_router(center_data([agent("a"), agent("b")], {"tech": CALLBACK_AT_150}))
    router.login(0, "a")
    router.login(0, "b")
    for cid in ("busy-a", "busy-b"):
        router.call_arrived(0, cid, "tech", "ru", "RU")
        router.offer_answered(0, cid)
    router.call_arrived(1, "c1", "tech", "ru", "RU")
    router.hangup(140, "busy-b", wrap_up_s=0)  # b is free: c1 rings b
    assert router.call_state("c1") is CallState.RINGING
    assert router.ewt("c1", 140) == 0.0
    router.hangup(145, "busy-a", wrap_up_s=0)  # a is free and stays ready
    assert router.agent_state("a") is AgentState.READY
    assert router.ewt_new("tech", "ru", "RU", 145) == 0.0
    out = router.advance(155)  # b lets it ring out after the offer step's 150 s
    assert not [o for o in out if isinstance(o, OfferCallback)]
    assert router.agent_state("a") is AgentState.RINGING


def test_callback_offer_carries_the_live_estimate() -> None:
    """With every eligible agent busy the offer is made, with the live estimate of the wait."""
    router = small_router(center_data([agent("a")], {"tech": CALLBACK_AT_150}))
    router.login(0, "a")
    router.call_arrived(0, "busy", "tech", "ru", "RU")
    router.offer_answered(0, "busy")
    router.call_arrived(1, "c1", "tech", "ru", "RU")
    out = router.advance(151)
    (cb,) = [o for o in out if isinstance(o, OfferCallback)]
    assert cb.call_id == "c1" and cb.ewt_s == pytest.approx(router.ewt("c1", 151))
    # The one agent has talked 151 s of a mean 290 s talk (300 s handle, 10 s wrap-up): the
    # rest of the talk is taken as at least half the mean talk, then the wrap-up.
    assert cb.ewt_s == pytest.approx(max(290 - 151, RESIDUAL_FLOOR * 290) + 10)


def test_ready_agent_of_another_language_counts_only_from_the_fallback_step() -> None:
    """A Kazakh caller waits for the fallback step when only a Russian speaker is ready."""
    queues = {"tech": queue(aht_hint_s=600,
                            expansion=[{"after_s": 25, "accept_fallback_languages": True}])}
    router = small_router(center_data([agent("ru"), agent("kk", languages=["kk"])], queues,
                                      countries=["RU", "KZ"]))
    router.login(0, "ru")
    router.login(0, "kk")
    router.call_arrived(0, "busy", "tech", "kk", "KZ")
    router.offer_answered(0, "busy")
    assert router.ewt_new("tech", "ru", "RU", 0) == 0.0
    assert router.ewt_new("tech", "kk", "KZ", 0) == pytest.approx(25.0)
    router.call_arrived(10, "c1", "tech", "kk", "KZ")
    assert router.ewt("c1", 10) == pytest.approx(25.0)


def test_wrap_up_end_is_a_known_release() -> None:
    """An agent in wrap-up frees at its wrap-up's end: that is the wait of the next call."""
    router = small_router(center_data([agent("a")], {"tech": queue(aht_hint_s=300)}))
    router.login(0, "a")
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(0, "c1")
    router.hangup(100, "c1", wrap_up_s=40)
    assert router.ewt_new("tech", "ru", "RU", 110) == pytest.approx(30.0)


def test_calls_ahead_lengthen_the_wait_in_order() -> None:
    """Each call further back in the same bucket waits longer; a new call longest."""
    router = small_router(center_data([agent("a"), agent("b")], {"tech": queue(aht_hint_s=300)}))
    for a in ("a", "b"):
        router.login(0, a)
    for cid in ("busy-a", "busy-b"):
        router.call_arrived(0, cid, "tech", "ru", "RU")
        router.offer_answered(0, cid)
    for cid in ("c1", "c2", "c3"):
        router.call_arrived(1, cid, "tech", "ru", "RU")
    waits = [router.ewt(cid, 1) for cid in ("c1", "c2", "c3")]
    waits.append(router.ewt_new("tech", "ru", "RU", 1))
    assert 0 < waits[0] < waits[1] < waits[2] < waits[3] < math.inf


def test_other_language_calls_ahead_do_not_count() -> None:
    """Calls waiting for another language's agents do not lengthen a Russian caller's wait."""
    queues = {"tech": queue(aht_hint_s=300)}
    router = small_router(center_data([agent("ru"), agent("kk", languages=["kk"])], queues,
                                      countries=["RU", "KZ"]))
    router.login(0, "ru")
    router.login(0, "kk")
    for cid, lang, country in (("b1", "ru", "RU"), ("b2", "kk", "KZ")):
        router.call_arrived(0, cid, "tech", lang, country)
        router.offer_answered(0, cid)
    before = router.ewt_new("tech", "ru", "RU", 1)
    for i in range(5):
        router.call_arrived(1, f"kk{i}", "tech", "kk", "KZ")
    assert router.ewt_new("tech", "ru", "RU", 1) == pytest.approx(before)
    assert router.ewt_new("tech", "kk", "KZ", 1) > before


def test_unstaffed_is_infinite_and_bounded_by_the_maximum_wait_otherwise() -> None:
    """No logged-in agent: infinite; a finite estimate never passes the queue's maximum wait."""
    router = small_router(center_data([agent("a")],
                                      {"tech": queue(aht_hint_s=3000, max_wait_s=600)}))
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    assert math.isinf(router.ewt("c1", 0))
    router.login(1, "a")
    router.offer_answered(1, "c1")
    router.call_arrived(2, "c2", "tech", "ru", "RU")
    assert router.ewt("c2", 2) == pytest.approx(600.0)


def test_queue_snapshot_reports_the_new_call_estimate() -> None:
    """The API's queue snapshot shows the same estimate as ``ewt_new`` for the queue."""
    router = small_router(center_data([agent("a")], {"tech": queue(aht_hint_s=300)}))
    router.login(0, "a")
    assert router.queue_snapshot(0)[0].ewt_s == 0.0
    router.call_arrived(0, "c1", "tech", "ru", "RU")
    router.offer_answered(0, "c1")
    (snap,) = router.queue_snapshot(50)
    assert snap.ewt_s == pytest.approx(router.ewt_new("tech", now=50)) and snap.ewt_s > 0


class NoOutbound:
    """An Outbound for plans only: dialling it is a test failure."""

    async def call_back(self, callback: StoredCallback) -> AttemptResult:
        raise AssertionError("the test only plans")


def test_callback_pacing_follows_the_customers_own_pool(tmp_path: Path) -> None:
    """With three agents staffed, a Russian customer is called back while a Russian speaker is
    ready, and a Kazakh customer waits while the one Kazakh speaker talks."""
    queues = {"tech": queue(aht_hint_s=420)}
    router = small_router(center_data(
        [agent("ru1"), agent("ru2"), agent("kk", languages=["kk"])], queues,
        countries=["RU", "KZ"]))
    for a in ("ru1", "ru2", "kk"):
        router.login(0, a)
    for cid, lang, country in (("b1", "ru", "RU"), ("b2", "kk", "KZ")):
        router.call_arrived(0, cid, "tech", lang, country)
        router.offer_answered(0, cid)
    store = CallbackStore(open_database(tmp_path / "acd.sqlite3"))
    ru = store.insert(CallbackTask("tech", "ru", "RU", "+79161234567", 0, "voicemail"), 0.0)
    kk = store.insert(CallbackTask("tech", "kk", "KZ", "+77011234567", 0, "voicemail"), 0.0)
    dialer = CallbackDialer(store, NoOutbound(), DialPolicy(max_ewt_s=120.0, concurrency=5),
                            ewt=lambda q, lang, country: router.ewt_new(q, lang, country, 10))
    assert [cb.id for cb in dialer.plan(10.0)] == [ru]
    assert dialer.stats.held_by_pacing == 1 and kk != ru


CENTER = center_data(
    [agent("ru1"), agent("ru2", site="kyiv"), agent("kk", languages=["kk", "ru"]),
     agent("uk", site="kyiv", languages=["uk"]), agent("new", newcomer=True),
     agent("low", skills={"tech": 2})],
    {"tech": queue(aht_hint_s=120, routing={"sites": "home", "min_level": 4,
                                             "newcomers": "exclude"},
                   expansion=[{"after_s": 5, "min_level": 2}, {"after_s": 10, "add_sites": "all"},
                              {"after_s": 20, "offer_callback": True},
                              {"after_s": 30, "accept_fallback_languages": True},
                              {"after_s": 40, "include_newcomers": True}])},
    countries=["RU", "UA", "KZ"])


class EstimateChecked(Switchboard):
    """A switchboard that also checks the wait estimates against its model after each action."""

    def check(self) -> None:
        """The usual invariants, then: a new call's estimate is zero exactly when an agent its
        rule admits is ready, and a queued call's estimate is never zero (timers run)."""
        super().check()
        if self.timers_due():
            return  # a late driver: a wrap-up or step already due may free an agent (0 wait)
        for country, lang in (("RU", "ru"), ("UA", "uk"), ("KZ", "kk")):
            rules = Rules.of(self.config, "tech", 0, lang, country)
            ready = any(rules.admits(self.agents[a].profile) for a in self.ready)
            assert (self.router.ewt_new("tech", lang, country, self.now) == 0.0) is ready
        for call_id in self.calls_in(CallState.QUEUED):
            assert self.router.ewt(call_id, self.now) > 0.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(20, 200))
def test_no_callback_offer_and_zero_wait_exactly_while_an_eligible_agent_is_ready(
        seed: int, steps: int) -> None:
    """Under random traffic no OfferCallback is emitted while an eligible agent is ready (the
    switchboard checks every output against its own eligibility model), and the estimate is
    zero exactly when an eligible agent is ready."""
    config, agents = build(CENTER)
    sb = EstimateChecked(config, agents)
    for a in agents:
        sb.login(a.id)
    drive(sb, random.Random(seed), steps, unknown=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_seeded_runs_offer_callbacks_only_with_no_eligible_agent_ready(seed: int) -> None:
    """Long seeded runs make many callback offers, none while an eligible agent is ready."""
    config, agents = build(CENTER)
    sb = EstimateChecked(config, agents)
    for a in agents:
        sb.login(a.id)
    drive(sb, random.Random(seed), 1500, unknown=False)
    assert len([o for o in sb.log if isinstance(o, OfferCallback)]) >= 10
