"""Call records, callback tasks and agent states, on SQLite and on PostgreSQL; export to the
simulator's replay."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from acd.cli import main as service_cli
from acd.config.load import LoadedCenter, load_center
from acd.core.model import AgentState, Offer
from acd.runtime.records import (
    CallbackStore,
    CallRecords,
    export_call_log,
    open_database,
    open_store,
    read_calls,
)
from acd.runtime.router_service import Command, RouterService
from acd.runtime.store import RecordStore
from acd.service.state import AgentStateStore, restore_agents
from ivr.actions import CallbackTask
from sim.traffic import load_call_log

ROOT = Path(__file__).resolve().parents[1]
CENTER = ROOT / "config" / "center.yaml"
AGENT = "msk-tech-ru-001"


class Owner:
    """Answers offers at once (or never)."""

    def __init__(self, service: RouterService, answer: bool = True) -> None:
        self.service = service
        self.answer = answer

    def handle_command(self, command: Command) -> None:
        if self.answer and isinstance(command, Offer):
            self.service.offer_answered(command.call_id)


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    return load_center(CENTER)


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    return open_database(tmp_path / "acd.sqlite3")


async def test_one_row_per_call_with_every_timestamp(center: LoadedCenter,
                                                     record_store: RecordStore) -> None:
    """Answered and abandoned calls each get one row with timestamps, outcome, wait and talk."""
    db = record_store
    service = RouterService(center)
    records = CallRecords(db)
    service.observe(records)
    service.login("msk-tech-ru-001")
    service.call_arrived(Owner(service), "c1", "tech", "ru", "RU")
    service.call_arrived(Owner(service), "c2", "tech", "kk", "KZ")  # the only agent is busy
    await asyncio.sleep(0.05)
    service.hangup("c2")
    service.hangup("c1")
    rows = {r["call_id"]: r for r in read_calls(db)}
    assert set(rows) == {"c1", "c2"}
    c1, c2 = rows["c1"], rows["c2"]
    assert c1["outcome"] == "answered" and c1["agent_id"] == "msk-tech-ru-001"
    assert c1["site"] == "moscow" and c1["offers"] == 1
    ts = [c1[k] for k in ("arrival", "queued", "offered", "answered", "ended")]
    floats = [t for t in ts if isinstance(t, float)]
    assert floats == ts == sorted(floats)
    assert c1["talk_s"] >= 0.04  # type: ignore[operator]
    assert c2["outcome"] == "abandoned" and c2["answered"] is None
    assert c2["country"] == "KZ" and c2["language"] == "kk"
    assert 0.04 <= c2["wait_s"] < 1.0  # type: ignore[operator]
    assert (c1["caller"], c1["customer_id"], c1["pbx"], c1["survey_score"]) == (None,) * 4
    if db.dialect == "sqlite":
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert records.written == 2 and records.failures == 0
    service.close()


def test_rows_survive_kill_9(records_where: str) -> None:
    """Calls that ended before the process was SIGKILLed are all in the database."""
    path = records_where
    child = textwrap.dedent(f"""
        import asyncio, sys, time
        from acd.config.load import load_center
        from acd.core.model import Offer
        from acd.runtime.router_service import RouterService
        from acd.runtime.records import CallRecords, open_store

        class Owner:
            def __init__(self, s): self.s = s
            def handle_command(self, c):
                if isinstance(c, Offer): self.s.offer_answered(c.call_id)

        async def main():
            s = RouterService(load_center({str(CENTER)!r}))
            s.observe(CallRecords(open_store({path!r})))
            s.login("msk-tech-ru-001")
            for i in range(50):
                s.call_arrived(Owner(s), f"k{{i}}", "tech", "ru", "RU")
                s.hangup(f"k{{i}}")
                s.ready("msk-tech-ru-001")
            s.call_arrived(Owner(s), "open", "tech", "ru", "RU")  # still talking when killed
            print("ended 50", flush=True)
            time.sleep(60)

        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ended 50"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    db = open_store(path)
    ids = [r[0] for r in db.execute("SELECT call_id FROM calls ORDER BY id")]
    assert ids == [f"k{i}" for i in range(50)]
    live = db.execute("SELECT call_id, state FROM live_calls").fetchall()
    assert [tuple(r) for r in live] == [("open", "talking")]
    db.close()


async def test_export_replays_in_the_simulator(center: LoadedCenter,
                                               record_store: RecordStore,
                                               tmp_path: Path) -> None:
    """An exported call log loads with load_call_log: answered keep talk, abandons patience."""
    db = record_store
    service = RouterService(center)
    service.observe(CallRecords(db))
    service.login("msk-tech-ru-001")
    service.call_arrived(Owner(service), "a1", "tech", "ru", "RU")
    service.call_arrived(Owner(service), "a2", "repair", "uk", "UA")  # waits: nobody for it
    service.call_arrived(Owner(service), "a3", "tech", "ru", "ZZ")  # unknown country -> other
    await asyncio.sleep(0.02)
    service.hangup("a2")
    service.hangup("a3")
    await asyncio.sleep(0.02)
    service.hangup("a1")
    out = tmp_path / "calls.csv"
    assert export_call_log(db, out) == (2, 1)
    cfg = center.config
    log = load_call_log(out, cfg.queues, cfg.languages, cfg.countries)
    assert [(c.queue, c.language, c.country) for c in log.calls] == [
        ("tech", "ru", "RU"), ("repair", "uk", "UA")]
    answered, abandoned = log.calls
    assert answered.patience_s == float("inf") and answered.talk_s >= 0.03
    assert abandoned.patience_s >= 0.01 and log.origin is not None
    service.close()


