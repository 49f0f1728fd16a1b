"""The record store itself: old SQLite databases migrated, two routers sharing PostgreSQL,
write failures counted and never raised, and how the settings choose the store."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import structlog
from pgkit import PgServer, free_port
from recordkit import AGENT, AnsweringOwner, complete_call, writing_service
from test_serve import answered_call, settings_file

from acd.core.model import AgentState
from acd.errors import ConfigError, InputError
from acd.runtime.records import (
    READ_COLUMNS,
    CallbackStore,
    CallRecords,
    open_database,
    open_store,
    read_calls,
)
from acd.runtime.store import PostgresStore, SqliteStore, postgres_ddl, postgres_sql
from acd.service.app import Runtime
from acd.service.settings import load_settings
from acd.service.state import AgentStateStore
from acd.testing.fake_agi import FakeAsterisk
from ivr.actions import CallbackTask

#: The ``calls`` and ``callbacks`` tables as the version before the dialler and the agreed
#: columns wrote them.
OLD_SCHEMA = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, outcome TEXT NOT NULL,
    entry_queue TEXT NOT NULL, queue TEXT NOT NULL, language TEXT NOT NULL,
    country TEXT NOT NULL, agent_id TEXT, site TEXT, arrival REAL NOT NULL, queued REAL,
    offered REAL, answered REAL, ended REAL NOT NULL, wait_s REAL NOT NULL,
    talk_s REAL NOT NULL, offers INTEGER NOT NULL, overflow_target TEXT, overflow_reason TEXT);
CREATE TABLE callbacks (
    id INTEGER PRIMARY KEY, created REAL NOT NULL, queue TEXT NOT NULL,
    language TEXT NOT NULL, country TEXT NOT NULL, number TEXT NOT NULL,
    priority INTEGER NOT NULL, reason TEXT NOT NULL, recording TEXT, customer_id TEXT,
    status TEXT NOT NULL DEFAULT 'open');
INSERT INTO calls VALUES (1, 'old-1', 'answered', 'tech', 'tech', 'ru', 'RU', 'msk-tech-ru-001',
    'moscow', 1000.0, 1000.0, 1001.0, 1002.0, 1100.0, 2.0, 98.0, 1, NULL, NULL);
INSERT INTO callbacks (created, queue, language, country, number, priority, reason)
    VALUES (1000.0, 'repair', 'uk', 'UA', '+380441234567', 0, 'voicemail');
"""


# --------------------------------------------------------------- migration


async def test_an_old_sqlite_database_gains_the_new_columns(tmp_path: Path) -> None:
    """A database from before the agreed calls columns and the dialler's callback columns
    opens with its rows intact, the new columns NULL, and takes new rows."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA)
    db = open_database(path)
    calls = {row[1] for row in db.execute("PRAGMA table_info(calls)")}
    assert {"caller", "customer_id", "pbx", "survey_score"} <= calls
    callbacks = {row[1] for row in db.execute("PRAGMA table_info(callbacks)")}
    assert {"attempts", "next_attempt", "last_result", "updated"} <= callbacks
    (old_row,) = read_calls(db)
    assert list(old_row) == list(READ_COLUMNS)
    assert old_row["call_id"] == "old-1" and old_row["talk_s"] == 98.0
    assert (old_row["caller"], old_row["customer_id"], old_row["pbx"],
            old_row["survey_score"]) == (None, None, None, None)
    assert [t.number for t in CallbackStore(db).open_tasks()] == ["+380441234567"]
    records = CallRecords(db)
    service = writing_service(records)
    complete_call(service, "new-1")
    assert [r["call_id"] for r in read_calls(db)] == ["old-1", "new-1"]
    assert records.failures == 0
    service.close()
    db.close()
    # Opening again finds nothing left to add.
    again = open_database(path)
    assert len(list(read_calls(again))) == 2
    again.close()


#: ``live_calls`` as the version before the call's priority was kept wrote it.
OLD_LIVE_CALLS = """
CREATE TABLE live_calls (
    call_id TEXT PRIMARY KEY, state TEXT NOT NULL, entry_queue TEXT NOT NULL,
    queue TEXT NOT NULL, language TEXT NOT NULL, country TEXT NOT NULL, arrival REAL NOT NULL,
    queued REAL NOT NULL, offered REAL, answered REAL, agent_id TEXT,
    offers INTEGER NOT NULL DEFAULT 0, ended REAL);
INSERT INTO live_calls (call_id, state, entry_queue, queue, language, country, arrival, queued)
    VALUES ('old-held', 'queued', 'tech', 'tech', 'ru', 'RU', 1000.0, 1000.0)
