"""AriClient against the fake ARI server: error mapping, deadlines, reconnects, secrecy."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import AsyncIterator

import pytest

from acd.asterisk.ari import (
    AriAuthError,
    AriBadRequest,
    AriClient,
    AriConflict,
    AriConnectionError,
    AriNotFound,
    AriServerError,
    AriTimeout,
    ChannelVarset,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    WebsocketConnected,
    WebsocketReconnected,
    backoff_delay,
)
from acd.asterisk.ari.client import basic_authorization
from acd.testing.fake_ari import EventTap, FakeAri

PASSWORD = "s3cret-Passw0rd"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    """A fake Asterisk at 20x speed with a recognisable password."""
    async with FakeAri(speed=20, password=PASSWORD) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAri) -> AsyncIterator[AriClient]:
    """A client with the right credentials and a short request deadline."""
    async with AriClient(fake.url, fake.username, PASSWORD, request_timeout=0.5) as client:
        yield client


async def test_wrong_password_is_auth_error(fake: FakeAri) -> None:
    """A 401 from Asterisk raises AriAuthError, on REST and on the event websocket."""
    async with AriClient(fake.url, fake.username, "wrong") as bad:
        with pytest.raises(AriAuthError) as info:
            await bad.list_channels()
        assert info.value.status == 401
        assert info.value.message == "Authentication required"
        with pytest.raises(AriAuthError):
            async for _ in bad.events():
                pass


async def test_unknown_ids_raise_not_found_with_asterisk_message(ari: AriClient) -> None:
    """404s map to AriNotFound carrying Asterisk's message for channels, bridges, playbacks."""
    with pytest.raises(AriNotFound, match="Channel not found"):
        await ari.get_channel("nonexistent")
    with pytest.raises(AriNotFound, match="Bridge not found"):
        await ari.destroy_bridge("no-such-bridge")
    with pytest.raises(AriNotFound, match="Playback not found"):
        await ari.stop_playback("no-such-playback")
    with pytest.raises(AriNotFound):
        await ari.get_application("other-app")


async def test_conflict_and_bad_request_mapping(fake: FakeAri, ari: AriClient) -> None:
    """409 (not in Stasis, duplicate id) is AriConflict; 400 and 422 are AriBadRequest."""
    leg1 = await ari.originate("Local/8800100@stasis", context="caller", extension="s")
    with pytest.raises(AriConflict):
        await ari.answer(leg1.id)  # the dialling leg is not in Stasis
    await ari.originate("Local/1001@agents", channel_id="agent-1")
    with pytest.raises(AriConflict):
        await ari.originate("Local/1001@agents", channel_id="agent-1")
    bridge = await ari.create_bridge("holding")
    with pytest.raises(AriBadRequest) as info:
        await ari.add_channel(bridge.id, "ghost")
    assert info.value.status == 400
    caller = fake.stasis_channel_ids()[0]
    with pytest.raises(AriBadRequest) as info:
        await ari.remove_channel(bridge.id, caller)
    assert info.value.status == 422
    with pytest.raises(AriBadRequest):
        await ari.request("DELETE", f"/channels/{caller}", params={"reason": "bogus"})


async def test_server_errors_map_and_pass(fake: FakeAri, ari: AriClient) -> None:
    """Injected 500 and 503 raise AriServerError; the request after them succeeds."""
    fake.fail_next(1, 500)
    fake.fail_next(1, 503)
    with pytest.raises(AriServerError) as info:
        await ari.list_channels()
    assert info.value.status == 500
    with pytest.raises(AriServerError):
        await ari.list_bridges()
    assert await ari.list_channels() == []


async def test_slow_answer_raises_timeout_within_deadline(fake: FakeAri, ari: AriClient) -> None:
    """A request past its deadline raises AriTimeout promptly; a per-call deadline overrides."""
    loop = asyncio.get_running_loop()
    fake.delay_next(1, 0.8)
    started = loop.time()
    with pytest.raises(AriTimeout):
        await ari.list_channels()  # the client's default deadline is 0.5 s
    assert loop.time() - started < 0.75
    fake.delay_next(1, 0.3)
    with pytest.raises(AriTimeout):
        await ari.request("GET", "/channels", timeout=0.1)
    fake.delay_next(1, 0.1)
    assert await ari.request("GET", "/channels", timeout=1.0) == []


