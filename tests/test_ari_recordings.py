"""The fake ARI server against the conversations recorded from a real Asterisk 22.11.

Each recorded scenario is replayed through `AriClient` against `FakeAri`: the REST requests must
get the same status codes and body shapes, and the websocket must carry the same events in the
same order (compared on structure and on the fields the engine acts on, never on ids).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from acd.asterisk.ari import (
    AriClient,
    AriNotFound,
    ChannelDestroyed,
    ChannelDtmfReceived,
    ChannelHangupRequest,
    Dial,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
    UnknownEvent,
    WebsocketReconnected,
    parse_event,
)
from acd.asterisk.ari import models as ari_models
from acd.asterisk.ari.models import MODELLED_EVENT_TYPES
from acd.testing.fake_ari import AgentScript, EventTap, FakeAri, FakeRequest

RECORDINGS = Path(__file__).resolve().parent / "recordings" / "asterisk"
SPEED = 20.0  # recorded durations (4 s ring timeout, 3 s talk) shrink to a fraction of a second


def load(name: str) -> list[dict[str, Any]]:
    """Rows of one recording."""
    lines = (RECORDINGS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def recorded_events(name: str) -> list[dict[str, Any]]:
    """The websocket events of one recording, in order."""
    return [row["data"] for row in load(name) if row["kind"] == "event"]


def recorded_http(name: str) -> list[dict[str, Any]]:
    """The REST exchanges of one recording, in order."""
    return [row["data"] for row in load(name) if row["kind"] == "http"]


ALL_EVENTS = [
    pytest.param(event, id=f"{name}:{i}:{event['type']}")
    for name in ("ari-bridge-call.jsonl", "ari-rona-reconnect.jsonl", "ari-dtmf-hold-hangup.jsonl")
    for i, event in enumerate(recorded_events(name))
]


@pytest.mark.parametrize("raw", ALL_EVENTS)
def test_every_recorded_event_parses_to_its_model(raw: dict[str, Any]) -> None:
    """Each event Asterisk sent parses to the model named by its type, or to UnknownEvent."""
    event = parse_event(raw)
    if raw["type"] in MODELLED_EVENT_TYPES:
        assert type(event).__name__ == raw["type"]
        assert type(event) is getattr(ari_models, raw["type"])
    else:
        assert isinstance(event, UnknownEvent)
        assert event.raw["type"] == raw["type"]
    assert event.application == "acd"


def test_recorded_rona_destroy_carries_cause_19() -> None:
    """Ring-no-answer is ChannelDestroyed with cause 19 and Asterisk's own cause text."""
    destroyed = [
        e
        for e in map(parse_event, recorded_events("ari-rona-reconnect.jsonl"))
        if isinstance(e, ChannelDestroyed)
    ]
    assert [(d.cause, d.cause_txt, d.channel.id) for d in destroyed] == [
        (19, "User alerting, no answer", "agent-1002-try1")
    ]


def test_recorded_fields_land_in_typed_attributes() -> None:
    """Args, caller id, DTMF digits, dial status and hangup causes come through typed."""
    events = [parse_event(e) for e in recorded_events("ari-bridge-call.jsonl")]
    start = next(e for e in events if isinstance(e, StasisStart))
    assert start.args == ("8800100",)
    assert (start.channel.caller_name, start.channel.caller_number) == ("Olga", "+380441234567")
    assert start.channel.dialplan.app_data == "acd,8800100"
    assert [e.dialstatus for e in events if isinstance(e, Dial)] == ["", "ANSWER"]
    requests = [e for e in events if isinstance(e, ChannelHangupRequest)]
    assert [(r.cause, r.soft) for r in requests] == [(16, True), (16, False), (16, False)]
    held = [parse_event(e) for e in recorded_events("ari-dtmf-hold-hangup.jsonl")]
    digits = [(e.digit, e.duration_ms) for e in held if isinstance(e, ChannelDtmfReceived)]
    assert digits == [("3", 100), ("7", 100), ("1", 100), ("2", 100), ("#", 100)]


# ---------------------------------------------------------------- structure comparison