"""


async def test_an_old_live_calls_table_gains_the_priority_and_keeps_it(records_where: str
                                                                       ) -> None:
    """On both backends, a ``live_calls`` table from before the priority column opens with
    its held call's priority unknown (None), and a call queued now keeps its priority."""
    if records_where.startswith("postgresql"):
        old = PostgresStore(records_where)
        old.create(OLD_LIVE_CALLS)
    else:
        old = SqliteStore(sqlite3.connect(records_where))
        old.create(OLD_LIVE_CALLS)
    old.close()
    store = open_store(records_where)
    try:
        records = CallRecords(store)
        service = writing_service(records, agent=None)
        records.priority_of = service.priority_of
        service.call_arrived(AnsweringOwner(service), "new-held", "tech", "ru", "RU",
                             priority=5)
        held = {c.call_id: c.priority for c in records.live_calls()}
        assert held == {"old-held": None, "new-held": 5}
        assert records.failures == 0
        service.close()
    finally:
        store.close()


def test_read_calls_on_a_read_only_old_database(tmp_path: Path) -> None:
    """``acd records export`` and ``acd report`` read an old database read-only: the columns
    it lacks read as None rather than failing."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA)
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    (row,) = read_calls(db)
    assert row["call_id"] == "old-1" and row["pbx"] is None and row["survey_score"] is None
    db.close()


def test_postgres_words_for_the_schema_and_statements() -> None:
    """PostgreSQL gets 8-byte floats, identity ids and %s placeholders (a literal % escaped)."""
    assert postgres_ddl("id INTEGER PRIMARY KEY, arrival REAL NOT NULL, realm TEXT") == (
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
        "arrival DOUBLE PRECISION NOT NULL, realm TEXT")
    assert postgres_sql("SELECT a FROM t WHERE b = ? AND c LIKE '5%'") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE '5%%'")


# --------------------------------------------------------------- PostgreSQL


async def test_two_routers_see_each_others_rows(pg_url: str) -> None:
    """Two stores on one PostgreSQL database (an active router and its standby) each see
    what the other wrote: finished calls, calls in progress, agent states, callback tasks."""
    active, standby = open_store(pg_url), open_store(pg_url)
    records, states = CallRecords(active), AgentStateStore(active)
    service = writing_service(records, states)
    complete_call(service, "done-1")
    service.call_arrived(AnsweringOwner(service), "talking-1", "tech", "ru", "RU")
    CallbackStore(active).add(CallbackTask("repair", "uk", "UA", "+380441234567", 0,
                                           "voicemail", "vm/1.wav"))
    seen = CallRecords(standby)
    assert [r["call_id"] for r in read_calls(standby)] == ["done-1"]
    live = seen.live_calls()
    assert [(c.call_id, c.state, c.agent_id) for c in live] == [("talking-1", "talking", AGENT)]
    assert isinstance(live[0].arrival, float) and live[0].arrival == pytest.approx(time.time(),
                                                                                   abs=60)
    saved = {a.agent_id: a.state for a in AgentStateStore(standby).saved()}
    assert saved == {AGENT: AgentState.ON_CALL}
    assert [t.number for t in CallbackStore(standby).open_tasks()] == ["+380441234567"]
    # And back: the standby's write is the active's read.
    CallbackStore(standby).add(CallbackTask("tech", "ru", "RU", "+79161234567", 1, "offer"))
    assert len(CallbackStore(active).open_tasks()) == 2
    assert (records.written, records.failures, states.failures) == (1, 0, 0)
    service.close()
    active.close()
    standby.close()


def test_two_routers_starting_at_once_create_the_tables_once(pg_url: str) -> None:
    """Two stores opening one empty database at the same moment both start: the schema is
    created and migrated under a lock, never twice at once."""
    with ThreadPoolExecutor(2) as pool:
        stores = list(pool.map(lambda _: open_store(pg_url), range(2)))
    for store in stores:
        assert set(READ_COLUMNS) <= store.columns("calls")
        store.close()


def _terminate_backends(server: PgServer, url: str) -> int:
    """Disconnect every session on ``url``'s database, as a server restart does."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = %s AND pid <> pg_backend_pid()",
                             (name,)).fetchall()
    return len(rows)


async def test_a_lost_connection_costs_one_write_and_is_reopened(
        pg_server: PgServer, pg_url: str) -> None:
    """When the server drops the connection, the next write fails (logged and counted, not
    raised), and the store reconnects once the retry interval has passed."""
    store = prepare_postgres(pg_url, retry_s=0.2)
    records = CallRecords(store)
    service = writing_service(records)
    complete_call(service, "before")
    assert _terminate_backends(pg_server, pg_url) == 1
    with structlog.testing.capture_logs() as logs:
        complete_call(service, "during")  # must not raise
    assert records.failures >= 1
    assert any(e["event"] in ("live_call_write_failed", "call_record_failed") for e in logs)
    time.sleep(0.3)
    complete_call(service, "after")
    ids = [r["call_id"] for r in read_calls(store)]
    assert ids[0] == "before" and ids[-1] == "after"
    service.close()
    store.close()


