"""Where call records, callback tasks and agent states are kept: one interface, two databases.

:class:`RecordStore` is the SQL-level interface the record classes
(:class:`~acd.runtime.records.CallRecords`, :class:`~acd.runtime.records.CallbackStore`,
:class:`~acd.service.state.AgentStateStore`) are written against. Its statements use one
dialect: ``?`` placeholders, ``INSERT ... ON CONFLICT ... DO UPDATE`` upserts, ``REAL`` times,
``INTEGER PRIMARY KEY`` ids. Two implementations run them:

- :class:`SqliteStore`, the embedded default for a single box: WAL, autocommit, every
  statement its own committed transaction.
- :class:`PostgresStore`, for two routers sharing state (psycopg 3): an autocommit connection;
  ``?`` becomes ``%s``, ``REAL`` becomes ``DOUBLE PRECISION`` and ``INTEGER PRIMARY KEY`` an
  identity column in the schema. ``synchronous="normal"`` turns off ``synchronous_commit`` for
  the session, the same promise SQLite's ``NORMAL`` gives: a statement the server answered
  survives the engine being killed (but the last fraction of a second may not survive the
  *server* crashing); ``"full"`` waits for the server's WAL flush, as PostgreSQL does by
  default. A lost connection makes statements fail at once (``errors``) and is reconnected at
  most every ``retry_s``, so an unreachable server never stalls the event loop for longer than
  one connect timeout per ``retry_s``.

Both run a statement synchronously: when :meth:`RecordStore.execute` returns, the change is
committed. Writers on the call path catch :attr:`RecordStore.errors`, log and count.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    import psycopg

#: Statement parameters.
Params = Sequence[Any]

#: The advisory lock key that serialises schema changes between routers opening one database
#: at once ("acd" and 1; the leader election uses other keys).
SCHEMA_LOCK_KEY = 0x61636401


class Rows(Protocol):
    """What a statement returns: a DB-API cursor's reading side."""

    @property
    def rowcount(self) -> int:
        """Rows changed by an INSERT, UPDATE or DELETE."""

    def fetchone(self) -> Any:
        """The next row (a tuple), or None."""

    def fetchall(self) -> list[Any]:
        """The remaining rows (tuples)."""

    def __iter__(self) -> Iterator[Any]:
        """The remaining rows (tuples)."""


