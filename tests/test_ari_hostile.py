"""Hostile ARI events and a failing event stream never end the Stasis application; the
service reports ARI's outage on ``/health`` and shuts down whole whatever a part does."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from arikit import RU_CALLER, Rig, eventually

from acd.asterisk.ari.client import AriClient, AriError
from acd.asterisk.ari.models import (
    MAX_JSON_DEPTH,
    MalformedEvent,
    StasisEnd,
    UnknownEvent,
    loads_bounded,
    parse_event_text,
)
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.testing.fake_ari import FakeAri

ROOT = Path(__file__).resolve().parents[1]

#: What the issue's attacker sent: JSON 2,000 deep (14 KB), a 5,000-digit number, 10 MB.
HOSTILE = {
    "nested_2000_deep": '{"type":"StasisStart","x":' + "[" * 2000 + "]" * 2000 + "}",
    "number_5000_digits": '{"type":"ChannelDtmfReceived","duration_ms":' + "9" * 5000 + "}",
    "message_10_mb": json.dumps({"type": "StasisStart", "pad": "x" * (10 << 20)}),
}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


# ---------------------------------------------------------------- the bounded parser


def test_parser_refuses_deep_long_and_huge_input_as_malformed() -> None:
    """Depth, integer length and size over their bounds are MalformedEvent, nothing else."""
    for text in HOSTILE.values():
        with pytest.raises(MalformedEvent):
            parse_event_text(text)
    fine = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_bounded(fine) is not None
    with pytest.raises(MalformedEvent, match="nests"):
        loads_bounded("[" + fine + "]")


def test_parser_does_not_count_brackets_inside_strings() -> None:
    """Brackets inside string values (a caller name) are text, not nesting."""
    event = parse_event_text(json.dumps({"type": "StasisEnd",
                                         "channel": {"id": "c1", "name": "[{" * 500}}))
    assert isinstance(event, StasisEnd) and event.channel.name == "[{" * 500
    big = parse_event_text('{"type":"Custom","n":' + "7" * 40 + "}")
    assert isinstance(big, UnknownEvent) and big.raw["n"] == int("7" * 40)


# ---------------------------------------------------------------- through the websocket


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_hostile_event_is_skipped_and_calls_go_on(
    rig: Rig, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After a hostile message the held caller is still held and a new caller is served."""
    caplog.set_level(logging.WARNING, logger="acd.asterisk.ari")
    held = await rig.to_queue()
    await eventually(lambda: rig.in_router(held), what="first caller queued")
    rig.fake.send_raw(HOSTILE[kind])
    await eventually(lambda: "ari event skipped" in caplog.text
                     or "ari websocket error" in caplog.text, what="hostile message logged")
    await rig.fake.wait_subscribed()
    fresh = await rig.to_queue("+79031234567")
    await eventually(lambda: rig.in_router(fresh), what="next caller queued")
    assert rig.in_router(held) and rig.fake.channels[fresh].state == "Up"
    assert rig.app.restarts == 0  # skipped in place (or, for 10 MB, by a reconnect)
    rig.fake.hangup(held)
    await eventually(lambda: rig.ended(held) is not None, what="held caller's hangup heard")


