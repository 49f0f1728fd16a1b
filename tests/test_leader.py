"""The leader lock: one holder at a time, the standby takes it when it frees, a lost lock is
noticed by its holder within a poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_serve import settings_file

from acd.errors import ConfigError
from acd.service.leader import Leadership, LockTiming, connection_options
from acd.service.settings import load_settings
from acd.service.standby import lock_url

FAST = LockTiming(poll_interval_s=0.1, check_timeout_s=0.5)


async def test_only_one_router_holds_the_lock_and_the_standby_takes_it_when_it_frees(
        pg_url: str) -> None:
    """The second router cannot take a held lock; once the first releases it the second
    takes it within a poll."""
    first, second = Leadership(pg_url, 4242, FAST), Leadership(pg_url, 4242, FAST)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        t0 = time.monotonic()
        await first.release()
        await asyncio.wait_for(waiting, 2.0)
        assert second.held and time.monotonic() - t0 < 1.0
        other_center = Leadership(pg_url, 4243, FAST)  # another key: another lock
        assert await other_center.try_acquire()
        await other_center.release()
    finally:
        await first.release()
        await second.release()


async def test_a_holder_whose_session_ends_notices_within_a_poll(pg_url: str) -> None:
    """When the server ends the lock session (here: terminated by an administrator), the
    holder's watch returns within poll + check timeout, and the lock is free for the other."""
    import psycopg

    holder, other = Leadership(pg_url, 4244, FAST), Leadership(pg_url, 4244, FAST)
    try:
        assert await holder.try_acquire()
        watch = asyncio.create_task(holder.watch())
        await asyncio.sleep(0.2)
        assert not watch.done()
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE application_name = 'acd-leader'")
        t0 = time.monotonic()
        await asyncio.wait_for(watch, FAST.holder_detects_s + 1.0)
        assert time.monotonic() - t0 <= FAST.holder_detects_s + 0.2
        assert not holder.held
        assert await other.try_acquire()
    finally:
        await holder.release()
        await other.release()


def test_the_server_frees_a_silent_lock_only_after_the_holder_has_noticed() -> None:
    """The lock session's keepalives (set on both ends) outlast the holder's own check, and
    settings that would let the server free the lock first are refused."""
    timing = LockTiming()
    options = connection_options(timing)
    assert options["autocommit"] and options["keepalives"] == 1
    assert f"tcp_keepalives_idle={timing.keepalive_idle_s}" in options["options"]
    assert timing.server_detects_s > timing.holder_detects_s


def test_standby_settings_need_a_postgresql_store(tmp_path: Path) -> None:
    """A standby router without records in PostgreSQL is a configuration error naming the
    key; keepalives shorter than the holder's check are refused at load."""
    path = settings_file(tmp_path)
    path.write_text(path.read_text() + "standby: {enabled: true}\n")
    with pytest.raises(ConfigError, match=r"records\.url"):
        lock_url(load_settings(path, {}))
    path.write_text(path.read_text().replace(
        "standby: {enabled: true}", "standby: {enabled: true, poll_interval_s: 5}"))
    with pytest.raises(ConfigError, match="keepalive"):
        load_settings(path, {})