class RecordStore(ABC):
    """A database connection that runs the record classes' statements (see the module)."""

    #: ``sqlite`` or ``postgresql``.
    dialect: str
    #: The driver's error classes: what a failed statement raises.
    errors: tuple[type[Exception], ...]

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Rows:
        """Run one statement, committed when this returns; its rows for a SELECT."""

    @abstractmethod
    def execute_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Run statements as one transaction (in one round trip on PostgreSQL)."""

    @abstractmethod
    def insert_id(self, sql: str, params: Params = ()) -> int:
        """Run one ``INSERT`` into a table with an ``id`` key; return the new row's id."""

    @abstractmethod
    def columns(self, table: str) -> set[str]:
        """The names of ``table``'s columns (empty when there is no such table)."""

    @abstractmethod
    def create(self, ddl: str) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` statements (``;``-separated, SQLite types)."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    def add_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> list[str]:
        """Add the ``(name, type)`` columns ``table`` lacks (a database from an older
        version); return the names added."""
        have = self.columns(table)
        added = [name for name, _ in columns if name not in have]
        for name, kind in columns:
            if name in added:
                self.execute(self.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
        return added

    def ddl(self, ddl: str) -> str:
        """DDL written for SQLite, in this database's words."""
        return ddl

    @property
    def where(self) -> str:
        """Where the data is, for logs (never a password)."""
        return self.dialect


class SqliteStore(RecordStore):
    """An SQLite connection in autocommit mode (see :func:`open_sqlite`)."""

    dialect = "sqlite"
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement (autocommit: committed when this returns)."""
        return self.connection.execute(sql, params)

    def execute_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Run statements in one transaction."""
        db = self.connection
        db.execute("BEGIN")
        try:
            for sql, params in statements:
                db.execute(sql, params)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def insert_id(self, sql: str, params: Params = ()) -> int:
        """Run an ``INSERT``; the new row's id."""
        return int(self.connection.execute(sql, params).lastrowid or 0)

    def columns(self, table: str) -> set[str]:
        """Column names, from ``PRAGMA table_info``."""
        return {row[1] for row in self.connection.execute(f"PRAGMA table_info({table})")}

    def create(self, ddl: str) -> None:
        """Run the DDL as written."""
        self.connection.executescript(ddl)

    def close(self) -> None:
        """Fold the WAL into the main file (a copied database is then complete), and close."""
        with contextlib.suppress(sqlite3.Error):  # else folded in at the next open
            self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.connection.close()


def open_sqlite(path: str | Path, synchronous: str = "normal") -> sqlite3.Connection:
    """Open (creating if needed) an SQLite database in WAL mode with autocommit."""
    if synchronous not in ("normal", "full"):
        raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: every statement commits on its own; nothing waits in a buffer.
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous.upper()}")
    db.execute("PRAGMA busy_timeout=2000")
    return db


_REAL = re.compile(r"\bREAL\b")
_ID_KEY = re.compile(r"\bINTEGER PRIMARY KEY\b")


def postgres_ddl(ddl: str) -> str:
    """SQLite DDL in PostgreSQL's words: 8-byte floats (PostgreSQL's REAL has 4), and
    identity ids."""
    return _REAL.sub("DOUBLE PRECISION",
                     _ID_KEY.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", ddl))


def postgres_sql(sql: str) -> str:
    """A statement with ``?`` placeholders in psycopg's ``%s`` style."""
    return sql.replace("%", "%%").replace("?", "%s")


def redact(url: str) -> str:
    """``url`` without a password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresStore(RecordStore):
    """A psycopg 3 connection in autocommit mode, reconnected after a failure."""

    dialect = "postgresql"

    def __init__(self, url: str, password: str | None = None, synchronous: str = "normal",
                 connect_timeout_s: float = 2.0, statement_timeout_s: float = 5.0,
                 retry_s: float = 5.0) -> None:
        import psycopg

        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        self._psycopg = psycopg
        self.errors = (psycopg.Error,)
        self.url = url
        self._password = password
        self.retry_s = retry_s
        timeout_ms = int(statement_timeout_s * 1000)
        self._conninfo = psycopg.conninfo.make_conninfo(
            url, connect_timeout=max(1, round(connect_timeout_s)), application_name="acd",
            # Bounds a write to an unreachable server (unacknowledged data) to the timeout.
            tcp_user_timeout=timeout_ms,
            options=(f"-c statement_timeout={timeout_ms}"
                     f" -c synchronous_commit={'off' if synchronous == 'normal' else 'on'}"))
        self._sql: dict[str, str] = {}
        self._conn: psycopg.Connection[Any] | None = None
        self._retry_at = 0.0
        self._closed = False
        self._connection()  # the first connection's failure is the caller's to report

    def ddl(self, ddl: str) -> str:
        """SQLite DDL in PostgreSQL's words (:func:`postgres_ddl`)."""
        return postgres_ddl(ddl)

    def add_columns(self, table: str, columns: Sequence[tuple[str, str]]) -> list[str]:
        """Add the missing columns under the schema lock (``IF NOT EXISTS``: another router
        may have added them meanwhile)."""
        have = self.columns(table)
        added = [name for name, _ in columns if name not in have]
        if added:
            self.create(";".join(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}"
                                 for name, kind in columns if name in added))
        return added

    @property
    def where(self) -> str:
        """The URL without its password."""
        return redact(self.url)

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise self._psycopg.InterfaceError("the record store is closed")
        now = time.monotonic()
        if now < self._retry_at:
            raise self._psycopg.OperationalError(
                f"the records database {self.where} is unreachable; next try in "
                f"{self._retry_at - now:.1f} s")
        try:
            conn = self._psycopg.connect(self._conninfo, autocommit=True,
                                         password=self._password)
        except self._psycopg.Error:
            self._retry_at = time.monotonic() + self.retry_s
            raise
        self._conn = conn
        return conn

    def _translate(self, sql: str) -> str:
        out = self._sql.get(sql)
        if out is None:
            out = self._sql[sql] = postgres_sql(sql)
        return out

    def _failed(self, exc: Exception) -> None:
        """After an error: a broken connection is dropped, to be opened again later."""
        conn = self._conn
        if conn is not None and (conn.broken or conn.closed):
            self._conn = None
            self._retry_at = time.monotonic() + self.retry_s
            conn.close()

    def execute(self, sql: str, params: Params = ()) -> psycopg.Cursor[Any]:
        """Run one statement (autocommit: committed when this returns)."""
        conn = self._connection()
        try:
            return conn.execute(self._translate(sql), params)
        except self._psycopg.Error as exc:
            self._failed(exc)
            raise

    def execute_batch(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Send the statements in one pipeline: one round trip, and (no Sync between them)
        one implicit transaction: a failing statement rolls back the ones before it."""
        conn = self._connection()
        try:
            with conn.pipeline():
                for sql, params in statements:
                    conn.execute(self._translate(sql), params)
        except self._psycopg.Error as exc:
            self._failed(exc)
            raise

    def insert_id(self, sql: str, params: Params = ()) -> int:
        """Run an ``INSERT ... RETURNING id``; the new row's id."""
        row = self.execute(sql + " RETURNING id", params).fetchone()
        return int(row[0]) if row is not None else 0

    def columns(self, table: str) -> set[str]:
        """Column names, from the information schema (the connection's schema)."""
        rows = self.execute("SELECT column_name FROM information_schema.columns"
                            " WHERE table_schema = current_schema() AND table_name = ?",
                            (table,)).fetchall()
        return {row[0] for row in rows}

    def create(self, ddl: str) -> None:
        """Run the DDL in one transaction under an advisory lock: two routers starting at
        once must not both create a table."""
        conn = self._connection()
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_KEY,))
                for statement in self.ddl(ddl).split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except self._psycopg.Error as exc:
            self._failed(exc)
            raise

    def close(self) -> None:
        """Close the connection; later statements fail."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def as_store(db: RecordStore | sqlite3.Connection) -> RecordStore:
    """``db`` as a :class:`RecordStore` (a bare SQLite connection is wrapped)."""
    return db if isinstance(db, RecordStore) else SqliteStore(db)


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return urlsplit(url).scheme in ("postgresql", "postgres")
