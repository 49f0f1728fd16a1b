"""The callback dialler: due tasks, retries, business hours, pacing, concurrency, restarts."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from acd.callbacks.dialler import (
    AttemptBoard,
    AttemptResult,
    CallbackDialer,
    DialPolicy,
    dial_string,
)
from acd.config.load import load_center
from acd.errors import ConfigError
from acd.runtime.records import CallbackStore, StoredCallback, open_store
from acd.runtime.store import RecordStore
from acd.service.settings import load_settings
from ivr.actions import CallbackTask
from ivr.known import known_from_center
from ivr.loader import load_flow

ROOT = Path(__file__).resolve().parents[1]
MOSCOW = ZoneInfo("Europe/Moscow")


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedOutbound:
    """An Outbound whose attempts end when the test says so (or at once with ``result``)."""

    result: AttemptResult | None = AttemptResult.QUEUED
    dialled: list[int] = field(default_factory=list)
    gates: dict[int, asyncio.Future[AttemptResult]] = field(default_factory=dict)

    async def call_back(self, callback: StoredCallback) -> AttemptResult:
        self.dialled.append(callback.id)
        if self.result is not None:
            return self.result
        gate = asyncio.get_running_loop().create_future()
        self.gates[callback.id] = gate
        return await gate


#: Tasks are stored due at this instant and the dialler's clock starts here.
T0 = 1_800_000_000.0


def task(queue: str = "tech", number: str = "+79161234567", priority: int = 0) -> CallbackTask:
    return CallbackTask(queue, "ru", "RU", number, priority, "voicemail", None, None)


def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=MOSCOW).timestamp()


@pytest.fixture
def store(record_store: RecordStore) -> CallbackStore:
    """A callback store on each record store (SQLite, PostgreSQL)."""
    return CallbackStore(record_store)


async def settle(dialer: CallbackDialer) -> list[AttemptResult]:
    """Wait (bounded) for every running attempt and return their results."""
    return list(await asyncio.wait_for(asyncio.gather(*dialer.in_flight.values()), 5.0))


async def test_concurrency_cap_is_respected(store: CallbackStore) -> None:
    """No more attempts run at once than the cap; a finished one frees a slot."""
    ids = [store.insert(task(), T0) for _ in range(5)]
    outbound = ScriptedOutbound(result=None)
    dialer = CallbackDialer(store, outbound, DialPolicy(concurrency=2), clock=Clock(T0))
    assert dialer.start_due() == ids[:2]
    await asyncio.sleep(0)
    assert dialer.start_due() == []
    assert store.count("dialing") == 2
    outbound.gates[ids[0]].set_result(AttemptResult.QUEUED)
    await asyncio.sleep(0.01)
    assert dialer.start_due() == [ids[2]]
    assert len(dialer.in_flight) == 2
    await asyncio.sleep(0.01)
    for gate in outbound.gates.values():
        if not gate.done():
            gate.set_result(AttemptResult.NO_ANSWER)
    await settle(dialer)


async def test_higher_priority_tasks_are_dialled_first(store: CallbackStore) -> None:
    """Among due tasks the higher priority goes first, then the oldest."""
    low = store.insert(task(priority=0), T0)
    high = store.insert(task(priority=5), T0)
    dialer = CallbackDialer(store, ScriptedOutbound(), DialPolicy(concurrency=1),
                            clock=Clock(T0))
    assert dialer.start_due() == [high]
    await settle(dialer)
    assert dialer.start_due() == [low]
    await settle(dialer)


async def test_pacing_holds_tasks_of_a_queue_with_a_long_wait(store: CallbackStore) -> None:
    """Only queues whose estimated wait is below max_ewt_s get callbacks."""
    ewt = {"tech": 300.0, "orders": 30.0}
    busy = store.insert(task("tech"), T0)
    quiet = store.insert(task("orders"), T0)
    dialer = CallbackDialer(store, ScriptedOutbound(), DialPolicy(max_ewt_s=60.0),
                            ewt=lambda queue, _language, _country: ewt[queue], clock=Clock(T0))
    assert dialer.start_due() == [quiet]
    assert dialer.stats.held_by_pacing == 1
    await settle(dialer)
    ewt["tech"] = 10.0
    assert dialer.start_due() == [busy]
    await settle(dialer)


async def test_closed_queue_defers_the_task_to_its_opening(store: CallbackStore) -> None:
    """A task for a closed queue waits until the queue opens (main flow's hours, site zone)."""
    center = load_center(ROOT / "config" / "center.yaml")
    main = load_flow(ROOT / "config" / "ivr" / "main.yaml", known_from_center(center.config))
    clock = Clock(at(2026, 3, 13, 20, 30))  # a Friday evening
    task_id = store.insert(task("voc"), clock.now)  # voc: Mon-Fri 09:00-18:00 Moscow
    outbound = ScriptedOutbound()
    dialer = CallbackDialer(store, outbound, DialPolicy(), hours=main.calendar.state,
                            clock=clock)
    assert dialer.start_due() == []
    deferred = store.get(task_id)
    assert deferred is not None and deferred.status == "open"
    # The calendar answers "closed until midnight"; the weekend is checked day by day.
    assert deferred.next_attempt == at(2026, 3, 14, 0, 0)
    clock.now = at(2026, 3, 14, 0, 0)
    assert dialer.start_due() == []
    assert store.due(clock.now) == []
    clock.now = at(2026, 3, 16, 8, 0)  # Monday, before opening
    assert dialer.start_due() == []
    clock.now = at(2026, 3, 16, 9, 0)
    assert outbound.dialled == []
    assert dialer.start_due() == [task_id]
    await settle(dialer)
    assert outbound.dialled == [task_id]


async def test_invalid_number_fails_without_dialling(store: CallbackStore) -> None:
    """A number that is not E.164 fails the task at once; the Outbound never sees it."""
    task_id = store.insert(task(number="8(916)123;Dial(x)"), T0)
    outbound = ScriptedOutbound()
    dialer = CallbackDialer(store, outbound, clock=Clock(T0))
    assert dialer.start_due() == []
    assert outbound.dialled == []
    stored = store.get(task_id)
    assert stored is not None and stored.status == "failed"


async def test_declined_and_failed_attempts_are_retried(store: CallbackStore) -> None:
    """Every result but queued and invalid is retried after the delay."""
    clock = Clock(T0)
    outbound = ScriptedOutbound(result=AttemptResult.DECLINED)
    dialer = CallbackDialer(store, outbound, DialPolicy(retry_delay_s=60.0, max_attempts=3),
                            clock=clock)
    task_id = store.insert(task(), T0)
    for result in (AttemptResult.DECLINED, AttemptResult.FAILED):
        outbound.result = result
        clock.now += 61.0
        assert dialer.start_due() == [task_id]
        await settle(dialer)
        stored = store.get(task_id)
        assert stored is not None and stored.status == "open"
        assert stored.last_result == result.value
    outbound.result = AttemptResult.QUEUED
    clock.now += 61.0
    assert dialer.start_due() == [task_id]
    await settle(dialer)
    done = store.get(task_id)
    assert done is not None and done.status == "done" and done.attempts == 3


async def test_tasks_and_attempts_survive_a_restart(records_where: str) -> None:
    """A stop mid-attempt leaves the task in the store; the next start dials it again."""
    db = open_store(records_where)
    first = CallbackStore(db)
    task_id = first.insert(task(), T0)
    waiting = first.insert(task(queue="repair"), T0)
    outbound = ScriptedOutbound(result=None)
    dialer = CallbackDialer(first, outbound, DialPolicy(concurrency=1), clock=Clock(T0))
    run = asyncio.create_task(dialer.run())
    await asyncio.sleep(0.05)
    assert outbound.dialled == [task_id]
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    db.close()

    again = CallbackStore(open_store(records_where))
    interrupted = again.get(task_id)
    assert interrupted is not None and interrupted.status == "open"
    assert interrupted.attempts == 1 and interrupted.last_result == "interrupted"
    outbound2 = ScriptedOutbound()
    dialer2 = CallbackDialer(again, outbound2, DialPolicy(concurrency=2), clock=Clock(T0))
    run2 = asyncio.create_task(dialer2.run())
    await asyncio.sleep(0.05)
    run2.cancel()
    await asyncio.gather(run2, return_exceptions=True)
    assert sorted(outbound2.dialled) == sorted([task_id, waiting])
    finished = again.get(task_id)
    assert finished is not None and finished.status == "done" and finished.attempts == 2
    again.db.close()


async def test_a_task_is_never_dialled_twice_at_once(records_where: str) -> None:
    """Two dialers on one database (each with its own connection, as two routers have):
    each open task is claimed by exactly one of them."""
    store = CallbackStore(open_store(records_where))
    other = CallbackStore(open_store(records_where))
    ids = [store.insert(task(), T0) for _ in range(3)]
    one = ScriptedOutbound(result=None)
    two = ScriptedOutbound(result=None)
    first = CallbackDialer(store, one, DialPolicy(concurrency=3), clock=Clock(T0))
    second = CallbackDialer(other, two, DialPolicy(concurrency=3), clock=Clock(T0))
    assert first.start_due() == ids
    assert second.start_due() == []
    await first.close()
    store.db.close()
    other.db.close()


async def test_attempt_board_hands_out_each_attempt_once() -> None:
    """The AGI script can claim an awaited task once; unknown ids are refused."""
    board = AttemptBoard()
    cb = StoredCallback(7, task(), "dialing", 1, 0.0, None, 0.0)
    result = board.expect(cb)
    assert board.claim(8) is None
    assert board.claim(7) is cb
    assert board.claim(7) is None
    assert board.report(7, AttemptResult.QUEUED)
    assert await result is AttemptResult.QUEUED
    assert not board.report(7, AttemptResult.DECLINED)


def test_dial_string_takes_only_e164_numbers() -> None:
    """The trunk template gets a checked number; anything with syntax in it is refused."""
    assert dial_string("PJSIP/{number}@trunk", "+380441234567") == "PJSIP/+380441234567@trunk"
    assert dial_string("SIP/trunk/{digits}", "+79161234567") == "SIP/trunk/79161234567"
    for bad in ("79161234567", "+7916&Local/1@x", "+7916\r\nAction: Hangup", ""):
        with pytest.raises(ValueError):
            dial_string("PJSIP/{number}@trunk", bad)
    with pytest.raises(ValueError):
        dial_string("PJSIP/{number}@trunk,30,U(x)", "+79161234567")


def test_callback_settings_are_validated(tmp_path: Path) -> None:
    """A trunk without {number} is a config error naming the file and the YAML path."""
    good = tmp_path / "good.yaml"
    good.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\nflows: {ROOT / 'config' / 'ivr'}\n"
                    "callbacks: {enabled: true, via: ami, trunk: 'PJSIP/{digits}@gw',"
                    " max_attempts: 5, ami: {secret_env: MY_AMI_SECRET}}\n")
    settings = load_settings(good, {"ACD_AMI_USER": "acd", "MY_AMI_SECRET": "s3"})
    assert settings.callbacks.enabled and settings.callbacks.via == "ami"
    assert settings.callbacks.max_attempts == 5
    assert (settings.ami_user, settings.ami_secret) == ("acd", "s3")
    assert "s3" not in repr(settings)
    bad = tmp_path / "bad.yaml"
    bad.write_text("callbacks:\n  trunk: 'PJSIP/1001&Local/x'\n")
    with pytest.raises(ConfigError) as err:
        load_settings(bad, {})
    assert "callbacks.trunk" in str(err.value)
