"""Call records and callback tasks: one row per call, written when the call ends.

They are kept in a :class:`~acd.runtime.store.RecordStore`: SQLite by default, or PostgreSQL
when two routers share them. Every statement commits before the observer returns, so once a
finished call's row is written, killing the process (``kill -9``) cannot lose it. SQLite runs
in WAL mode with autocommit; ``synchronous=NORMAL`` (the default) keeps that promise for
process crashes without an fsync per call; ``FULL`` adds an fsync per call so a power cut
cannot lose it either. Writes are tens of microseconds with NORMAL, small enough to stay on
the event loop; on PostgreSQL each is a round trip to the server (docs/operations.md has the
figures).

Calls still in progress are kept in ``live_calls`` (one row per call, rewritten at each step:
queued, ringing, talking, then wrap-up until the agent leaves it), so a restarted engine knows
which agent is on which call (:mod:`acd.service.state`). Tables and columns are only ever
added (``CREATE TABLE IF NOT EXISTS``, ``ALTER TABLE ... ADD COLUMN`` at open), so a database
from an older version opens as it is.

The schema is documented in docs/operations.md; :func:`export_call_log` writes the
simulator's call-log CSV (docs/traffic.md) so recorded traffic can be replayed.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import statistics
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import structlog

from acd.core.model import (
    AgentState,
    AgentStateChanged,
    CallAnswered,
    CallEnded,
    CallOffered,
    CallQueued,
    CallRequeued,
    Outcome,
    Output,
    Overflow,
)
from acd.runtime.store import (
    PostgresStore,
    RecordStore,
    SqliteStore,
    as_store,
    is_postgres_url,
    open_sqlite,
)
from ivr.actions import CallbackTask

log = structlog.get_logger("acd.records")

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id              INTEGER PRIMARY KEY,
    call_id         TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    entry_queue     TEXT NOT NULL,
    queue           TEXT NOT NULL,
    language        TEXT NOT NULL,
    country         TEXT NOT NULL,
    agent_id        TEXT,
    site            TEXT,
    arrival         REAL NOT NULL,
    queued          REAL,
    offered         REAL,
    answered        REAL,
    ended           REAL NOT NULL,
    wait_s          REAL NOT NULL,
    talk_s          REAL NOT NULL,
    offers          INTEGER NOT NULL,
    overflow_target TEXT,
    overflow_reason TEXT,
    caller          TEXT,
    customer_id     TEXT,
    pbx             TEXT,
    survey_score    INTEGER
);
CREATE INDEX IF NOT EXISTS calls_by_arrival ON calls (arrival);
CREATE INDEX IF NOT EXISTS calls_by_call_id ON calls (call_id);
CREATE TABLE IF NOT EXISTS callbacks (
    id          INTEGER PRIMARY KEY,
    created     REAL NOT NULL,
    queue       TEXT NOT NULL,
    language    TEXT NOT NULL,
    country     TEXT NOT NULL,
    number      TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    recording   TEXT,
    customer_id TEXT,
    status      TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE IF NOT EXISTS live_calls (
    call_id     TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    entry_queue TEXT NOT NULL,
    queue       TEXT NOT NULL,
    language    TEXT NOT NULL,
    country     TEXT NOT NULL,
    arrival     REAL NOT NULL,
    queued      REAL NOT NULL,
    offered     REAL,
    answered    REAL,
    agent_id    TEXT,
    offers      INTEGER NOT NULL DEFAULT 0,
    ended       REAL,
    priority    INTEGER
);
CREATE TABLE IF NOT EXISTS agent_states (
    agent_id TEXT PRIMARY KEY,
    state    TEXT NOT NULL,
    reason   TEXT,
    endpoint TEXT,
    since    REAL NOT NULL
);
"""