def same_shape(recorded: Any, fake: Any, where: str = "body") -> None:
    """Assert equal keys and value types, recursively; lists compare their first items."""
    if isinstance(recorded, dict):
        assert isinstance(fake, dict), f"{where}: expected an object, got {fake!r}"
        assert sorted(fake) == sorted(recorded), f"{where}: keys differ"
        for key in recorded:
            same_shape(recorded[key], fake[key], f"{where}.{key}")
    elif isinstance(recorded, list):
        assert isinstance(fake, list), f"{where}: expected a list, got {fake!r}"
        if recorded and fake:
            same_shape(recorded[0], fake[0], f"{where}[0]")
    else:
        assert type(fake) is type(recorded), f"{where}: {fake!r} vs recorded {recorded!r}"


def template(path: str) -> str:
    """``/channels/1795609264.5/answer`` -> ``/channels/{id}/answer``."""
    parts = path.split(" ")[0].split("/")
    if len(parts) > 2:
        parts[2] = "{id}"
    return "/".join(parts)


def assert_same_rest(recorded: list[dict[str, Any]], served: list[FakeRequest]) -> None:
    """Same requests, same status codes, same body shapes (401 bodies compared verbatim)."""
    assert len(served) == len(recorded)
    for rec, got in zip(recorded, served, strict=True):
        label = f"{rec['method']} {rec['path']}"
        assert (got.method, template(got.path)) == (rec["method"], template(rec["path"])), label
        assert sorted(got.params) == sorted(rec.get("params", {})), label
        assert got.status == rec["status"], label
        if isinstance(rec["body"], str):
            assert got.body == rec["body"], label
        else:
            same_shape(rec["body"], got.body, label)


#: Fields whose values the engine acts on; everything else is compared on shape only.
SIGNIFICANT = (
    "type",
    "digit",
    "duration_ms",
    "cause",
    "cause_txt",
    "soft",
    "dialstatus",
    "variable",
    "args",
)


def signature(event: dict[str, Any]) -> tuple[Any, ...]:
    """An event reduced to what must match the recording: type, key fields, playback state."""
    sig: list[Any] = [(k, json.dumps(event.get(k))) for k in SIGNIFICANT if k in event]
    for key in ("channel", "peer", "playback", "bridge"):
        if key in event:
            sig.append((key, tuple(sorted(event[key]))))
    if "playback" in event:
        sig.append(("state", event["playback"]["state"]))
    if "bridge" in event:
        sig.append(("members", len(event["bridge"]["channels"])))
    if "channel" in event:
        sig.append(("state", event["channel"]["state"]))
    return tuple(sig)


def assert_same_events(recorded: list[dict[str, Any]], fake: FakeAri, tap: EventTap) -> None:
    """The fake emitted the recorded sequence and the client received every one of them."""
    emitted = fake.event_log[: len(recorded)]
    assert [e["type"] for e in emitted] == [e["type"] for e in recorded]
    for i, (rec, got) in enumerate(zip(recorded, emitted, strict=True)):
        assert signature(got) == signature(rec), f"event {i} {rec['type']}"
    assert tap.types()[: len(recorded)] == [e["type"] for e in recorded]


async def no_auth_get(fake: FakeAri, path: str) -> None:
    """A request without credentials, as the recorder made."""
    async with aiohttp.ClientSession() as session, session.get(fake.url + "/ari" + path) as r:
        await r.read()


# ---------------------------------------------------------------- scenarios


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    """A fake Asterisk running at SPEED times real time."""
    async with FakeAri(speed=SPEED) as server:
        yield server


@pytest.fixture
async def ari(fake: FakeAri) -> AsyncIterator[AriClient]:
    """A client for the fake, reconnecting quickly."""
    async with AriClient(fake.url, fake.username, fake.password, backoff_initial=0.05) as client:
        yield client


