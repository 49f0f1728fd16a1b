"""The flow interpreter over FakeChannel: reference paths, hop limit, customers, hostile ids."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ivr import actions as a
from ivr.caller import resolve_caller
from ivr.channel import FakeChannel, run_flow
from ivr.engine import CallContext, FlowRun
from ivr.loader import load_flow
from ivr.testing import CALLBACK, KNOWN, MAIN, compile_flow, drive, small_flow

MSK = ZoneInfo("Europe/Moscow")
WEEKDAY_NOON = datetime(2026, 3, 4, 12, 0, tzinfo=MSK)  # a Wednesday, no holiday
MAIN_FLOW = load_flow(MAIN, KNOWN)


def ctx(caller: str = "+79161234567", when: datetime = WEEKDAY_NOON) -> CallContext:
    """A call context at ``when``."""
    return CallContext.at_time(caller, when)


async def test_orders_choice_queues_in_caller_language() -> None:
    """A Kazakh caller who keeps Kazakh and presses 2 is queued to orders in kk from KZ."""
    ch = FakeChannel(digits=[None, "2"])
    out = await run_flow(MAIN_FLOW, ctx("+77012345678"), ch)
    assert (out.status, out.queue, out.language, out.country) == ("queued", "orders", "kk", "KZ")
    assert ch.played[:3] == ["welcome", "choose_russian", "main_menu"]
    assert ch.log[0] == "play acd/kk/welcome"


async def test_press_9_switches_to_russian() -> None:
    """The language menu's 9 overrides the country's native language."""
    ch = FakeChannel(digits=["9", "1"])
    out = await run_flow(MAIN_FLOW, ctx("+380441234567"), ch)
    assert (out.queue, out.language, out.country) == ("tech", "ru", "UA")
    assert "play acd/ru/welcome" not in ch.log and "collect acd/ru/main_menu max=1" in ch.log


async def test_repair_status_self_service() -> None:
    """Repair status: the order number (up to 10 digits) is looked up and its status played."""
    ch = FakeChannel(digits=["3", "1", "4815162342", None], orders={"4815162342": "ready"})
    out = await run_flow(MAIN_FLOW, ctx(), ch)
    assert "lookup_order 4815162342" in ch.log and "order_ready" in ch.played
    assert (out.status, out.reason) == ("hangup", "self_service")
    assert "collect acd/ru/enter_order_number max=10" in ch.log


async def test_complaint_card_escalates_to_voc() -> None:
    """A customer card with an open complaint goes to voc with raised priority."""
    card = a.CustomerCard("c1", "+79161234567", open_complaint=True)
    ch = FakeChannel(digits=[], cards={"+79161234567": [card]})
    out = await run_flow(MAIN_FLOW, ctx(), ch)
    assert (out.queue, out.priority, out.variables["escalation"]) == ("voc", 5, "complaint")


async def test_voc_after_hours_takes_voicemail_and_creates_callback() -> None:
    """Pressing 0 on Saturday: voc is closed, the caller leaves a message, a callback is stored."""
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=MSK)
    ch = FakeChannel(digits=["0", "1"])
    out = await run_flow(MAIN_FLOW, ctx(when=saturday), ch)
    assert out.status == "voicemail" and out.callback is not None
    assert (out.callback.queue, out.callback.recording) == ("voc", "vm-0001")
    assert ch.callbacks == [out.callback] and ch.log[-1] == "hangup voicemail"


async def test_long_wait_offers_callback() -> None:
    """An estimated wait over 240 s offers a callback; pressing 1 creates the task and hangs up."""
    ch = FakeChannel(digits=["1", "1"], ewt={"tech": 400.0})
    out = await run_flow(MAIN_FLOW, ctx(), ch)
    assert out.status == "callback" and out.callback is not None
    assert (out.callback.reason, out.callback.number) == ("offer", "+79161234567")


async def test_vip_gets_priority_and_duplicates_are_flagged() -> None:
    """Two cards on one number: the most recently active wins and the call is flagged."""
    old = a.CustomerCard("old", "+79161234567", tier="standard",
                         last_active=datetime(2024, 1, 1, tzinfo=UTC))
    new = a.CustomerCard("new", "+79161234567", tier="vip",
                         last_active=datetime(2026, 2, 1, tzinfo=UTC))
    ch = FakeChannel(digits=["1"], cards={"+79161234567": [old, new]})
    out = await run_flow(MAIN_FLOW, ctx(), ch)
    assert out.variables["customer_id"] == "new" and out.variables["duplicate_customer"] == "true"
    assert out.priority == 10


def test_choose_card_tie_and_never_active() -> None:
    """Never-active cards lose to active ones; equal activity goes to the smallest id."""
    t = datetime(2026, 1, 1, tzinfo=UTC)
    cards = [a.CustomerCard("b", "+7", last_active=t), a.CustomerCard("a", "+7", last_active=t),
             a.CustomerCard("0", "+7")]
    assert a.choose_card(cards) == (cards[1], True)
    assert a.choose_card([]) == (None, False)


async def test_caller_hangup_gives_abandoned() -> None:
    """A hangup during the IVR ends the run with outcome abandoned and the path so far."""
    ch = FakeChannel(digits=["1"], hang_up_at=2)
    out = await run_flow(MAIN_FLOW, ctx(), ch)
    assert out.status == "abandoned" and out.path == ("welcome", "native_check", "lookup")


async def test_callback_flow_raises_priority() -> None:
    """The outbound callback flow queues to the task's queue with priority raised by 20."""
    flow = load_flow(CALLBACK, KNOWN)
    c = CallContext.at_time("+77012345678", WEEKDAY_NOON, language="kk",
                            variables={"queue": "repair"})
    out = await run_flow(flow, c, FakeChannel(digits=["1"]))
    assert (out.queue, out.language, out.priority) == ("repair", "kk", 20)
    declined = await run_flow(flow, c, FakeChannel(digits=[]))
    assert (declined.status, declined.reason) == ("hangup", "callback_declined")