#: The columns :class:`CallRecords` writes when a call ends.
CALL_COLUMNS = ("call_id", "outcome", "entry_queue", "queue", "language", "country", "agent_id",
                "site", "arrival", "queued", "offered", "answered", "ended", "wait_s", "talk_s",
                "offers", "overflow_target", "overflow_reason")
#: Columns added to ``calls`` later (all nullable); databases written before gain them at open.
CALL_ADDED_COLUMNS = (
    ("caller", "TEXT"),  # the caller's number as Asterisk gave it, sanitised
    ("customer_id", "TEXT"),  # the IVR's identified customer
    ("pbx", "TEXT"),  # the PBX the call arrived on (multi-PBX setups)
    ("survey_score", "INTEGER"),  # post-call survey score 1..5
)
#: Columns added to ``live_calls`` later (all nullable); databases written before gain them at
#: open, and calls they kept read them as None.
LIVE_ADDED_COLUMNS = (
    ("priority", "INTEGER"),  # the priority the call was queued with (its re-entry keeps it)
)
#: Every column :func:`read_calls` returns, in order.
READ_COLUMNS = CALL_COLUMNS + tuple(name for name, _ in CALL_ADDED_COLUMNS)
#: What a call's row is written with: the columns above, then who called and where.
#: ``caller`` and ``customer_id`` come from the drivers (:meth:`CallRecords.identify`),
#: ``pbx`` from the router service, ``survey_score`` later from the post-call survey
#: (:meth:`CallRecords.set_survey_score`).
_WRITTEN = (*CALL_COLUMNS, "caller", "customer_id", "pbx")
_CALLER_RE = re.compile(r"\+?[0-9]{1,32}")
#: Calls identified but not yet ended that are kept at most (the oldest go first).
_MAX_IDENTIFIED = 100_000


def sanitize_caller(raw: str | None) -> str | None:
    """The caller's number as stored: digits with an optional leading ``+``, else None."""
    value = (raw or "").strip()
    return value if _CALLER_RE.fullmatch(value) else None


def prepare(store: RecordStore) -> RecordStore:
    """Create the tables ``store`` lacks and add the columns newer versions added."""
    store.create(SCHEMA)
    store.add_columns("calls", CALL_ADDED_COLUMNS)
    store.add_columns("live_calls", LIVE_ADDED_COLUMNS)
    store.add_columns("callbacks", CALLBACK_DIAL_COLUMNS)
    store.create("CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (status, next_attempt)")
    return store


def open_database(path: str | Path, synchronous: str = "normal") -> sqlite3.Connection:
    """Open (creating if needed) the SQLite service database in WAL mode with autocommit."""
    db = open_sqlite(path, synchronous)
    prepare(SqliteStore(db))
    return db


def open_store(where: str | Path, synchronous: str = "normal",
               password: str | None = None) -> RecordStore:
    """Open the records: a ``postgresql://`` URL (psycopg 3; ``password`` from the
    environment) or an SQLite file's path; tables are created and migrated."""
    if isinstance(where, str) and is_postgres_url(where):
        return prepare(PostgresStore(where, password, synchronous))
    return SqliteStore(open_database(where, synchronous))


@dataclass
class OpenCall:
    """What the records know about a call still in the router (wall times, Unix seconds)."""

    call_id: str
    entry_queue: str
    queue: str
    language: str
    country: str
    arrived: float
    arrival: float
    queued: float
    offered: float | None = None
    answered: float | None = None
    agent_id: str | None = None
    offers: int = 0
    overflow: tuple[str, str] | None = None
    #: The priority the driver queued the call with (None: not known).
    priority: int | None = None


