"""Callers who enter Stasis while the event websocket is down are adopted after the reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arikit import Rig, eventually

from acd.core.model import CallQueued
from acd.runtime.records import CallRecords, open_database

CALLERS = 10


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with Rig() as r:
        yield r


async def test_callers_entering_stasis_during_a_drop_are_answered_queued_and_recorded(
    rig: Rig, tmp_path: Path
) -> None:
    """Ten StasisStarts lost in a drop: after the reconnect all ten are answered, run through
    the IVR once, queued, and written as call records when they hang up."""
    records = CallRecords(open_database(tmp_path / "calls.sqlite3"))
    rig.service.observe(records)
    await rig.fake.drop_websocket(refuse_next=1_000_000)
    callers = [rig.fake.inject_call(f"+7916123450{i}", "Olga", ("8800100",))
               for i in range(CALLERS)]
    assert all(rig.fake.channels[c].state == "Ring" for c in callers)  # nobody heard of them
    rig.fake.accept_websocket()
    await eventually(lambda: rig.app.reconciliations >= 1, what="reconciled")
    await asyncio.gather(*(rig.menu_to_queue(c) for c in callers))
    await eventually(lambda: all(rig.in_router(c) for c in callers), what="all queued")
    assert all(rig.fake.channels[c].state == "Up" for c in callers)
    assert all(rig.prompt_count(c, "main_menu") == 1 for c in callers)
    queued = [o.call_id for o in rig.outputs if isinstance(o, CallQueued)]
    assert sorted(queued) == sorted(callers)
    for caller in callers:
        rig.fake.hangup(caller)
    await eventually(lambda: records.written == CALLERS, what="records written")
    rows = records.db.execute("SELECT call_id, outcome FROM calls").fetchall()
    assert sorted(rows) == sorted((c, "abandoned") for c in callers)
    await rig.app.idle()
    assert not [b for b in rig.fake.bridges if b.startswith("acd-")]


async def test_known_calls_are_not_adopted_twice_after_a_drop(rig: Rig) -> None:
    """A caller queued before the drop keeps its one machine; one arriving in the drop is
    adopted beside it, and each is queued exactly once."""
    before = await rig.to_queue()
    await eventually(lambda: rig.in_router(before))
    await rig.fake.drop_websocket(refuse_next=1_000_000)
    during = rig.fake.inject_call("+79031234567", "Ivan", ("8800100",))
    rig.fake.accept_websocket()
    await eventually(lambda: rig.app.reconciliations >= 1, what="reconciled")
    await rig.menu_to_queue(during)
    await eventually(lambda: rig.in_router(during), what="adopted caller queued")
    queued = sorted(o.call_id for o in rig.outputs if isinstance(o, CallQueued))
    assert queued == sorted([before, during])
    assert rig.prompt_count(before, "main_menu") == 1
    holds = [b for b in rig.fake.bridges.values() if b.bridge_type == "holding"]
    assert sorted(c for b in holds for c in b.channels) == sorted([before, during])