def test_hop_limit_ends_a_looping_flow_in_the_default_queue() -> None:
    """A caller who keeps choosing a repeat option is queued to the default queue at the limit."""
    data = small_flow(menu={"type": "menu", "prompt": "menu",
                            "options": {"1": "q", "0": "again"}, "on_fail": "q"},
                      again={"type": "goto", "next": "menu"})
    data["hop_limit"] = 10
    run, actions = drive(compile_flow(data), ctx(), digits=["0"] * 100)
    assert run.outcome is not None and run.outcome.status == "hop_limit"
    assert actions[-1] == a.Queue("tech", "ru", "RU", 0, run.outcome.variables)
    assert run.hops == 11


def test_transfer_goes_to_configured_number() -> None:
    """A transfer node ends the flow with the E.164 number written in the flow."""
    data = small_flow(q={"type": "transfer", "number": "+74951234567"})
    run, actions = drive(compile_flow(data), ctx(), digits=["1"])
    assert actions[-1] == a.Transfer("+74951234567")
    assert run.outcome is not None and run.outcome.transfer_number == "+74951234567"


@pytest.mark.parametrize("caller", [
    '"; DROP TABLE customers; --', "+7916\n1234567", "x" * 1024, "", "\x00\x1b[2J",
    "+" + "9" * 200, "٣٣٣٣٣٣٣٣٣٣", "anonymous", "+7 (916) 123-45-67 ext 99",
])
def test_hostile_caller_ids_never_crash(caller: str) -> None:
    """Any caller id yields a country and language and runs the reference flow to the end."""
    info = resolve_caller(caller, KNOWN)
    assert info.language in KNOWN.languages
    assert info.country in KNOWN.countries or info.country == "other"
    run, actions = drive(MAIN_FLOW, ctx(caller), digits=["2"])
    assert run.outcome is not None and run.outcome.status in ("queued", "voicemail")
    # No lookup is ever made with a number that is not E.164.
    for act in actions:
        if isinstance(act, a.LookupCustomer):
            assert act.number.startswith("+") and act.number[1:].isdigit()


def test_unknown_number_gets_center_defaults() -> None:
    """A number outside the 12 countries gets language ru and country other."""
    info = resolve_caller("+4930123456", KNOWN)
    assert (info.number, info.country, info.language) == ("+4930123456", "other", "ru")
    assert resolve_caller("89161234567", KNOWN).country == "RU"
    assert resolve_caller("+77012345678", KNOWN).language == "kk"


def test_hostile_digits_are_no_input() -> None:
    """Over-long, non-digit or non-string DTMF results count as no input, never as a value."""
    data = small_flow(menu={"type": "collect", "prompt": "menu", "into": "order_number",
                            "max_digits": 4, "retries": 3, "next": "q", "on_fail": "q"})
    run, _ = drive(compile_flow(data), ctx(), digits=["12345", "12a", "\n1", "12#"])
    assert run.outcome is not None and run.outcome.variables["order_number"] == "12"


def test_run_refuses_misuse() -> None:
    """send() before start() and after the end are errors naming the flow."""
    run = FlowRun(MAIN_FLOW, ctx())
    with pytest.raises(RuntimeError, match="not started"):
        run.send(None)
    run, _ = drive(MAIN_FLOW, ctx(), digits=["1"])
    with pytest.raises(RuntimeError, match="already ended"):
        run.send(None)


def test_pre_resolved_country_still_checks_the_number() -> None:
    """With a driver-given country, a caller id not shaped like E.164 is never looked up."""
    c = CallContext('+7"; DROP TABLE x', WEEKDAY_NOON.timestamp(), country="KZ")
    run, actions = drive(MAIN_FLOW, c, digits=[None, "1"])
    assert not any(isinstance(x, a.LookupCustomer) for x in actions)
    assert run.outcome is not None and (run.outcome.country, run.outcome.language) == ("KZ", "kk")
    c = CallContext("+77012345678", WEEKDAY_NOON.timestamp(), country="XX")
    run, actions = drive(MAIN_FLOW, c, digits=["1"])
    assert run.outcome is not None and run.outcome.country == "other"
    assert a.LookupCustomer("+77012345678") in actions