@dataclass(frozen=True)
class LiveCall:
    """A call the engine had in progress, as ``live_calls`` keeps it (wall times, Unix s).

    ``state``: queued, ringing, talking, or wrap_up (ended; its agent still wraps up).
    """

    call_id: str
    state: str
    entry_queue: str
    queue: str
    language: str
    country: str
    arrival: float
    queued: float
    offered: float | None
    answered: float | None
    agent_id: str | None
    offers: int
    ended: float | None
    #: The priority it was queued with; None when a version without the column kept it.
    priority: int | None = None

    def open_call(self, router_now: float, wall: float) -> OpenCall:
        """The records' view of this call for a router whose clock reads ``router_now``."""
        return OpenCall(self.call_id, self.entry_queue, self.queue, self.language, self.country,
                        router_now - max(0.0, wall - self.arrival), self.arrival, self.queued,
                        self.offered, self.answered, self.agent_id, self.offers,
                        priority=self.priority)


_LIVE_COLUMNS = ("call_id, state, entry_queue, queue, language, country, arrival, queued, "
                 "offered, answered, agent_id, offers, ended, priority")
_KEEP_LIVE = (f"INSERT INTO live_calls ({_LIVE_COLUMNS})"
              " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
              " ON CONFLICT (call_id) DO UPDATE"
              " SET " + ", ".join(f"{c} = excluded.{c}" for c in _LIVE_COLUMNS.split(", ")[1:]))
_INSERT_CALL = (f"INSERT INTO calls ({', '.join(_WRITTEN)}) "
                f"VALUES ({', '.join('?' * len(_WRITTEN))})")


