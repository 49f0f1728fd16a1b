"""Customer directories: caller number -> customer cards (SQLite by default, or HTTP).

SQLite schema (one row per card; several cards may share a number, see :func:`choose_card`)::

    CREATE TABLE customers (
        customer_id    TEXT PRIMARY KEY,
        number         TEXT NOT NULL,          -- E.164, e.g. +79161234567
        name           TEXT NOT NULL DEFAULT '',
        tier           TEXT NOT NULL DEFAULT 'standard',   -- standard | vip | ...
        open_complaint INTEGER NOT NULL DEFAULT 0,          -- 1: route to the voc team
        last_active    TEXT                    -- ISO 8601 with offset; NULL = never active
    );
    CREATE INDEX customers_number ON customers(number);

The HTTP provider GETs ``<url>?number=<E.164>`` and expects a JSON list of objects with the
same fields. Any failure (timeout, status, bad JSON) gives no card and a log line, never an error.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiohttp
import structlog

from ivr.actions import CustomerCard, choose_card

__all__ = ["CustomerDirectory", "HttpCustomers", "SqliteCustomers", "choose_card"]

log = structlog.get_logger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id    TEXT PRIMARY KEY,
    number         TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    tier           TEXT NOT NULL DEFAULT 'standard',
    open_complaint INTEGER NOT NULL DEFAULT 0,
    last_active    TEXT
);
CREATE INDEX IF NOT EXISTS customers_number ON customers(number);
"""
#: Most cards returned for one number; more is a data problem, not a reason to slow a call.
MAX_CARDS = 20
#: Largest HTTP response body read, in bytes.
MAX_RESPONSE_BYTES = 256 * 1024


class CustomerDirectory(Protocol):
    """Where customer cards come from."""

    async def find(self, number: str) -> list[CustomerCard]:
        """All cards for an E.164 number (empty when none or on failure)."""
        ...


def _when(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    # Naive times are taken as UTC so that comparisons between cards never fail.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def card_from(row: dict[str, object]) -> CustomerCard | None:
    """Build a card from a database row or JSON object; None when the id or number is missing."""
    cid, number = row.get("customer_id"), row.get("number")
    if not isinstance(cid, str | int) or not isinstance(number, str) or cid == "":
        return None
    tier = row.get("tier")
    name = row.get("name")
    return CustomerCard(str(cid)[:64], number[:32], name[:200] if isinstance(name, str) else "",
                        tier[:32] if isinstance(tier, str) and tier else "standard",
                        bool(row.get("open_complaint")), _when(row.get("last_active")))


class SqliteCustomers:
    """Customer cards in a SQLite table (the default provider)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    def create(self, cards: Iterable[CustomerCard] = ()) -> None:
        """Create the table if needed and insert (or replace) cards."""
        with sqlite3.connect(self.path) as db:
            db.executescript(SCHEMA)
            db.executemany(
                "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?, ?, ?)",
                [(c.customer_id, c.number, c.name, c.tier, int(c.open_complaint),
                  c.last_active.isoformat() if c.last_active else None) for c in cards])
        db.close()

    def find_sync(self, number: str) -> list[CustomerCard]:
        """Blocking lookup (trace, tools); :meth:`find` runs it off the event loop."""
        try:
            # Read-only: a lookup must never create or change the customer database.
            db = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error as exc:
            log.warning("customer_lookup_failed", provider="sqlite", error=str(exc))
            return []
        try:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM customers WHERE number = ? LIMIT ?",
                              (number, MAX_CARDS)).fetchall()
        except sqlite3.Error as exc:
            log.warning("customer_lookup_failed", provider="sqlite", error=str(exc))
            return []
        finally:
            db.close()
        cards = (card_from(dict(r)) for r in rows)
        return [c for c in cards if c is not None]

    async def find(self, number: str) -> list[CustomerCard]:
        """All cards for the number, read in a worker thread."""
        return await asyncio.to_thread(self.find_sync, number)


class HttpCustomers:
    """Customer cards from an HTTP service, with a bounded timeout; failure means no card."""

    def __init__(self, url: str, *, timeout_s: float = 1.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session = session

    async def find(self, number: str) -> list[CustomerCard]:
        """GET ``url?number=...``; any failure is logged and gives an empty list."""
        own = self.session is None
        session = aiohttp.ClientSession() if own else self.session
        assert session is not None
        try:
            async with session.get(self.url, params={"number": number},
                                   timeout=self.timeout) as resp:
                if resp.status != 200:
                    log.warning("customer_lookup_failed", provider="http", status=resp.status)
                    return []
                body = await resp.content.read(MAX_RESPONSE_BYTES + 1)
            if len(body) > MAX_RESPONSE_BYTES:
                log.warning("customer_lookup_failed", provider="http", error="response too large")
                return []
            data = json.loads(body)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("customer_lookup_failed", provider="http",
                        error=type(exc).__name__, detail=str(exc)[:200])
            return []
        finally:
            if own:
                await session.close()
        if not isinstance(data, list):
            log.warning("customer_lookup_failed", provider="http", error="not a JSON list")
            return []
        cards = (card_from(x) for x in data[:MAX_CARDS] if isinstance(x, dict))
        return [c for c in cards if c is not None]
