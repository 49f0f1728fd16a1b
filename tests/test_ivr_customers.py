"""Customer directories: SQLite table and HTTP service, with duplicates and failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.actions import CustomerCard, choose_card
from ivr.customers import MAX_RESPONSE_BYTES, HttpCustomers, SqliteCustomers

NUMBER = "+79161234567"


def test_sqlite_round_trip_and_duplicate_rule(tmp_path: Path) -> None:
    """Cards stored in SQLite come back per number; the most recently active one is chosen."""
    db = SqliteCustomers(tmp_path / "customers.sqlite")
    old = CustomerCard("c-1", NUMBER, "Ivan", "standard", False,
                       datetime(2025, 5, 1, tzinfo=UTC))
    new = CustomerCard("c-2", NUMBER, "Ivan P.", "vip", True, datetime(2026, 1, 2, tzinfo=UTC))
    other = CustomerCard("c-3", "+77012345678")
    db.create([old, new, other])
    cards = db.find_sync(NUMBER)
    assert sorted(c.customer_id for c in cards) == ["c-1", "c-2"]
    assert choose_card(cards) == (new, True)
    assert db.find_sync("+70000000000") == []


async def test_sqlite_async_lookup_and_hostile_number(tmp_path: Path) -> None:
    """The async lookup runs off the loop; a hostile number is only a bound parameter."""
    db = SqliteCustomers(tmp_path / "customers.sqlite")
    db.create([CustomerCard("c-1", NUMBER)])
    assert [c.customer_id for c in await db.find(NUMBER)] == ["c-1"]
    assert await db.find("' OR 1=1 --") == []


def test_sqlite_missing_database_gives_no_card(tmp_path: Path) -> None:
    """A missing database file is logged and gives no card rather than an error."""
    assert SqliteCustomers(tmp_path / "absent.sqlite").find_sync(NUMBER) == []


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """A local HTTP customer service with good, slow, failing and junk answers."""
    async def ok(request: web.Request) -> web.Response:
        assert request.query["number"] == NUMBER
        return web.json_response([
            {"customer_id": "h-1", "number": NUMBER, "tier": "vip",
             "last_active": "2026-01-01T10:00:00+03:00"},
            {"number": NUMBER},  # no id: skipped
            "junk",
        ])

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response([])

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500)

    async def junk(request: web.Request) -> web.Response:
        return web.Response(text="<html>not json")

    async def big(request: web.Request) -> web.Response:
        return web.Response(text="[" + " " * (MAX_RESPONSE_BYTES + 10) + "]")

    app = web.Application()
    for name, handler in (("ok", ok), ("slow", slow), ("fail", fail), ("junk", junk),
                          ("big", big)):
        app.router.add_get(f"/{name}", handler)
    srv = TestServer(app)
    await srv.start_server()
    yield srv
    await srv.close()


async def test_http_provider_reads_cards(server: TestServer) -> None:
    """Valid JSON cards are read; entries without an id or not objects are dropped."""
    cards = await HttpCustomers(str(server.make_url("/ok"))).find(NUMBER)
    assert [(c.customer_id, c.tier) for c in cards] == [("h-1", "vip")]
    assert cards[0].last_active == datetime(2026, 1, 1, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("path", ["/slow", "/fail", "/junk", "/big", "/missing"])
async def test_http_failures_give_no_card(server: TestServer, path: str) -> None:
    """Timeouts, error statuses, junk and oversized bodies give no card within the timeout."""
    t0 = asyncio.get_running_loop().time()
    cards = await HttpCustomers(str(server.make_url(path)), timeout_s=0.3).find(NUMBER)
    assert cards == []
    assert asyncio.get_running_loop().time() - t0 < 1.5


async def test_http_refused_connection_gives_no_card() -> None:
    """A service that is not listening gives no card."""
    assert await HttpCustomers("http://127.0.0.1:9/", timeout_s=0.5).find(NUMBER) == []


async def test_http_lookup_can_be_cancelled(server: TestServer) -> None:
    """Cancelling a lookup propagates CancelledError instead of returning no card."""
    task = asyncio.create_task(HttpCustomers(str(server.make_url("/slow")),
                                             timeout_s=5).find(NUMBER))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