class CallRecords:
    """A service observer: follows each call, keeps it in ``live_calls`` while it lasts and
    writes its row to ``calls`` when it ends."""

    def __init__(self, db: RecordStore | sqlite3.Connection) -> None:
        self.db = as_store(db)
        self.open: dict[str, OpenCall] = {}
        self.written = 0
        self.failures = 0
        #: Agents whose last call's row is kept until they leave wrap-up.
        self._wrapping: set[str] = set()
        #: call id -> (caller, customer id), set by the drivers, written with the call's row.
        self._identities: dict[str, tuple[str | None, str | None]] = {}
        #: Told of each survey score stored (the wallboard's average of the day).
        self.on_survey: Callable[[int], None] | None = None
        #: Told of each call row written, as a column -> value mapping (repeat-call metrics).
        self.on_written: Callable[[dict[str, object]], None] | None = None
        #: The PBX a call arrived on (the router service's, in multi-PBX setups).
        self.pbx_of: Callable[[str], str | None] | None = None
        #: The priority a call was queued with (the router service's): kept in ``live_calls``
        #: so a call taken back after a failover keeps it.
        self.priority_of: Callable[[str], int | None] | None = None

    def identify(self, call_id: str, caller: str | None, customer_id: str | None) -> None:
        """Who called (number as Asterisk gave it, sanitised here) and the IVR's customer id:
        stored on the call's row when it is written."""
        if len(self._identities) >= _MAX_IDENTIFIED:
            del self._identities[next(iter(self._identities))]
        self._identities[call_id] = (sanitize_caller(caller), customer_id or None)

    def set_survey_score(self, call_id: str, score: int) -> bool:
        """Store a post-call survey score (1..5) on the call's latest row; False if no row."""
        if not 1 <= score <= 5:
            raise ValueError(f"a survey score is 1 to 5, got {score}")
        try:
            cursor = self.db.execute(
                "UPDATE calls SET survey_score = ? WHERE id = "
                "(SELECT MAX(id) FROM calls WHERE call_id = ?)", (score, call_id))
        except self.db.errors as exc:
            self.failures += 1
            log.error("survey_score_failed", call_id=call_id, error=str(exc))
            return False
        if cursor.rowcount != 1:
            return False
        if self.on_survey is not None:
            self.on_survey(score)
        return True

    def survey_scores_since(self, since: float) -> tuple[int, int]:
        """How many survey scores calls arriving from ``since`` on have, and their sum."""
        row = self.db.execute("SELECT COUNT(survey_score), COALESCE(SUM(survey_score), 0)"
                              " FROM calls WHERE arrival >= ?", (since,)).fetchone()
        return int(row[0]), int(row[1])

    def __call__(self, output: Output, wall: float) -> None:
        """Track ``output``; on ``CallEnded`` write and commit the call's row."""
        if isinstance(output, CallQueued):
            call = self.open.get(output.call_id)
            if call is None:
                call = self.open[output.call_id] = OpenCall(
                    output.call_id, output.queue, output.queue, output.language, output.country,
                    output.at, wall, wall, priority=self._priority(output.call_id))
            else:
                call.queue = output.queue
            self._keep(call, "queued")
        elif isinstance(output, CallOffered):
            call = self.open.get(output.call_id)
            if call is not None:
                call.offers += 1
                call.agent_id = output.agent_id
                if call.offered is None:
                    call.offered = wall
                self._keep(call, "ringing")
        elif isinstance(output, CallAnswered):
            call = self.open.get(output.call_id)
            if call is not None:
                call.answered = wall
                call.agent_id = output.agent_id
                self._keep(call, "talking")
        elif isinstance(output, CallRequeued):
            call = self.open.get(output.call_id)
            if call is not None:
                self._keep(call, "queued", agent_id=None)
        elif isinstance(output, Overflow):
            call = self.open.get(output.call_id)
            if call is not None:
                call.overflow = (output.target, output.reason)
        elif isinstance(output, CallEnded):
            self._end(output, wall)
        elif isinstance(output, AgentStateChanged) and output.state is not AgentState.WRAP_UP \
                and output.agent_id in self._wrapping:
            self._wrapping.discard(output.agent_id)
            self._execute("DELETE FROM live_calls WHERE agent_id = ? AND state = 'wrap_up'",
                          (output.agent_id,))

    # --- calls in progress

    def live_calls(self) -> list[LiveCall]:
        """Every call ``live_calls`` holds (at start: what the last run left), oldest first."""
        rows = self.db.execute(f"SELECT {_LIVE_COLUMNS} FROM live_calls ORDER BY arrival"
                               ).fetchall()
        return [LiveCall(*row) for row in rows]

    def resume(self, live: LiveCall, router_now: float, wall: float) -> None:
        """Follow a call the last run left in progress, so its end writes one full row."""
        self.open[live.call_id] = live.open_call(router_now, wall)

    def wrapping(self, agent_id: str) -> None:
        """An agent restored into wrap-up: its call's row goes when the wrap-up ends."""
        self._wrapping.add(agent_id)

    def forget_live(self, call_id: str) -> None:
        """Drop a call's ``live_calls`` row (a wrap-up that is over, a call no one holds)."""
        self._execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

    def write_lost(self, live: LiveCall, wall: float, reason: str) -> None:
        """Write the row of a call the last run left waiting that no one took back (the
        dialplan's fallback has the caller): overflowed, with ``reason``."""
        self.open.pop(live.call_id, None)
        row = (live.call_id, Outcome.OVERFLOWED.value, live.entry_queue, live.queue,
               live.language, live.country, None, None, live.arrival, live.queued,
               live.offered, None, wall, max(0.0, wall - live.arrival), 0.0, live.offers,
               None, reason, *self._identities.pop(live.call_id, (None, None)),
               self._pbx(live.call_id))
        if self._insert(row, live.call_id):
            self.forget_live(live.call_id)

    def _keep(self, call: OpenCall, state: str, agent_id: str | None = None) -> None:
        agent = call.agent_id if state != "queued" else agent_id
        self._execute(_KEEP_LIVE,
                      (call.call_id, state, call.entry_queue, call.queue, call.language,
                       call.country, call.arrival, call.queued, call.offered, call.answered,
                       agent, call.offers, call.priority))

    def _execute(self, sql: str, args: tuple[object, ...]) -> None:
        try:
            self.db.execute(sql, args)
        except self.db.errors as exc:
            self.failures += 1
            log.error("live_call_write_failed", error=str(exc))

    def _end(self, e: CallEnded, wall: float) -> None:
        """Write the call's row and update its ``live_calls`` row, as one transaction."""
        row = self._row(e, wall)
        if e.outcome is Outcome.ANSWERED and e.agent_id is not None:
            # Kept until the agent leaves wrap-up: a restart meanwhile restores the wrap-up.
            live: tuple[str, Sequence[object]] = (
                "UPDATE live_calls SET state = 'wrap_up', ended = ?, agent_id = ?"
                " WHERE call_id = ?", (wall, e.agent_id, e.call_id))
            self._wrapping.add(e.agent_id)
        else:
            live = ("DELETE FROM live_calls WHERE call_id = ?", (e.call_id,))
        try:
            self.db.execute_batch([(_INSERT_CALL, row), live])
        except self.db.errors as exc:
            self.failures += 1
            log.error("call_record_failed", call_id=e.call_id, error=str(exc))
            return
        self.written += 1
        if self.on_written is not None:
            self.on_written(dict(zip(_WRITTEN, row, strict=True)))

    def _row(self, e: CallEnded, wall: float) -> tuple[object, ...]:
        call = self.open.pop(e.call_id, None)
        # A call queued with an earlier arrival (adopted after a restart) waited before it
        # was queued here: move the wall-clock arrival back by that much.
        arrival = (call.arrival - max(0.0, call.arrived - e.arrived) if call is not None
                   else wall - (e.at - e.arrived))
        answered = call.answered if call is not None else None
        if e.outcome is Outcome.ANSWERED and answered is not None:
            wait, talk = answered - arrival, max(0.0, wall - answered)
        else:
            wait, talk = e.wait_s, e.talk_s
        overflow = call.overflow if call is not None else None
        row = (e.call_id, e.outcome.value, call.entry_queue if call else e.queue, e.queue,
               e.language, e.country, e.agent_id, e.site, arrival,
               call.queued if call else None, call.offered if call else None, answered, wall,
               wait, talk, call.offers if call else 0,
               overflow[0] if overflow else None, overflow[1] if overflow else None,
               *self._identities.pop(e.call_id, (None, None)), self._pbx(e.call_id))
        return row

    def _pbx(self, call_id: str) -> str | None:
        return self.pbx_of(call_id) if self.pbx_of is not None else None

    def _priority(self, call_id: str) -> int | None:
        return self.priority_of(call_id) if self.priority_of is not None else None

    def _insert(self, row: tuple[object, ...], call_id: str) -> bool:
        try:
            self.db.execute(_INSERT_CALL, row)
        except self.db.errors as exc:
            self.failures += 1
            log.error("call_record_failed", call_id=call_id, error=str(exc))
            return False
        self.written += 1
        if self.on_written is not None:
            self.on_written(dict(zip(_WRITTEN, row, strict=True)))
        return True