async def test_failed_event_stream_is_restarted_and_logged(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A refused login on reconnect ends the event stream: the application logs it with the
    last event, keeps trying, and once Asterisk takes it back serves the callers it missed."""
    caplog.set_level(logging.ERROR, logger="acd.asterisk.ari")
    held = await rig.to_queue()
    await eventually(lambda: rig.in_router(held))
    password = rig.fake.password
    rig.fake.password = "changed-on-the-pbx"
    await rig.fake.drop_websocket()
    await eventually(lambda: rig.app.restarts >= 2, what="restarted after refused logins")
    assert "ari application failed (AriAuthError) after event" in caplog.text
    missed = rig.fake.inject_call(RU_CALLER, "Olga", ("8800100",))
    rig.fake.password = password
    await eventually(lambda: rig.app.reconciliations >= 1, what="reconciled after the restart")
    await rig.menu_to_queue(missed)
    await eventually(lambda: rig.in_router(missed), what="missed caller queued")
    assert rig.in_router(held)


# ---------------------------------------------------------------- the service


def _settings_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\n"
                    f"flows: {ROOT / 'config' / 'ivr'}\n"
                    "agi: {port: 0}\nhttp: {port: 0}\nrecords: {database: acd.sqlite3}\n"
                    f"ari: {{url: '{url}'}}\n"
                    "shutdown_grace_s: 1\nlogs: {format: json}\n")
    return path


async def _health(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, \
            http.get(f"http://127.0.0.1:{port}/health") as resp:
        return resp.status, await resp.json()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Runtime, FakeAri]]:
    fake = FakeAri(speed=20.0)
    await fake.start()
    env = {"ACD_ARI_USER": fake.username, "ACD_ARI_PASSWORD": fake.password}
    runtime = Runtime(load_settings(_settings_file(tmp_path, fake.url), env))
    await runtime.start()
    try:
        yield runtime, fake
    finally:
        await runtime.stop()
        await fake.stop()


async def test_health_is_degraded_while_ari_is_down(served: tuple[Runtime, FakeAri]) -> None:
    """/health answers 503 "degraded" with the reason while ARI is not connected, 200 after."""
    runtime, fake = served
    stasis = runtime.stasis
    await eventually(lambda: stasis.ready.is_set(), what="connected")
    status, body = await _health(runtime.http_port)
    assert status == 200 and body["status"] == "ok" and body["problems"] == []
    assert body["ari"] == {"configured": True, "connected": True, "restarts": 0}
    await fake.drop_websocket(refuse_next=1_000_000)
    await eventually(lambda: not runtime._ari_client.connected.is_set(), what="dropped")
    status, body = await _health(runtime.http_port)
    assert status == 503 and body["status"] == "degraded"
    assert body["problems"] == ["ARI is configured but not connected to Asterisk"]
    fake.accept_websocket()
    await eventually(lambda: runtime._ari_client.connected.is_set(), what="reconnected",
                     timeout=5.0)
    status, body = await _health(runtime.http_port)
    assert status == 200 and body["status"] == "ok"


async def test_stop_finishes_shutdown_when_the_ari_task_failed(
    served: tuple[Runtime, FakeAri],
) -> None:
    """An ARI task that died with an error no longer cuts shutdown short: HTTP and the
    database are still closed (the error is logged instead of raised)."""
    runtime, _ = served
    assert runtime._ari_task is not None
    runtime._ari_task.cancel()
    await asyncio.gather(runtime._ari_task, return_exceptions=True)

    async def died() -> None:
        raise RuntimeError("the ARI task broke")

    runtime._ari_task = asyncio.create_task(died())
    await asyncio.gather(runtime._ari_task, return_exceptions=True)
    port = runtime.http_port
    await runtime.stop()
    with pytest.raises(sqlite3.ProgrammingError):
        runtime.db.execute("SELECT 1")
    with pytest.raises(aiohttp.ClientConnectionError):
        await _health(port)
    assert not runtime.started


async def test_hostile_rest_answers_are_errors_not_crashes() -> None:
    """A REST answer nested too deep or with a 5,000-digit number is an AriError; a listing
    keeps its good channels and leaves out malformed ones (logged), so a reconcile still sees
    the rest."""
    async with FakeAri() as fake, \
            AriClient(fake.url, fake.username, fake.password) as ari:
        caller = fake.inject_call()
        fake.reply_next("[" * 5000 + "]" * 5000)
        with pytest.raises(AriError):
            await ari.get_channel(caller)
        good = json.dumps(fake.channels[caller].json())
        fake.reply_next(f'[{good}, {{"id": 5}}, {{"name": "no id"}}]')
        assert [c.id for c in await ari.list_channels()] == [caller]
        fake.reply_next(f'[{good}, {{"id": "x", "name": {"1" * 5000}}}]')
        with pytest.raises(AriError):
            await ari.list_channels()