async def test_unreachable_asterisk_is_connection_error() -> None:
    """Nothing listening on the port raises AriConnectionError, not a raw aiohttp error."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AriClient(f"http://127.0.0.1:{port}", "u", "p") as client:
        with pytest.raises(AriConnectionError):
            await client.list_channels()


def test_backoff_is_exponential_capped_jittered_and_seeded() -> None:
    """Delays double up to the cap, stay within [nominal/2, nominal], and repeat per seed."""
    a = [backoff_delay(n, random.Random(7), 0.5, 8.0) for n in range(1, 9)]
    b = [backoff_delay(n, random.Random(7), 0.5, 8.0) for n in range(1, 9)]
    assert a == b
    nominal = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    for delay, cap in zip(a, nominal, strict=True):
        assert cap / 2 <= delay <= cap


async def test_reconnects_with_backoff_and_yields_marker(fake: FakeAri) -> None:
    """After a drop and two refused attempts the client sleeps the seeded backoff schedule,
    yields WebsocketReconnected(attempts=3), and receives events again."""
    delays: list[float] = []

    async def fast_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0.01)

    client = AriClient(fake.url, fake.username, PASSWORD, rng=random.Random(42), sleep=fast_sleep)
    async with client, EventTap(client) as tap:
        await fake.drop_websocket(refuse_next=2)
        marker = await tap.wait_for(WebsocketReconnected)
        assert marker.attempts == 3
        assert marker.downtime_s > 0
        expected_rng = random.Random(42)
        assert delays == [backoff_delay(n, expected_rng, 0.5, 30.0) for n in (1, 2, 3)]
        assert client.connections == 2 and client.connected.is_set()
        caller = fake.inject_call()
        start = await tap.wait_for(StasisStart)
        assert start.channel.id == caller
        assert tap.types(synthetic=True)[:2] == ["WebsocketConnected", "WebsocketReconnected"]


async def test_unknown_and_malformed_events(
    fake: FakeAri, ari: AriClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown types arrive as UnknownEvent; malformed ones are logged and skipped, not fatal."""
    async with EventTap(ari) as tap:
        fake.send_event({"type": "FancyNewEvent", "application": "acd", "extra": [1, 2]})
        fake.send_raw("this is not json")
        fake.send_raw("[1, 2, 3]")
        fake.send_event({"type": "ChannelDtmfReceived", "digit": 5, "channel": {"id": "x"}})
        fake.send_event({"type": "StasisStart", "args": [], "channel": {"name": "no id"}})
        fake.inject_call()
        await tap.wait_for(StasisStart)
        unknown = await tap.wait_for(UnknownEvent)
        assert unknown.type == "FancyNewEvent" and unknown.raw["extra"] == [1, 2]
        assert tap.types() == ["FancyNewEvent", "StasisStart"]
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 4


async def test_oversized_message_drops_and_reconnects(fake: FakeAri) -> None:
    """A message over max_message_bytes closes that websocket; the client reconnects."""
    client = AriClient(
        fake.url, fake.username, PASSWORD, max_message_bytes=2048, backoff_initial=0.02
    )
    async with client, EventTap(client) as tap:
        fake.send_event({"type": "Huge", "blob": "x" * 10_000})
        await tap.wait_for(WebsocketReconnected)
        fake.inject_call()
        await tap.wait_for(StasisStart)
        assert "Huge" not in tap.types()


async def test_channel_operations_round_trip(fake: FakeAri, ari: AriClient) -> None:
    """Originate variables, ids with ';', channel variables and continue reach the fake."""
    async with EventTap(ari) as tap:
        agent = await ari.originate(
            "Local/1001@agents",
            app_args=["agent", "1001"],
            caller_id='"Support" <8800100>',
            channel_id="offer-7",
            variables={"ACD_CALL_ID": "c-1"},
        )
        assert fake.channels["offer-7"].variables["ACD_CALL_ID"] == "c-1"
        assert (await ari.get_channel("offer-7;2")).name.endswith(";2")
        await tap.wait_for(StasisStart, lambda e: e.channel.id == agent.id)
        await ari.set_channel_var(agent.id, "ACD_AGENT", "1001")
        varset = await tap.wait_for(ChannelVarset, lambda e: e.variable == "ACD_AGENT")
        assert varset.value == "1001"
        caller = fake.inject_call(args=("8800100", "ru"))
        await ari.ring(caller)
        await ari.continue_in_dialplan(caller, context="fallback", extension="s", priority=1)
        end = await tap.wait_for(StasisEnd)
        assert end.channel.id == caller
        assert caller not in (await ari.get_application()).channel_ids
    with pytest.raises(ValueError, match="valid reasons"):
        await ari.hangup(agent.id, reason="because")
    with pytest.raises(ValueError, match="comma"):
        await ari.originate("Local/1@agents", app_args=["a,b"])