#: Columns the dialler added to ``callbacks``; databases written before it gain them at open.
CALLBACK_DIAL_COLUMNS = (
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("next_attempt", "REAL NOT NULL DEFAULT 0"),
    ("last_result", "TEXT"),
    ("updated", "REAL"),
)
_TASK_COLUMNS = ("id, queue, language, country, number, priority, reason, recording, customer_id,"
                 " status, attempts, next_attempt, last_result, created")


@dataclass(frozen=True)
class StoredCallback:
    """A callback task as stored, with its dialling state (times are Unix seconds)."""

    id: int
    task: CallbackTask
    #: open (waiting for its next attempt), dialing (an attempt running), done, failed.
    status: str
    attempts: int
    next_attempt: float
    last_result: str | None
    created: float

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StoredCallback:
        """Build from a row selected with ``_TASK_COLUMNS`` (values as SQLite returns them)."""
        (id_, queue, language, country, number, priority, reason, recording, customer,
         status, attempts, next_attempt, last_result, created) = row
        task = CallbackTask(queue, language, country, number, int(priority), reason, recording,
                            customer)
        return cls(int(id_), task, status, int(attempts), float(next_attempt), last_result,
                   float(created))


class CallbackStore:
    """Callback tasks (voicemail, accepted callback offers): the service's ``CallbackSink``.

    It also keeps each task's dialling state for :mod:`acd.callbacks.dialler`: attempts made,
    when the next may start, the last result, and ``open`` / ``dialing`` / ``done`` /
    ``failed``. Every change is one committed statement, so tasks survive a restart.
    """

    def __init__(self, db: RecordStore | sqlite3.Connection,
                 clock: type[datetime] = datetime) -> None:
        self.db = as_store(db)
        self._clock = clock
        if self.db.dialect == "sqlite":  # a connection opened without open_database
            prepare(self.db)

    def _now(self) -> float:
        return self._clock.now(UTC).timestamp()

    def add(self, task: CallbackTask) -> None:
        """Store one callback task, committed at once, due now (the ``CallbackSink`` side)."""
        self.insert(task)

    def insert(self, task: CallbackTask, due: float | None = None) -> int:
        """Store one callback task, committed at once, due now (or at ``due``); return its id."""
        now = self._now()
        return self.db.insert_id(
            "INSERT INTO callbacks (created, queue, language, country, number, priority, reason,"
            " recording, customer_id, next_attempt, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (now, task.queue, task.language, task.country, task.number, task.priority,
             task.reason, task.recording, task.customer_id, now if due is None else due, now))

    def open_tasks(self) -> list[CallbackTask]:
        """Callback tasks not yet done, oldest first."""
        rows = self.db.execute(
            "SELECT queue, language, country, number, priority, reason, recording, customer_id"
            " FROM callbacks WHERE status = 'open' ORDER BY id").fetchall()
        return [CallbackTask(*row) for row in rows]

    def get(self, task_id: int) -> StoredCallback | None:
        """One task by id, whatever its status."""
        row = self.db.execute(f"SELECT {_TASK_COLUMNS} FROM callbacks WHERE id = ?",
                              (task_id,)).fetchone()
        return None if row is None else StoredCallback.from_row(row)

    def due(self, now: float, limit: int = 100) -> list[StoredCallback]:
        """Open tasks whose next attempt is due at ``now``: highest priority, then oldest due."""
        rows = self.db.execute(
            f"SELECT {_TASK_COLUMNS} FROM callbacks WHERE status = 'open' AND next_attempt <= ?"
            " ORDER BY priority DESC, next_attempt, id LIMIT ?", (now, limit)).fetchall()
        return [StoredCallback.from_row(r) for r in rows]

    def count(self, status: str) -> int:
        """How many tasks are in ``status``."""
        row = self.db.execute("SELECT COUNT(*) FROM callbacks WHERE status = ?",
                              (status,)).fetchone()
        return int(row[0])

    def start_attempt(self, task_id: int, now: float) -> StoredCallback | None:
        """Mark an open task ``dialing`` and count the attempt; None if it was not open.

        The status check is in the UPDATE itself, so a task is never dialled twice at once.
        """
        cursor = self.db.execute(
            "UPDATE callbacks SET status = 'dialing', attempts = attempts + 1, updated = ?"
            " WHERE id = ? AND status = 'open'", (now, task_id))
        return self.get(task_id) if cursor.rowcount == 1 else None

    def finish_attempt(self, task_id: int, result: str, now: float, *, done: bool,
                       retry_at: float | None) -> str:
        """Record an attempt's result: ``done``, else open again at ``retry_at``, else failed.

        Returns the new status.
        """
        status = "done" if done else ("open" if retry_at is not None else "failed")
        self.db.execute(
            "UPDATE callbacks SET status = ?, last_result = ?, next_attempt = ?, updated = ?"
            " WHERE id = ?",
            (status, result, retry_at if retry_at is not None else now, now, task_id))
        return status

    def defer(self, task_id: int, until: float, now: float) -> None:
        """Move an open task's next attempt to ``until`` (its queue is closed until then)."""
        self.db.execute("UPDATE callbacks SET next_attempt = ?, updated = ?"
                        " WHERE id = ? AND status = 'open'", (until, now, task_id))

    def recover(self, now: float) -> int:
        """After a restart: attempts cut short by the stop are open again, due now.

        The attempt stays counted (the customer may have been rung).
        """
        cursor = self.db.execute(
            "UPDATE callbacks SET status = 'open', last_result = 'interrupted',"
            " next_attempt = ?, updated = ? WHERE status = 'dialing'", (now, now))
        return cursor.rowcount


