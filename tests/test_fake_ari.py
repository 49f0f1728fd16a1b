"""Behaviour of the fake ARI server beyond the three recordings: agent scripts, faults, time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest

from acd.asterisk.ari import (
    AriClient,
    BridgeDestroyed,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelEnteredBridge,
    Dial,
    PlaybackFinished,
    StasisStart,
)
from acd.testing.fake_ari import AgentScript, EventTap, FakeAri


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    """A fake Asterisk at 10x speed."""
    async with FakeAri(speed=10) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAri) -> AsyncIterator[AriClient]:
    """A client for the fake."""
    async with AriClient(fake.url, fake.username, fake.password) as client:
        yield client


async def test_auth_challenge_and_api_key(fake: FakeAri) -> None:
    """No credentials: 401 with a Basic challenge; ?api_key=user:password is accepted."""
    async with aiohttp.ClientSession() as session:
        async with session.get(fake.url + "/ari/channels") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
            assert await resp.text() == '{"message":"Authentication required"}'
        key = f"{fake.username}:{fake.password}"
        async with session.get(fake.url + "/ari/channels", params={"api_key": key}) as resp:
            assert resp.status == 200
        token = base64.b64encode(b"acd:wrong").decode()
        headers = {"Authorization": f"Basic {token}"}
        async with session.get(fake.url + "/ari/channels", headers=headers) as resp:
            assert resp.status == 401


async def test_inject_call_enters_stasis_ringing(fake: FakeAri, ari: AriClient) -> None:
    """inject_call gives StasisStart with the args, the caller id and state Ring."""
    async with EventTap(ari) as tap:
        cid = fake.inject_call("+77011234567", "Айгерим", args=("8800300", "kk"), language="kk")
        start = await tap.wait_for(StasisStart)
        assert start.channel.id == cid and start.args == ("8800300", "kk")
        assert (start.channel.caller_name, start.channel.caller_number) == (
            "Айгерим",
            "+77011234567",
        )
        assert (start.channel.state, start.channel.language) == ("Ring", "kk")
        assert start.channel.dialplan.app_data == "acd,8800300,kk"


async def test_agent_answering_after_delay_rings_first(fake: FakeAri, ari: AriClient) -> None:
    """An agent scripted to answer after 2 s rings (Dial RINGING), then answers into Stasis."""
    fake.script_agent("PJSIP/1001", AgentScript(answer_after=2.0))
    loop = asyncio.get_running_loop()
    async with EventTap(ari) as tap:
        started = loop.time()
        agent = await ari.originate("PJSIP/1001", app_args="agent,1001", timeout=10)
        await tap.wait_for(StasisStart, lambda e: e.channel.id == agent.id)
        elapsed = loop.time() - started
        statuses = [e.dialstatus for e in tap.events if isinstance(e, Dial)]
        assert statuses == ["", "RINGING", "ANSWER"]
        assert 0.15 <= elapsed < 1.0  # 2 s at speed 10


async def test_agent_slower_than_ring_timeout_is_rona(fake: FakeAri, ari: AriClient) -> None:
    """Answering later than the ring timeout means ChannelDestroyed cause 19 and no StasisStart."""
    fake.script_agent("Local/1003@agents", AgentScript(answer_after=5.0))
    async with EventTap(ari) as tap:
        agent = await ari.originate("Local/1003@agents", app_args="agent,1003", timeout=2)
        gone = await tap.wait_for(ChannelDestroyed, lambda e: e.channel.id == agent.id)
        assert (gone.cause, gone.cause_txt) == (19, "User alerting, no answer")
        await asyncio.sleep(0.4)
        assert "StasisStart" not in tap.types()
        assert fake.channels == {}


async def test_busy_agent(fake: FakeAri, ari: AriClient) -> None:
    """A busy agent gives Dial BUSY and ChannelDestroyed cause 17 at once."""
    fake.script_agent("Local/1004@agents", AgentScript(busy=True))
    async with EventTap(ari) as tap:
        agent = await ari.originate("Local/1004@agents", app_args="agent,1004")
        gone = await tap.wait_for(ChannelDestroyed, lambda e: e.channel.id == agent.id)
        assert gone.cause == 17
        assert [e.dialstatus for e in tap.events if isinstance(e, Dial)] == ["", "BUSY"]


async def test_withdrawing_a_ringing_offer(fake: FakeAri, ari: AriClient) -> None:
    """DELETE on a ringing agent leg cancels the dial and destroys it; no timer fires later."""
    fake.script_agent("Local/1005@agents", AgentScript(answer_after=None))
    async with EventTap(ari) as tap:
        agent = await ari.originate("Local/1005@agents", timeout=1)
        await tap.wait_for(Dial, lambda e: e.dialstatus == "RINGING")
        await ari.hangup(agent.id, reason="normal")
        gone = await tap.wait_for(ChannelDestroyed)
        assert gone.cause == 16
        await asyncio.sleep(0.2)  # past the 1 s ring timeout at speed 10
        assert [e.dialstatus for e in tap.events if isinstance(e, Dial)] == [
            "",
            "RINGING",
            "CANCEL",
        ]
        assert tap.types().count("ChannelDestroyed") == 1


async def test_bridge_outlives_participants_until_deleted(fake: FakeAri, ari: AriClient) -> None:
    """A holding bridge stays after its caller hangs up, and BridgeDestroyed follows DELETE."""
    async with EventTap(ari) as tap:
        caller = fake.inject_call()
        bridge = await ari.create_bridge("holding", bridge_id="hold-tech")
        await ari.add_channel(bridge.id, caller)
        entered = await tap.wait_for(ChannelEnteredBridge)
        assert entered.bridge.channels == (caller,)
        fake.hangup(caller)
        assert (await ari.get_bridge("hold-tech")).channels == ()
        assert (await ari.get_application()).bridge_ids == ("hold-tech",)
        await ari.destroy_bridge("hold-tech")
        destroyed = await tap.wait_for(BridgeDestroyed)
        assert destroyed.bridge.id == "hold-tech"


async def test_events_while_disconnected_are_lost(fake: FakeAri, ari: AriClient) -> None:
    """Like Asterisk, the fake does not queue events for a websocket that is down."""
    fake.inject_call()
    assert fake.event_log[-1]["type"] == "StasisStart"
    async with EventTap(ari) as tap:
        second = fake.inject_call()
        start = await tap.wait_for(StasisStart)
        assert start.channel.id == second
        assert tap.types() == ["StasisStart"]


async def test_reordered_events_arrive_reversed(fake: FakeAri, ari: AriClient) -> None:
    """reorder_next_events(n) holds n events and delivers them in reverse order."""
    async with EventTap(ari) as tap:
        caller = fake.inject_call()
        await tap.wait_for(StasisStart)
        fake.reorder_next_events(3)
        await fake.send_dtmf(caller, "123", gap_s=0)
        for _ in range(3):
            await tap.wait_for(ChannelDtmfReceived)
        digits = [e.digit for e in tap.events if isinstance(e, ChannelDtmfReceived)]
        assert digits == ["3", "2", "1"]


async def test_speed_factor_scales_media(ari: AriClient) -> None:
    """A 2 s prompt at speed 20 finishes in about 0.1 s of real time."""
    async with FakeAri(speed=20, media_seconds={"sound:queue-periodic-announce": 2.0}) as fast:
        client = AriClient(fast.url, fast.username, fast.password)
        async with client, EventTap(client) as tap:
            caller = fast.inject_call()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.play(caller, "sound:queue-periodic-announce")
            await tap.wait_for(PlaybackFinished)
            assert 0.08 <= loop.time() - started < 0.5


async def test_requests_and_bad_inputs_are_recorded(fake: FakeAri, ari: AriClient) -> None:
    """Every REST call is kept with its status; bad DTMF digits are refused by the control."""
    caller = fake.inject_call()
    await ari.answer(caller)
    with pytest.raises(ValueError, match="Not DTMF"):
        await fake.send_dtmf(caller, "12x")
    assert [(r.method, r.path, r.status) for r in fake.requests] == [
        ("POST", f"/channels/{caller}/answer", 204)
    ]