async def test_prompts_and_moh(fake: FakeAri, ari: AriClient) -> None:
    """Playing a list of prompts, MOH on and off, listing bridges: the typed results match."""
    async with EventTap(ari) as tap:
        caller = fake.inject_call()
        await ari.answer(caller)
        playback = await ari.play(caller, ["sound:beep", "sound:beep"], lang="uk")
        assert playback.channel_id == caller and playback.language == "uk"
        finished = await tap.wait_for(PlaybackFinished)
        assert finished.playback.state == "done"
        hold = await ari.create_bridge("holding", name="queue-tech")
        await ari.add_channel(hold.id, caller)
        await ari.start_moh(hold.id)
        assert fake.bridges[hold.id].moh_class == "default"
        await ari.stop_moh(hold.id)
        assert fake.bridges[hold.id].moh_class is None
        assert [b.id for b in await ari.list_bridges()] == [hold.id]
        await ari.hangup(caller, reason="normal")
        await tap.wait_for(StasisEnd)


async def test_close_ends_event_iteration(fake: FakeAri) -> None:
    """Closing the client ends a running events() loop instead of reconnecting forever."""
    client = AriClient(fake.url, fake.username, PASSWORD)
    seen: list[Event] = []

    async def consume() -> None:
        async for event in client.events():
            seen.append(event)

    task = asyncio.create_task(consume())
    await fake.wait_subscribed()
    await client.close()
    await asyncio.wait_for(task, 2.0)
    assert isinstance(seen[0], WebsocketConnected)
    assert not client.connected.is_set()


def test_base_url_forms() -> None:
    """The /ari root is added once, and credentials inside the URL are refused unechoed."""
    assert "'http://h:8088/ari'" in repr(AriClient("http://h:8088", "u", "p"))
    assert "'http://h:8088/ari'" in repr(AriClient("http://h:8088/ari/", "u", "p"))
    with pytest.raises(ValueError) as info:
        AriClient("http://user:hunter2@h:8088", "u", "p")
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError):
        AriClient("ftp://h", "u", "p")


async def test_credentials_never_in_logs_reprs_or_errors(
    fake: FakeAri, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the password nor its Basic token appears in logs, reprs or exception texts."""
    caplog.set_level(logging.DEBUG)
    token = basic_authorization(fake.username, PASSWORD).split()[1]
    texts: list[str] = []
    client = AriClient(fake.url, fake.username, PASSWORD, backoff_initial=0.01)
    async with client, EventTap(client) as tap:
        texts += [repr(client), str(vars(client))]
        fake.inject_call()
        await tap.wait_for(StasisStart)
        fake.fail_next(1)
        with pytest.raises(AriServerError) as server_error:
            await client.list_channels()
        fake.delay_next(1, 0.3)
        with pytest.raises(AriTimeout) as timeout:
            await client.request("GET", "/channels", timeout=0.05)
        with pytest.raises(AriNotFound) as missing:
            await client.get_channel("nope")
        for error in (server_error.value, timeout.value, missing.value):
            texts += [str(error), repr(error), str(error.__dict__)]
        await fake.drop_websocket(refuse_next=1)
        await tap.wait_for(WebsocketReconnected)
    async with AriClient(fake.url, fake.username, PASSWORD + "x") as wrong:
        with pytest.raises(AriAuthError) as bad:
            await wrong.answer("x")
        texts.append(str(bad.value))
    everything = caplog.text + "\n".join(texts)
    assert caplog.records, "the client should have logged something to check"
    assert PASSWORD not in everything
    assert token not in everything


@pytest.mark.asterisk
@pytest.mark.skipif(
    not os.environ.get("ACD_TEST_ARI_URL"), reason="set ACD_TEST_ARI_URL/_USER/_PASSWORD"
)
async def test_against_real_asterisk() -> None:
    """Against a real Asterisk: the event websocket opens and the app's state parses."""
    env = os.environ
    client = AriClient(
        env["ACD_TEST_ARI_URL"], env["ACD_TEST_ARI_USER"], env["ACD_TEST_ARI_PASSWORD"]
    )
    async with client, EventTap(client):
        app = await client.get_application()
        assert app.name == client.app
        assert isinstance(await client.list_channels(), list)
