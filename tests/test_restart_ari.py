"""Restarts in ARI mode: talks go back on their agents, held callers never wait on a dead engine.

The fake ARI keeps every channel and bridge across the engine's death, as Asterisk does, and
honours ``TIMEOUT(absolute)`` the way Asterisk's PBX does (the channel leaves Stasis and
continues at ``T``). The restarted engine gets the database the first one wrote, restores
from it (:mod:`acd.service.state`) and then adopts what Asterisk holds.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arikit import Rig, eventually, reference_center

from acd.asterisk.ari.app import StasisApp
from acd.asterisk.ari.client import AriClient
from acd.asterisk.ari.commands import CallCommands
from acd.core.model import AgentState, CallOffered, CallState, Output
from acd.errors import ConfigError
from acd.runtime.records import CallRecords, open_database
from acd.runtime.router_service import RouterService
from acd.service.settings import load_settings
from acd.service.state import AgentStateStore, RestartBoard, restore
from acd.testing.ari_objects import MEDIA_SECONDS
from acd.testing.fake_ari import AgentScript, FakeAri

AGENT, AGENT_EP = "msk-tech-ru-001", "PJSIP/1001"
RINGER, RINGER_EP = "msk-tech-ru-002", "PJSIP/1002"
SPARE = "msk-tech-ru-003"


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    """A rig at the usual speed for tests that need no long ring."""
    async with Rig() as r:
        yield r


def persist(rig: Rig, db: sqlite3.Connection) -> tuple[CallRecords, AgentStateStore]:
    """The service's database observers, as ``acd serve`` wires them."""
    records, store = CallRecords(db), AgentStateStore(db)
    rig.service.observe(records)
    rig.service.observe(store)
    return records, store


async def restart_from(rig: Rig, db: sqlite3.Connection) -> tuple[CallRecords, RestartBoard]:
    """A new engine: restore from the database, then connect to ARI and adopt (as serve)."""
    service = RouterService(reference_center(), rig.clock)
    rig.outputs.clear()
    service.observe(lambda o, _wall: rig.outputs.append(o))
    records, store = CallRecords(db), AgentStateStore(db)
    service.observe(records)
    service.observe(store)
    board = RestartBoard(service, records)
    restore(service, store.saved(), board)
    rig.service = service
    rig.client = AriClient(rig.fake.url, rig.fake.username, rig.fake.password,
                           request_timeout=2.0, backoff_initial=0.01, backoff_max=0.05,
                           heartbeat=None)
    rig.app = StasisApp(service, rig.client, rig.setup)
    rig.app.restored = board
    rig._task = asyncio.create_task(rig.app.run())
    await asyncio.wait_for(rig.app.ready.wait(), 3.0)
    await rig.app.idle()
    return records, board


def offered_to(outputs: list[Output], agents: set[str]) -> list[str]:
    """Calls offered to any of ``agents``."""
    return [o.call_id for o in outputs if isinstance(o, CallOffered) and o.agent_id in agents]


async def test_restart_puts_the_talk_and_the_ring_back_and_requeues_the_held_call(
        tmp_path: Path) -> None:
    """After a restart the talking agent is on its call until the hangup (one answered record,
    then wrap-up), the ringing agent's phone goes on ringing and its answer connects, the held
    caller waits again with their place, and neither busy agent is offered another call."""
    # Prompts short, rings long (15 s / 2): the ring outlives the restart, as on a real PBX.
    fake = FakeAri(speed=2.0, media_seconds=dict.fromkeys(MEDIA_SECONDS, 0.05),
                   default_media_s=0.05)
    await fake.start()
    try:
        async with Rig(fake=fake) as rig:
            db = open_database(tmp_path / "acd.sqlite3")
            persist(rig, db)
            fake.script_agent(RINGER_EP, AgentScript(answer_after=None))
            rig.service.login(AGENT)
            talking = await rig.to_queue()
            await eventually(lambda: rig.talking(talking), what="talking")
            rig.service.login(RINGER)
            ringing = await rig.to_queue("+79031234567")
            await eventually(lambda: rig.leg_of(ringing) in fake.channels, what="ringing")
            held = await rig.to_queue("+79037654321")
            await eventually(lambda: rig.in_router(held), what="held")
            talk_leg, ring_leg = rig.leg_of(talking) or "", rig.leg_of(ringing) or ""
            await rig.stop_app()
            await eventually(lambda: not fake._subscribers, what="old websocket closed")

            records, board = await restart_from(rig, db)
            router = rig.service.router
            assert router.agent_state(AGENT) is AgentState.ON_CALL
            assert router.call_state(talking) is CallState.TALKING
            assert not rig.app.calls[talking].unmanaged and board.calls == {}
            assert router.agent_state(RINGER) is AgentState.RINGING
            assert ring_leg in fake.channels and rig.leg_of(ringing) == ring_leg
            assert router.call_state(held) is CallState.QUEUED
            fake.agent_answers(ring_leg)
            await eventually(lambda: rig.talking(ringing), what="ring answered after restart")
            assert router.agent_state(RINGER) is AgentState.ON_CALL
            fake.hangup(talk_leg)
            await eventually(lambda: talking not in fake.channels, what="caller hung up")
            assert router.agent_state(AGENT) is AgentState.WRAP_UP
            rows = db.execute("SELECT call_id, outcome, agent_id FROM calls").fetchall()
            assert rows == [(talking, "answered", AGENT)]
            fake.hangup(ring_leg)
            await eventually(lambda: router.agent_state(RINGER) is AgentState.WRAP_UP,
                             what="second talk over")
            assert offered_to(rig.outputs, {AGENT, RINGER}) == []
            # The next agent free takes the held caller, who kept their place.
            rig.service.login(SPARE)
            await eventually(lambda: rig.talking(held), what="held caller offered")
            rows = db.execute("SELECT call_id, outcome, agent_id FROM calls").fetchall()
            assert sorted(rows) == sorted([(talking, "answered", AGENT),
                                           (ringing, "answered", RINGER)])
            assert records.written == 2
    finally:
        await fake.stop()