def read_calls(db: RecordStore | sqlite3.Connection, since: float | None = None,
               until: float | None = None) -> Iterator[dict[str, object]]:
    """Call rows (every column of :data:`READ_COLUMNS`) in arrival order, optionally within
    ``[since, until)`` (Unix seconds)."""
    store = as_store(db)
    have = store.columns("calls")
    # A database opened read-only may predate the added columns: they read as None.
    picked = [c if c in have else f"NULL AS {c}" for c in READ_COLUMNS]
    sql = f"SELECT {', '.join(picked)} FROM calls WHERE arrival >= ? AND arrival < ?"
    rows = store.execute(sql + " ORDER BY arrival, id",
                         (since if since is not None else float("-inf"),
                          until if until is not None else float("inf")))
    for row in rows:
        yield dict(zip(READ_COLUMNS, row, strict=True))


#: Talk time given to replayed calls that were never answered nor abandoned (overflowed)
#: when no answered call in the export tells us better.
FALLBACK_TALK_S = 180.0


def export_call_log(db: RecordStore | sqlite3.Connection, out: str | Path,
                    since: float | None = None, until: float | None = None,
                    tz: tzinfo = UTC) -> tuple[int, int]:
    """Write the simulator's call-log CSV (docs/traffic.md); return (written, skipped).

    Answered calls replay with their talk time; abandoned calls and accepted callbacks with
    the wait after which the caller left (``abandon_s``); overflowed calls as patient callers
    with the median talk time of answered calls in their entry queue (the simulated routing
    decides again whether they overflow). Calls from an unknown country (``other``) are
    skipped: the replay needs a configured country.
    """
    rows = list(read_calls(db, since, until))
    talks: dict[str, list[float]] = {}
    for r in rows:
        if r["outcome"] == Outcome.ANSWERED.value:
            talks.setdefault(str(r["entry_queue"]), []).append(float(r["talk_s"]))  # type: ignore[arg-type]
    everything = [t for ts in talks.values() for t in ts]
    overall = statistics.median(everything) if everything else FALLBACK_TALK_S
    median = {q: statistics.median(ts) for q, ts in talks.items()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    last = float("-inf")
    written = skipped = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["arrival", "country", "language", "queue", "talk_s", "abandon_s"])
        for r in rows:
            if r["country"] == "other":
                skipped += 1
                continue
            # Millisecond timestamps, strictly increasing: the replay refuses duplicate rows.
            arrival = max(round(float(r["arrival"]), 3), last + 0.001)  # type: ignore[arg-type]
            last = arrival
            stamp = datetime.fromtimestamp(arrival, tz).isoformat(timespec="milliseconds")
            outcome = r["outcome"]
            if outcome == Outcome.ANSWERED.value:
                talk, abandon = f"{float(r['talk_s']):.3f}", ""  # type: ignore[arg-type]
            elif outcome in (Outcome.ABANDONED.value, Outcome.CALLBACK.value):
                talk, abandon = "", f"{float(r['wait_s']):.3f}"  # type: ignore[arg-type]
            else:
                talk = f"{median.get(str(r['entry_queue']), overall):.3f}"
                abandon = ""
            writer.writerow([stamp, r["country"], r["language"], r["entry_queue"], talk,
                             abandon])
            written += 1
    return written, skipped
