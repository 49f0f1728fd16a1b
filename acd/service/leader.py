"""Which of two routers is active: a PostgreSQL session advisory lock on its own connection.

Two ``acd serve`` processes share one PostgreSQL. Each opens a dedicated connection (autocommit,
nothing else runs on it) and asks ``pg_try_advisory_lock(key)`` every ``poll_interval_s``;
the one that gets it is the active router, the other stays standby. A session lock lives as
long as the session: when the active process dies its socket closes, the server ends the
session and the lock is free at the standby's next poll.

**Fencing.** A lock is only as good as the holder's knowledge that it still holds it. The
active side asks its lock connection ``SELECT 1`` every ``poll_interval_s`` with a deadline
of ``check_timeout_s``; any failure (timeout, broken socket, server restart) means the
lock may be gone, and :meth:`Leadership.watch` returns at once so the service stops routing
*before* the server can give the lock to the standby. The server frees the lock of a silent
peer only after its TCP keepalives fail (``keepalive_idle_s + keepalive_interval_s *
keepalive_count``, set per session), which the settings require to be longer than the
active side's own detection (``poll_interval_s + check_timeout_s``). So when the network
between the active router and the database breaks, the active side has stopped before the
standby can start: at worst neither routes for a few seconds, never both. (The choice is
availability second: a database hiccup longer than ``check_timeout_s`` costs a takeover.)

Connecting is retried with backoff (tenacity) for as long as the process runs; a standby
whose lock connection breaks opens a new one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

if TYPE_CHECKING:
    import psycopg

log = structlog.get_logger("acd.leader")


@dataclass(frozen=True)
class LockTiming:
    """How the lock is watched (see the module docstring for how these relate)."""

    poll_interval_s: float = 1.0
    check_timeout_s: float = 1.0
    connect_timeout_s: float = 3.0
    keepalive_idle_s: int = 3
    keepalive_interval_s: int = 1
    keepalive_count: int = 3

    @property
    def server_detects_s(self) -> float:
        """How long the server takes to end the session of a peer gone silent."""
        return self.keepalive_idle_s + self.keepalive_interval_s * self.keepalive_count

    @property
    def holder_detects_s(self) -> float:
        """How long the holder takes, at worst, to notice its lock connection is gone."""
        return self.poll_interval_s + self.check_timeout_s


def connection_options(timing: LockTiming) -> dict[str, Any]:
    """psycopg connection keywords for the lock connection: autocommit, TCP keepalives on
    both ends (libpq's for a dead server, the session's ``tcp_keepalives_*`` for a dead
    router) and a TCP user timeout so unacknowledged writes fail as fast."""
    user_timeout_ms = int(timing.server_detects_s * 1000)
    return {
        "autocommit": True,
        "connect_timeout": max(1, round(timing.connect_timeout_s)),
        "application_name": "acd-leader",
        "keepalives": 1,
        "keepalives_idle": timing.keepalive_idle_s,
        "keepalives_interval": timing.keepalive_interval_s,
        "keepalives_count": timing.keepalive_count,
        "tcp_user_timeout": user_timeout_ms,
        "options": (f"-c tcp_keepalives_idle={timing.keepalive_idle_s}"
                    f" -c tcp_keepalives_interval={timing.keepalive_interval_s}"
                    f" -c tcp_keepalives_count={timing.keepalive_count}"
                    f" -c tcp_user_timeout={user_timeout_ms}"),
    }


class Leadership:
    """The advisory lock of one router: :meth:`acquire` waits for it, :meth:`watch` returns
    when it may be lost, :meth:`release` gives it up."""

    def __init__(self, url: str, key: int, timing: LockTiming | None = None,
                 password: str | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.key = key
        self.timing = timing or LockTiming()
        self._password = password
        self._monotonic = monotonic
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self.held = False
        #: When the lock was last taken (monotonic seconds), None before.
        self.acquired_at: float | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """The lock connection, opened (again) with backoff until it succeeds."""
        import psycopg

        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._conn = None
        options = connection_options(self.timing)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(psycopg.OperationalError),
            wait=wait_exponential(multiplier=0.1, max=max(self.timing.poll_interval_s, 0.1)),
            before_sleep=lambda state: log.warning(
                "leader_connect_failed", attempt=state.attempt_number,
                error=str(state.outcome.exception() if state.outcome else "")[:200]),
            reraise=True)
        async for attempt in retrying:
            with attempt:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, password=self._password, **options)
        assert conn is not None
        self._conn = conn
        return conn

    async def try_acquire(self) -> bool:
        """One attempt: True when this process holds the lock now."""
        import psycopg

        if self.held:
            return True
        conn = await self._connect()
        try:
            async with asyncio.timeout(self.timing.check_timeout_s + self.timing.
                                       connect_timeout_s):
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = await cur.fetchone()
        except (psycopg.Error, TimeoutError) as exc:
            log.warning("leader_lock_attempt_failed", error=str(exc)[:200])
            await self._drop()
            return False
        self.held = bool(row and row[0])
        if self.held:
            self.acquired_at = self._monotonic()
            log.info("leader_lock_acquired", key=self.key)
        return self.held

    async def acquire(self) -> None:
        """Wait until this process holds the lock (standby until then)."""
        while not await self.try_acquire():
            await asyncio.sleep(self.timing.poll_interval_s)

    async def alive(self) -> bool:
        """Whether the lock connection answers within ``check_timeout_s`` (so the session,
        and with it the lock, still lives)."""
        import psycopg

        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return False
        try:
            async with asyncio.timeout(self.timing.check_timeout_s):
                await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError, OSError) as exc:
            log.error("leader_lock_check_failed", error=f"{type(exc).__name__}: {exc}"[:200])
            return False
        return True

    async def watch(self) -> None:
        """Return as soon as the lock may be lost (the caller must stop routing then).

        Between two checks the idle lock connection is watched for input: the server says
        nothing on it unasked except when it ends the session (terminated, shutting down),
        so any input, or EOF, is taken as the lock lost, at once rather than at the next
        check.
        """
        while await self._quiet(self.timing.poll_interval_s) and await self.alive():
            pass
        self.held = False
        log.critical("leader_lock_lost", key=self.key)
        await self._drop()

    async def _quiet(self, seconds: float) -> bool:
        """True when the lock connection stayed silent for ``seconds``."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            return False
        loop = asyncio.get_running_loop()
        spoke = asyncio.Event()
        fd = conn.fileno()
        # psycopg waits on this descriptor itself while a query runs: watch it only between.
        loop.add_reader(fd, spoke.set)
        try:
            async with asyncio.timeout(seconds):
                await spoke.wait()
        except TimeoutError:
            return True
        finally:
            loop.remove_reader(fd)
        log.error("leader_lock_connection_spoke", why="the server ends the lock session")
        return False

    async def release(self) -> None:
        """Give the lock up (closing the session frees it) so the standby can take over."""
        self.held = False
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except OSError as exc:
                log.warning("leader_close_failed", error=str(exc))