async def test_held_caller_reaches_the_fallback_within_the_grace_when_the_engine_dies(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While the engine runs a held caller stays in Stasis; once it dies the caller continues
    at the dialplan's T extension (the fallback) within the hold grace."""
    grace = 1.0  # whole seconds, as TIMEOUT(absolute) is given
    monkeypatch.setattr(CallCommands, "hold_grace_s", grace)
    fake = FakeAri(speed=1.0)  # real time: the engine's refreshes and Asterisk's timeout
    await fake.start()
    async with Rig(fake=fake) as rig:
        try:
            held = await rig.to_queue()
            await eventually(lambda: rig.in_router(held), what="held")
            await asyncio.sleep(3 * grace)  # refreshed meanwhile: still holding
            assert rig.fake.channels[held].in_stasis and rig.fake.timed_out == []
            loop = asyncio.get_running_loop()
            died = loop.time()
            await rig.stop_app()
            await eventually(lambda: rig.fake.timed_out == [held], timeout=3 * grace,
                             what="caller at T")
            assert loop.time() - died <= grace + 0.3
            chan = rig.fake.channels[held]
            assert not chan.in_stasis and chan.exten == "T"
        finally:
            await rig.fake.stop()


async def test_a_connected_caller_is_never_cut_by_the_hold_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Connecting the caller to an agent clears the timeout: the talk outlives the engine."""
    grace = 1.0  # whole seconds, as TIMEOUT(absolute) is given
    monkeypatch.setattr(CallCommands, "hold_grace_s", grace)
    fake = FakeAri(speed=1.0)  # real time: the engine's refreshes and Asterisk's timeout
    await fake.start()
    async with Rig(fake=fake) as rig:
        try:
            rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=0.1, talk_time=None))
            rig.service.login(AGENT)
            talking = await rig.to_queue()
            await eventually(lambda: rig.talking(talking), what="talking")
            await rig.stop_app()
            await asyncio.sleep(3 * grace)
            assert rig.fake.timed_out == [] and rig.talking(talking)
        finally:
            await rig.fake.stop()


async def test_a_talk_that_ended_while_the_engine_was_down_is_closed_by_asking_ari(
        rig: Rig, tmp_path: Path) -> None:
    """A talk whose caller hung up while no engine ran is not in Stasis to adopt: ARI says
    the channel is gone, so the call ends with its answered record and the agent wraps up."""
    db = open_database(tmp_path / "acd.sqlite3")
    persist(rig, db)
    rig.service.login(AGENT)
    talking = await rig.to_queue()
    await eventually(lambda: rig.talking(talking), what="talking")
    await rig.stop_app()
    await eventually(lambda: not rig.fake._subscribers, what="old websocket closed")
    rig.fake.hangup(talking)
    _, board = await restart_from(rig, db)
    board.probe = rig.app
    assert rig.service.router.agent_state(AGENT) is AgentState.ON_CALL  # not guessed over
    rig.clock.advance(board.bounds.first_check_s + 0.1)
    await eventually(lambda: rig.service.router.call_state(talking) is None, what="ended")
    assert board.endings == {talking: "gone_after_restart"}
    assert rig.service.router.agent_state(AGENT) is AgentState.WRAP_UP
    rows = db.execute("SELECT call_id, outcome, agent_id FROM calls").fetchall()
    assert rows == [(talking, "answered", AGENT)]


def test_the_hold_grace_keeps_the_waiting_bound(tmp_path: Path) -> None:
    """The grace is 60 s by default and refused above 60 s, which would break the promise of
    the queue's maximum wait plus ring time plus 60 s."""
    path = tmp_path / "service.yaml"
    path.write_text("ari:\n  url: http://127.0.0.1:8088\n")
    assert load_settings(path, {}).ari.hold_grace_s == 60
    path.write_text("ari:\n  url: http://127.0.0.1:8088\n  hold_grace_s: 120\n")
    with pytest.raises(ConfigError, match="hold_grace_s"):
        load_settings(path, {})
