"""Callbacks over ARI against the fake ARI server: dial, callback flow, queue, offer, bridge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arikit import Rig, eventually

from acd.asterisk.ari.outbound import CALLBACK_PREFIX, AriCallbacks, OutboundOptions
from acd.callbacks.dialler import AttemptResult, CallbackDialer, DialPolicy
from acd.core.model import AgentState, CallQueued, Outcome
from acd.runtime.records import CallbackStore, open_database
from acd.testing.fake_ari import AgentScript, FakeRequest
from ivr.actions import CallbackTask

UA_NUMBER = "+380441234567"
TRUNK_EP = f"PJSIP/{UA_NUMBER}@trunk"
UK_AGENT = "kyi-tech-uk-001"
CENTER_NUMBER = "+74950000000"


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


@pytest.fixture
def store(tmp_path: Path) -> CallbackStore:
    return CallbackStore(open_database(tmp_path / "acd.sqlite3"))


def voicemail_task(number: str = UA_NUMBER) -> CallbackTask:
    return CallbackTask("tech", "uk", "UA", number, 0, "voicemail", "acd-vm-1", "cust-42")


def dialer_for(rig: Rig, store: CallbackStore, outbound: AriCallbacks, clock: Clock,
               **policy: float) -> CallbackDialer:
    return CallbackDialer(store, outbound, DialPolicy(**policy),  # type: ignore[arg-type]
                          ewt=rig.service.ewt_new,
                          hours=rig.setup.flows["main"].calendar.state, clock=clock)


async def settle(dialer: CallbackDialer) -> list[AttemptResult]:
    """Wait for every running attempt and return their results."""
    return list(await asyncio.wait_for(asyncio.gather(*dialer.in_flight.values()), 10.0))


def originates(rig: Rig) -> list[FakeRequest]:
    """Every POST /channels the fake served (customer legs, then agent legs)."""
    return [r for r in rig.fake.requests if r.method == "POST" and r.path == "/channels"]


def customer_leg(rig: Rig) -> str | None:
    return next((c for c in rig.fake.channels if c.startswith(CALLBACK_PREFIX)), None)


async def test_voicemail_task_is_called_back_queued_with_priority_and_bridged(
        rig: Rig, store: CallbackStore) -> None:
    """A stored voicemail task is dialled; "1" queues it with raised priority; an agent talks."""
    rig.service.login(UK_AGENT)
    rig.fake.script_agent(TRUNK_EP, AgentScript(answer_after=0.2))
    task_id = store.insert(voicemail_task())
    outbound = AriCallbacks(rig.app, OutboundOptions(caller_id=CENTER_NUMBER))
    clock = Clock()
    dialer = dialer_for(rig, store, outbound, clock, max_ewt_s=600.0)
    assert dialer.start_due() == [task_id]
    await eventually(lambda: originates(rig), what="customer leg originated")
    originate = originates(rig)[0]
    assert originate.params["endpoint"] == TRUNK_EP
    assert originate.params["appArgs"] == f"callback,{task_id}"
    assert originate.params["callerId"] == CENTER_NUMBER
    leg = originate.params["channelId"]
    assert leg.startswith(CALLBACK_PREFIX)
    await eventually(lambda: rig.prompt_started(leg, "callback_greeting"), what="greeting")
    greeting = next(e for e in rig.fake.event_log if e["type"] == "PlaybackStarted")
    assert greeting["playback"]["media_uri"] == "sound:acd/uk/callback_greeting"
    await rig.fake.send_dtmf(leg, "1")
    assert await settle(dialer) == [AttemptResult.QUEUED]
    await eventually(lambda: rig.talking(leg), what="customer and agent bridged")
    queued = [o for o in rig.outputs if isinstance(o, CallQueued) and o.call_id == leg]
    assert [(q.queue, q.language, q.country) for q in queued] == [("tech", "uk", "UA")]
    # What the router was given is kept on the channel: queue|language|country|priority|...
    slot = rig.fake.channels[leg].variables["ACD_QUEUED"].split("|")
    assert slot[:5] == ["tech", "uk", "UA", "20", "cust-42"]
    assert rig.agent_state(UK_AGENT) is AgentState.ON_CALL
    agent_leg = rig.leg_of(leg)
    agent_originate = originates(rig)[1]
    assert agent_originate.params["callerId"] == UA_NUMBER  # the agent sees the customer
    stored = store.get(task_id)
    assert stored is not None and stored.status == "done" and stored.attempts == 1
    assert agent_leg is not None
    rig.fake.hangup(agent_leg)
    await eventually(lambda: rig.ended(leg) is not None and not rig.fake.bridges)
    assert rig.ended(leg).outcome is Outcome.ANSWERED  # type: ignore[union-attr]


async def test_no_answer_is_retried_after_the_delay_then_given_up(
        rig: Rig, store: CallbackStore) -> None:
    """An unanswered leg is retried only after retry_delay_s, and fails after max_attempts."""
    rig.service.login(UK_AGENT)
    rig.fake.script_agent(TRUNK_EP, AgentScript(answer_after=None))
    task_id = store.insert(voicemail_task())
    outbound = AriCallbacks(rig.app, OutboundOptions(ring_timeout_s=2.0))  # 0.1 s at speed 20
    clock = Clock()
    dialer = dialer_for(rig, store, outbound, clock, retry_delay_s=300.0, max_attempts=2,
                        max_ewt_s=600.0)
    assert dialer.start_due() == [task_id]
    assert await settle(dialer) == [AttemptResult.NO_ANSWER]
    first = store.get(task_id)
    assert first is not None and first.status == "open" and first.attempts == 1
    assert first.next_attempt == clock.now + 300.0
    assert first.last_result == "no_answer"
    clock.now += 299.0
    assert dialer.start_due() == []
    clock.now += 2.0
    assert dialer.start_due() == [task_id]
    assert await settle(dialer) == [AttemptResult.NO_ANSWER]
    last = store.get(task_id)
    assert last is not None and last.status == "failed" and last.attempts == 2
    clock.now += 10_000.0
    assert dialer.start_due() == []
    assert not any(c.startswith(CALLBACK_PREFIX) for c in rig.fake.channels)


async def test_busy_customer_is_a_busy_attempt(rig: Rig, store: CallbackStore) -> None:
    """A busy customer line ends the attempt as busy and the task waits for a retry."""
    rig.service.login(UK_AGENT)
    rig.fake.script_agent(TRUNK_EP, AgentScript(busy=True))
    task_id = store.insert(voicemail_task())
    dialer = dialer_for(rig, store, AriCallbacks(rig.app), Clock(), max_ewt_s=600.0)
    dialer.start_due()
    assert await settle(dialer) == [AttemptResult.BUSY]
    stored = store.get(task_id)
    assert stored is not None and stored.status == "open" and stored.last_result == "busy"


async def test_customer_hanging_up_in_the_greeting_is_declined(
        rig: Rig, store: CallbackStore) -> None:
    """A customer who hangs up before pressing 1 is never queued; the task is retried."""
    rig.service.login(UK_AGENT)
    task_id = store.insert(voicemail_task())
    dialer = dialer_for(rig, store, AriCallbacks(rig.app), Clock(), max_ewt_s=600.0)
    dialer.start_due()
    await eventually(lambda: customer_leg(rig) is not None
                     and rig.prompt_started(customer_leg(rig) or "", "callback_greeting"))
    leg = customer_leg(rig)
    assert leg is not None
    rig.fake.hangup(leg)
    assert await settle(dialer) == [AttemptResult.DECLINED]
    assert not any(isinstance(o, CallQueued) for o in rig.outputs)
    stored = store.get(task_id)
    assert stored is not None and stored.status == "open"
    await eventually(lambda: not rig.app.calls)


async def test_callback_leg_nobody_dialled_is_hung_up(rig: Rig) -> None:
    """A channel entering Stasis as a callback the engine did not originate is hung up."""
    outbound = AriCallbacks(rig.app)
    channel_id = rig.fake.inject_call(UA_NUMBER, "Evil", ("callback", "1"))
    await eventually(lambda: channel_id not in rig.fake.channels, what="stray leg hung up")
    assert outbound.stats.refused_legs == 1
    assert not rig.app.calls


async def test_pacing_keeps_tasks_while_the_queue_is_unstaffed(
        rig: Rig, store: CallbackStore) -> None:
    """With nobody logged in the estimated wait is infinite: no customer is called back."""
    task_id = store.insert(voicemail_task())
    dialer = dialer_for(rig, store, AriCallbacks(rig.app), Clock(), max_ewt_s=600.0)
    assert dialer.start_due() == []
    assert dialer.stats.held_by_pacing == 1
    assert not originates(rig)
    rig.service.login(UK_AGENT)
    assert dialer.start_due() == [task_id]
    await dialer.close()