def prepare_postgres(url: str, retry_s: float) -> PostgresStore:
    """A PostgreSQL store with the tables, reconnecting after ``retry_s``."""
    open_store(url).close()  # creates the tables
    return PostgresStore(url, retry_s=retry_s)


async def test_an_unreachable_database_never_stalls_or_breaks_the_call_path(
        pg_server: PgServer) -> None:
    """With the database gone, calls still route: every write fails fast, is logged and
    counted (call records and agent states), and none raises into the router."""
    name = pg_server.create_database()
    url = pg_server.url(name)
    store = prepare_postgres(url, retry_s=60.0)
    records, states = CallRecords(store), AgentStateStore(store)
    service = writing_service(records, states)
    pg_server.drop_database(name)  # disconnects the store; reconnecting cannot succeed
    with structlog.testing.capture_logs() as logs:
        started = time.monotonic()
        for n in range(20):
            complete_call(service, f"lost-{n}")
        took = time.monotonic() - started
    assert records.written == 0 and records.failures >= 20 * 3
    assert states.failures >= 20 * 3
    before = states.failures
    states.set_endpoint(AGENT, "PJSIP/hotdesk-7")  # an API login's endpoint: counted too
    assert states.failures == before + 1
    events = {e["event"] for e in logs}
    assert {"call_record_failed", "live_call_write_failed", "agent_state_write_failed"} <= events
    assert took < 2.0  # one failed connect at most; then each write fails at once
    assert service.router.agent_state(AGENT) is AgentState.READY
    service.close()
    store.close()


async def test_serve_keeps_its_records_in_postgres(tmp_path: Path,
                                                   pg_url: str) -> None:
    """``records.url`` puts a FastAGI call's row and the agent's state in PostgreSQL."""
    path = settings_file(tmp_path)
    path.write_text(path.read_text().replace(
        "records: {database: acd.sqlite3}",
        f"records: {{url: '{pg_url}', password_env: ACD_TEST_RECORDS_PASSWORD}}"))
    settings = load_settings(path, {"ACD_TEST_RECORDS_PASSWORD": "unused-with-trust"})
    assert settings.records_password == "unused-with-trust"
    runtime = Runtime(settings)
    await runtime.start()
    try:
        assert runtime.db.dialect == "postgresql"
        runtime.service.login(AGENT)
        await answered_call(FakeAsterisk(runtime.agi_port), "1795609297.31", 0.05)
    finally:
        await runtime.stop()
    assert not (tmp_path / "acd.sqlite3").exists()
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT call_id, outcome, agent_id FROM calls").fetchall()
        state = conn.execute("SELECT state FROM agent_states WHERE agent_id = %s",
                             (AGENT,)).fetchone()
    assert row == [("1795609297.31", "answered", AGENT)]
    assert state == ("wrap_up",)


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://acd@db/acd", "must be a postgresql:// URL"),
    ("postgresql://db.example", "must name a host and a database"),
    ("postgresql://acd@127.0.0.1:99999/acd", "has a bad port"),
])
def test_a_bad_records_url_names_file_key_and_value(tmp_path: Path, url: str,
                                                    message: str) -> None:
    """A records.url that cannot be a PostgreSQL database is a settings error naming the
    file, the YAML path and the value."""
    path = tmp_path / "service.yaml"
    path.write_text(f"records:\n  url: '{url}'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    (problem,) = caught.value.problems
    assert (problem.file, problem.path, problem.value) == (str(path), "records.url", url)
    assert message in problem.message and problem.line == 2


def test_a_password_in_the_url_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A password belongs in the environment: one written into records.url is refused, and
    the message hides it."""
    path = tmp_path / "service.yaml"
    path.write_text("records:\n  url: 'postgresql://acd:s3cret@db.example/acd'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    text = str(caught.value)
    assert "records.url" in text and "ACD_RECORDS_PASSWORD" in text
    assert "s3cret" not in text and "postgresql://acd:***@db.example/acd" in text


async def test_serve_refuses_to_start_without_its_database(tmp_path: Path) -> None:
    """A PostgreSQL server that does not answer stops ``acd serve`` at start (exit 2) with
    a message naming records.url, rather than taking calls it cannot record."""
    path = settings_file(tmp_path)
    url = f"postgresql://acd@127.0.0.1:{free_port()}/acd"
    path.write_text(path.read_text().replace("records: {database: acd.sqlite3}",
                                             f"records: {{url: '{url}'}}"))
    runtime = Runtime(load_settings(path, {}))
    with pytest.raises(InputError) as caught:
        await runtime.start()
    (problem,) = caught.value.problems
    assert (problem.path, problem.value) == ("records.url", url)
    assert "cannot open the records database" in problem.message
    await runtime.stop()
