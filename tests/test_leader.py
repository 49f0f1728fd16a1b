"""The leader lock: one holder at a time, the standby takes it when it frees, a lost lock is
noticed by its holder within a poll."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pgkit import free_port
from prometheus_client import CollectorRegistry
from test_serve import settings_file

from acd.errors import ConfigError
from acd.service.leader import Leadership, LockTiming, connection_options
from acd.service.settings import load_settings
from acd.service.standby import StandbyRouter, lock_url

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
        assert time.monotonic() - t0 <= FAST.holder_detects_s + 1.0  # (a busy CI box)
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


async def test_a_standby_serves_health_and_metrics_only_and_drops_silent_peers(
        tmp_path: Path, pg_url: str) -> None:
    """While another router holds the lock the process answers /health (role standby) and
    /metrics, listens for no FastAGI, and disconnects an HTTP peer that sends no headers
    within ``http.header_timeout_s``; stopped, it ends without ever starting a runtime."""
    http_port, agi_port = free_port(), free_port()
    path = settings_file(tmp_path)
    path.write_text(path.read_text().replace("agi: {port: 0,", f"agi: {{port: {agi_port},")
                    .replace("http: {port: 0}",
                             f"http: {{port: {http_port}, header_timeout_s: 0.3}}")
                    + f"records: {{url: '{pg_url}'}}\nstandby: {{enabled: true}}\n")
    path.write_text(path.read_text().replace("records: {database: acd.sqlite3}\n", ""))
    settings = load_settings(path, {})
    holder = Leadership(pg_url, settings.standby.lock_key, FAST)
    started: list[CollectorRegistry] = []

    def make_runtime(registry: CollectorRegistry) -> Any:
        started.append(registry)
        raise AssertionError("a standby must not start a runtime")

    standby = StandbyRouter(settings, make_runtime)
    stop = asyncio.Event()
    assert await holder.try_acquire()
    running = asyncio.create_task(standby.run(stop))
    try:
        async def up() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", http_port)
            except OSError:
                return False
            writer.close()
            return True

        for _ in range(200):
            if await up():
                break
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{http_port}/health") as response:
                assert response.status == 200
                assert (await response.json())["role"] == "standby"
            async with http.get(f"http://127.0.0.1:{http_port}/metrics") as response:
                text = await response.text()
                assert 'acd_router_role{role="standby"} 1.0' in text
            async with http.get(f"http://127.0.0.1:{http_port}/v1/queues") as response:
                assert response.status == 404  # no router while standby
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", agi_port)
        reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
        t0 = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # dropped, no headers
        assert time.monotonic() - t0 < 2.0
        writer.close()
    finally:
        stop.set()
        await asyncio.wait_for(running, 5.0)
        await holder.release()
    assert started == [] and standby.role == "standby"