def test_cli_export_and_bad_database(db: sqlite3.Connection, tmp_path: Path) -> None:
    """`records export` writes a CSV header for an empty database; a missing one exits 2."""
    db_path = tmp_path / "acd.sqlite3"
    out = tmp_path / "out" / "calls.csv"
    assert service_cli(["records", "export", "--db", str(db_path), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["arrival,country,language,queue,talk_s,abandon_s"]
    missing = tmp_path / "nope.sqlite3"
    assert service_cli(["records", "export", "--db", str(missing), "--out", str(out)]) == 2


def test_callback_store_is_a_callback_sink(record_store: RecordStore) -> None:
    """Callback tasks are stored durably and read back open, oldest first."""
    store = CallbackStore(record_store)
    first = CallbackTask("repair", "uk", "UA", "+380441234567", 0, "voicemail", "vm/1.wav")
    second = CallbackTask("tech", "ru", "RU", "+79161234567", 1, "offer", None, "cust-7")
    store.add(first)
    store.add(second)
    assert store.open_tasks() == [first, second]


async def test_agent_states_persist_and_restore(center: LoadedCenter,
                                                record_store: RecordStore) -> None:
    """A restart brings paused agents back paused, ready ones ready, and an agent on a call
    the engine cannot see (no call records) paused for attention, never ready."""
    db = record_store
    store = AgentStateStore(db)
    before = RouterService(center)
    before.observe(store)
    before.login("msk-tech-ru-001")
    before.login("msk-tech-ru-002", paused_reason="lunch")
    before.login("kyi-tech-uk-001", endpoint="PJSIP/softphone-7")
    store.set_endpoint("kyi-tech-uk-001", "PJSIP/softphone-7")
    before.login("msk-orders-ru-001")
    before.call_arrived(Owner(before), "c1", "orders", "ru", "RU")  # on_call
    before.login("msk-repair-ru-001")
    before.logout("msk-repair-ru-001")
    before.close()
    db.execute("INSERT INTO agent_states VALUES ('gone-001', 'ready', NULL, NULL, 1.0)")
    after = RouterService(center)
    after.observe(store)
    assert restore_agents(after, store.saved()) == 4
    state = after.router.agent_state
    assert state("msk-tech-ru-001") is AgentState.READY
    assert state("msk-tech-ru-002") is AgentState.PAUSED
    assert state("msk-orders-ru-001") is AgentState.PAUSED
    busy = [a for a in after.router.agent_snapshot() if a.agent_id == "msk-orders-ru-001"]
    assert busy[0].reason == center.config.rona.pause_reason
    assert state("msk-repair-ru-001") is AgentState.LOGGED_OUT
    assert store.endpoint("kyi-tech-uk-001") == "PJSIP/softphone-7"
    paused = [a for a in after.router.agent_snapshot() if a.agent_id == "msk-tech-ru-002"]
    assert paused[0].reason == "lunch"
    after.close()


# --------------------------------------------------- login endpoints


async def test_an_api_endpoint_does_not_outlive_the_login(record_store: RecordStore) -> None:
    """A login from the phone after a logout uses the roster endpoint, not the endpoint an
    earlier API login gave (which reload and restart would otherwise ring)."""
    db = record_store
    store = AgentStateStore(db)
    service = RouterService(load_center(CENTER))
    service.observe(store)
    service.login(AGENT, "PJSIP/hotdesk-7")
    store.set_endpoint(AGENT, "PJSIP/hotdesk-7")  # what the API does after its login
    assert store.endpoint(AGENT) == "PJSIP/hotdesk-7"
    service.logout(AGENT)
    service.login(AGENT)  # *51 from the agent's own phone
    assert store.endpoint(AGENT) is None
    service.close()


# ----------------------------------------------------- adopted calls


class _Owner:
    """A call owner that accepts every command (the test drives the answers itself)."""

    def handle_command(self, command: object) -> None:
        """Nothing to carry out."""


async def test_an_adopted_call_keeps_its_wait_in_the_record(record_store: RecordStore) -> None:
    """A caller re-queued with its original arrival (ARI cold start) is recorded with that
    arrival and the whole wait, as the router counts it."""
    db = record_store
    records = CallRecords(db)
    service = RouterService(load_center(CENTER))
    service.observe(records)
    service.login(AGENT)
    service.call_arrived(_Owner(), "1795609297.5", "tech", "ru", "RU",
                         arrived_at=service.now() - 100.0)
    service.offer_answered("1795609297.5")
    service.hangup("1795609297.5")
    wait_s, arrival, answered = db.execute(
        "SELECT wait_s, arrival, answered FROM calls").fetchone()
    assert wait_s == pytest.approx(100.0, abs=1.0)
    assert answered - arrival == pytest.approx(100.0, abs=1.0)
    service.close()