async def test_fake_reproduces_bridge_call(fake: FakeAri, ari: AriClient) -> None:
    """Caller answered, prompt, holding bridge with MOH, agent originated and bridged, hangups."""
    name = "ari-bridge-call.jsonl"
    fake.script_agent("Local/1001@agents", AgentScript(answer_after=0, talk_time=3.0))
    async with EventTap(ari) as tap:
        await ari.originate(
            "Local/8800100@stasis",
            context="caller",
            extension="s",
            priority=1,
            caller_id="Olga <+380441234567>",
        )
        caller = (await tap.wait_for(StasisStart)).channel.id
        await ari.answer(caller)
        await ari.play(caller, "sound:beep")
        await tap.wait_for(PlaybackFinished)
        hold = await ari.create_bridge("holding", name="hold-1")
        await ari.add_channel(hold.id, caller, role="participant")
        await ari.start_moh(hold.id, "default")
        agent = await ari.originate("Local/1001@agents", app_args=["agent", "1001"], timeout=10)
        await tap.wait_for(StasisStart, lambda e: e.channel.id == agent.id)
        call = await ari.create_bridge("mixing", name="call-1")
        await ari.remove_channel(hold.id, caller)
        await ari.add_channel(call.id, [caller, agent.id])
        await tap.wait_for(ChannelDestroyed, lambda e: e.channel.id == agent.id)
        fake.hangup(caller, cause=16)
        await tap.wait_for(StasisEnd, lambda e: e.channel.id == caller)
        assert_same_rest(recorded_http(name), fake.requests)
        assert_same_events(recorded_events(name), fake, tap)
        assert (await ari.get_bridge(call.id)).channels == ()


async def test_fake_reproduces_rona_and_reconnect(fake: FakeAri, ari: AriClient) -> None:
    """401 without credentials, DTMF, ring-no-answer (cause 19), websocket drop and resume, 404."""
    name = "ari-rona-reconnect.jsonl"
    fake.script_agent("Local/1002@agents_noanswer", AgentScript(answer_after=None))
    async with EventTap(ari) as tap:
        await no_auth_get(fake, "/channels")
        await ari.originate(
            "Local/8800100@stasis",
            context="caller_long",
            extension="s",
            priority=1,
            caller_id="Olga <+380441234567>",
        )
        caller = (await tap.wait_for(StasisStart)).channel.id
        await ari.answer(caller)
        await fake.send_dtmf(caller, "2")
        await ari.originate(
            "Local/1002@agents_noanswer",
            app_args="agent,1002",
            timeout=4,
            channel_id="agent-1002-try1",
        )
        rona = await tap.wait_for(ChannelDestroyed)
        assert (rona.channel.id, rona.cause) == ("agent-1002-try1", 19)
        await fake.drop_websocket()
        assert {c.id for c in await ari.list_channels()} >= {caller}
        assert (await ari.get_application()).channel_ids == (caller,)
        await tap.wait_for(WebsocketReconnected)
        assert (await ari.get_application()).channel_ids == (caller,)
        await ari.play(caller, "sound:beep")
        await tap.wait_for(PlaybackFinished)
        await ari.hangup(caller)
        await tap.wait_for(StasisEnd)
        with pytest.raises(AriNotFound):
            await ari.get_channel("nonexistent")
        assert_same_rest(recorded_http(name), fake.requests)
        assert_same_events(recorded_events(name), fake, tap)
        assert fake.stasis_channel_ids() == []


async def test_fake_reproduces_dtmf_hold_hangup(fake: FakeAri, ari: AriClient) -> None:
    """DTMF stops a prompt, the caller waits on hold, presses keys, hangs up; bridge outlives it."""
    name = "ari-dtmf-hold-hangup.jsonl"
    async with EventTap(ari) as tap:
        await ari.originate(
            "Local/8800200@stasis",
            context="caller_dtmf",
            extension="s",
            priority=1,
            caller_id="Aziz <+998901234567>",
        )
        caller = (await tap.wait_for(StasisStart)).channel.id
        await ari.answer(caller)
        playback = await ari.play(caller, "sound:tt-monkeys", lang="ru", playback_id="pb-1")
        assert (playback.id, playback.language, playback.state) == ("pb-1", "ru", "queued")
        await fake.send_dtmf(caller, "3")
        await tap.wait_for(ChannelDtmfReceived)
        await ari.stop_playback("pb-1")
        await tap.wait_for(PlaybackFinished)
        await ari.create_bridge("holding", bridge_id="hold-q1")
        await ari.add_channel("hold-q1", caller)
        await ari.start_moh("hold-q1")
        await fake.send_dtmf(caller, "712#", gap_s=0.01)
        fake.hangup(caller, cause=0)
        await tap.wait_for(StasisEnd)
        bridge = await ari.get_bridge("hold-q1")
        assert bridge.channels == ()
        await ari.destroy_bridge("hold-q1")
        assert_same_rest(recorded_http(name), fake.requests)
        assert_same_events(recorded_events(name), fake, tap)
