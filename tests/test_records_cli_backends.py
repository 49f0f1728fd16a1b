"""``acd records export`` and ``acd report summary`` read the records wherever the service keeps
them: an SQLite file or PostgreSQL, named by ``--db`` or by the service settings; the same
records give the same output on both, and bad input exits 2 with the option and the value."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import pytest
from pgkit import free_port

from acd.cli import main
from acd.runtime.records import READ_COLUMNS, open_store
from acd.runtime.store import PostgresStore

MSK = "+03:00"
SINCE, UNTIL = f"2026-03-02T08:00{MSK}", f"2026-03-02T10:00{MSK}"


def stamp(local: str) -> float:
    """Unix seconds of a Moscow wall time like ``08:05``."""
    return datetime.fromisoformat(f"2026-03-02T{local}:00{MSK}").timestamp()


def rows() -> list[tuple[object, ...]]:
    """Answered, abandoned and overflowed calls in two queues, with callers (two of them
    repeat), survey scores, fractional times, and one call before the period."""
    out = []
    for n in range(24):
        arrival = stamp("07:59") + n * 60.137
        outcome = ("answered", "answered", "abandoned", "overflowed")[n % 4]
        answered = arrival + 3.25 * (n % 7) if outcome == "answered" else None
        values = {"call_id": f"c{n}", "outcome": outcome,
                  "entry_queue": "tech" if n % 3 else "repair", "queue": "tech",
                  "language": "ru" if n % 2 else "uk", "country": "RU" if n % 2 else "UA",
                  "agent_id": f"msk-tech-ru-00{n % 3 + 1}" if answered else None,
                  "site": "moscow" if answered else None, "arrival": arrival, "queued": arrival,
                  "offered": answered, "answered": answered,
                  "ended": arrival + 100.5 + n, "wait_s": 3.25 * (n % 7),
                  "talk_s": 97.125 + n if answered else 0.0, "offers": 1 if answered else 0,
                  "overflow_target": "voicemail" if outcome == "overflowed" else None,
                  "overflow_reason": "max_wait" if outcome == "overflowed" else None,
                  "caller": f"+7495000000{n % 5}", "customer_id": None, "pbx": None,
                  "survey_score": n % 5 + 1 if answered else None}
        out.append(tuple(values[c] for c in READ_COLUMNS))
    return out


def fill(where: str) -> None:
    """Write the same call rows into the records at ``where`` (SQLite path or URL)."""
    store = open_store(where)
    try:
        sql = (f"INSERT INTO calls ({', '.join(READ_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(READ_COLUMNS))})")
        for row in rows():
            store.execute(sql, row)
    finally:
        store.close()


def outputs(tmp_path: Path, name: str, where: list[str]) -> dict[str, str]:
    """Every export and summary format, read from the records ``where`` says."""
    out: dict[str, str] = {}
    for form in ("call-log", "records"):
        path = tmp_path / f"{name}-{form}.csv"
        assert main(["records", "export", *where, "--out", str(path), "--format", form,
                     "--since", SINCE, "--until", UNTIL]) == 0
        out[form] = path.read_text()
    for form in ("json", "text", "html"):
        path = tmp_path / f"{name}.{form}"
        assert main(["report", "summary", *where, "--since", SINCE, "--until", UNTIL,
                     "--format", form, "--out", str(path)]) == 0
        out[form] = path.read_text()
    return out


def test_sqlite_and_postgresql_records_give_identical_exports_and_summaries(
        tmp_path: Path, pg_url: str) -> None:
    """The same call records exported and summarized from SQLite and from PostgreSQL
    (``--db`` a file, then a URL) give byte-identical output in every format."""
    sqlite = str(tmp_path / "acd.sqlite3")
    fill(sqlite)
    fill(pg_url)
    from_sqlite = outputs(tmp_path, "sqlite", ["--db", sqlite])
    from_postgres = outputs(tmp_path, "pg", ["--db", pg_url])
    assert from_postgres == from_sqlite
    # Not two empty reports: the period's 23 calls (one arrived before it) are in them.
    assert len(from_sqlite["call-log"].splitlines()) == 1 + 23
    assert '"offered": 23' in from_sqlite["json"]


def test_the_settings_file_leads_to_postgresql_or_to_sqlite(tmp_path: Path, pg_url: str,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """``--settings`` with ``records.url`` reads PostgreSQL (password from the variable the
    settings name), and without it the settings' SQLite file: the same output."""
    fill(pg_url)
    fill(str(tmp_path / "acd.sqlite3"))
    monkeypatch.setenv("ACD_TEST_RECORDS_PW", "unused-by-a-trust-server")
    pg_settings = tmp_path / "pg.yaml"
    pg_settings.write_text(f"records:\n  url: {pg_url}\n  password_env: ACD_TEST_RECORDS_PW\n")
    sqlite_settings = tmp_path / "sqlite.yaml"
    sqlite_settings.write_text("records:\n  database: acd.sqlite3\n")
    assert outputs(tmp_path, "pg", ["--settings", str(pg_settings)]) == \
        outputs(tmp_path, "sqlite", ["--settings", str(sqlite_settings)])


def failure(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run a command that must exit 2; its error output."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", [["records", "export", "--out", "x.csv"],
                                     ["report", "summary", "--since", SINCE, "--until", UNTIL]])
def test_unreachable_or_bad_postgresql_exits_2_naming_option_and_value(
        command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable server, a password in the ``--db`` URL, an unreachable ``records.url``
    and a missing psycopg each exit 2 with a message naming the option or setting and the
    URL, and never show the password."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ACD_RECORDS_PASSWORD", "s3cret-pw")
    down = f"postgresql://acd@127.0.0.1:{free_port()}/acd"
    err = failure(capsys, [*command, "--db", down])
    assert "<command line>: --db: cannot open the records database" in err
    assert repr(down) in err and "s3cret-pw" not in err

    with_password = f"postgresql://acd:s3cret-pw@127.0.0.1:{free_port()}/acd"
    err = failure(capsys, [*command, "--db", with_password])
    assert "--db: must not hold a password" in err and "ACD_RECORDS_PASSWORD" in err
    assert "postgresql://acd:***@127.0.0.1" in err and "s3cret-pw" not in err

    settings = tmp_path / "service.yaml"
    settings.write_text(f"records:\n  url: {down}\n")
    err = failure(capsys, [*command, "--settings", str(settings)])
    assert f"{settings}: records.url: cannot open the records database" in err
    assert repr(down) in err

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    err = failure(capsys, [*command, "--db", down])
    assert "--db: reading PostgreSQL records needs psycopg 3" in err and repr(down) in err


def test_a_postgresql_database_without_records_exits_2(pg_url: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """A reachable PostgreSQL database that holds no call records exits 2 saying it cannot
    read them, and the database is left as it was (read-only: no tables created)."""
    err = failure(capsys, ["records", "export", "--db", pg_url,
                           "--out", str(tmp_path / "x.csv")])
    assert "--db: cannot read call records" in err and repr(pg_url) in err
    store = PostgresStore(pg_url)
    try:
        assert store.columns("calls") == set()
    finally:
        store.close()
