"""First-call resolution and post-call survey scores: worked out by hand on a small record
set, shown by ``acd report summary`` (JSON, text, HTML) and written with each call's record by
the drivers (caller number, customer id) and the survey (score)."""

from __future__ import annotations

import asyncio
import csv
import json
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from recordkit import AnsweringOwner, writing_service

from acd.cli import main
from acd.runtime.records import (
    CALL_COLUMNS,
    CallRecords,
    open_database,
    read_calls,
    sanitize_caller,
)
from acd.service.repeats import RepeatCounter

A, B, K = "msk-tech-ru-001", "msk-tech-ru-002", "kyi-tech-uk-001"
COLUMNS = (*CALL_COLUMNS, "caller", "customer_id", "survey_score")


def row(n: int, when: str, agent: str | None, caller: str | None, *, queue: str = "tech",
        customer: str | None = None, score: int | None = None) -> tuple[object, ...]:
    """One call record; ``when`` is a Moscow time on 2 March (``08:10``) or a full ISO time."""
    t = datetime.fromisoformat(when if "T" in when else f"2026-03-02T{when}:00+03:00"
                               ).timestamp()
    answered = t + 5.0 if agent else None
    values = {"call_id": f"c{n}", "outcome": "answered" if agent else "abandoned",
              "entry_queue": queue, "queue": queue, "language": "ru", "country": "RU",
              "agent_id": agent, "site": "moscow" if agent else None, "arrival": t,
              "queued": t, "offered": answered, "answered": answered, "ended": t + 65.0,
              "wait_s": 5.0, "talk_s": 60.0 if agent else 0.0, "offers": 1,
              "overflow_target": None, "overflow_reason": None, "caller": caller,
              "customer_id": customer, "survey_score": score}
    return tuple(values[c] for c in COLUMNS)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """Eight identified calls from 08:00 to 20:00 (and one anonymous): repeats within 24 h are
    calls 4, 7 and 10, within 7 days call 2 as well (its first call was three days before)."""
    rows = [
        row(1, "2026-02-27T10:00:00+03:00", A, "+7001", score=1),  # history only
        row(2, "08:10", B, "+7001", score=5),              # 7-day repeat of call 1 (A)
        row(3, "08:20", A, "+7002", score=4),
        row(4, "09:20", K, "+7002", score=5),              # 24-h repeat of call 3 (A)
        row(5, "09:30", K, "+7002", queue="repair"),       # another queue: a first call
        row(6, "10:00", B, "+7003", customer="C9", score=3),
        row(7, "11:00", B, "+7004", customer="C9", score=5),  # same customer, other number
        row(8, "12:00", None, None),                       # anonymous: not identified
        row(9, "12:30", None, "+7005"),                    # abandoned
        row(10, "12:35", A, "+7005", score=5),             # repeat of the abandoned call
    ]
    path = tmp_path / "acd.sqlite3"
    db = open_database(path)
    db.executemany(f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(COLUMNS))})", rows)
    db.close()
    return path


def summary(database: Path, tmp_path: Path, form: str, *extra: str) -> str:
    out = tmp_path / f"summary.{form}"
    code = main(["report", "summary", "--db", str(database), "--since",
                 "2026-03-02T08:00+03:00", "--until", "2026-03-02T20:00+03:00",
                 "--format", form, "--out", str(out), *extra])
    assert code == 0
    return out.read_text()


def test_first_call_resolution_by_queue_agent_and_group(database: Path, tmp_path: Path) -> None:
    """FCR over 24 h and 7 days: 3 and 4 repeats of 8 identified calls, blamed on the agent
    (and group) of the earlier call, ``-`` for an earlier call nobody answered."""
    fcr = json.loads(summary(database, tmp_path, "json"))["fcr"]
    assert fcr["windows"] == ["24h", "7d"] and fcr["unidentified_calls"] == 1
    assert fcr["center"]["calls"] == 8
    assert fcr["center"]["repeats"] == {"24h": 3, "7d": 4}
    assert fcr["center"]["fcr"] == {"24h": pytest.approx(5 / 8), "7d": pytest.approx(0.5)}
    by = fcr["by"]
    assert by["queue"]["tech"]["fcr"] == {"24h": pytest.approx(4 / 7), "7d": pytest.approx(3 / 7)}
    assert by["queue"]["repair"]["fcr"] == {"24h": 1.0, "7d": 1.0}
    assert by["agent"][A]["calls"] == 2 and by["agent"][A]["repeats"] == {"24h": 1, "7d": 2}
    assert by["agent"][B]["fcr"]["24h"] == pytest.approx(2 / 3)
    assert by["agent"][K]["fcr"] == {"24h": 1.0, "7d": 1.0}
    assert by["agent"]["-"] == {"calls": 1, "repeats": {"24h": 1, "7d": 1},
                                "fcr": {"24h": 0.0, "7d": 0.0}}
    assert by["group"]["msk-tech-ru"]["fcr"] == {"24h": pytest.approx(0.6),
                                                 "7d": pytest.approx(0.4)}
    assert by["group"]["kyi-tech-uk"]["calls"] == 2


def test_fcr_windows_come_from_the_report_options(database: Path, tmp_path: Path) -> None:
    """``--fcr-window 1`` gives one figure: the repeats within an hour (calls 4, 7 and 10)."""
    fcr = json.loads(summary(database, tmp_path, "json", "--fcr-window", "1"))["fcr"]
    assert fcr["windows"] == ["1h"] and fcr["center"]["repeats"] == {"1h": 3}
    fcr = json.loads(summary(database, tmp_path, "json", "--fcr-window", "0.5"))["fcr"]
    assert fcr["windows"] == ["30m"] and fcr["center"]["repeats"] == {"30m": 1}


def test_survey_scores_by_agent_and_group_against_the_target(database: Path,
                                                             tmp_path: Path) -> None:
    """Six answers in the period average 4.5 (below 4.75), by agent and group; the score of a
    call before the period does not count; a target of 4.5 is met."""
    survey = json.loads(summary(database, tmp_path, "json"))["survey"]
    center = survey["center"]
    assert survey["target"] == 4.75
    assert center["answers"] == 6 and center["average"] == pytest.approx(4.5)
    assert center["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 4}
    assert center["met"] is False
    assert survey["by"]["agent"][B]["average"] == pytest.approx(13 / 3)
    assert survey["by"]["agent"][K] == {"answers": 1, "average": 5.0, "met": True,
                                        "distribution": {"1": 0, "2": 0, "3": 0, "4": 0,
                                                         "5": 1}}
    assert survey["by"]["group"]["msk-tech-ru"]["average"] == pytest.approx(4.4)
    met = json.loads(summary(database, tmp_path, "json", "--survey-target", "4.5"))
    assert met["survey"]["center"]["met"] is True


def test_text_and_html_show_fcr_and_survey(database: Path, tmp_path: Path) -> None:
    """The text and HTML summaries carry the FCR figures and the survey average and target."""
    text = summary(database, tmp_path, "text")
    fcr = next(line for line in text.splitlines()
               if line.startswith("center") and "62.5%" in line)
    assert fcr.split()[1:] == ["8", "62.5%", "50.0%"]
    survey = next(line for line in text.splitlines()
                  if line.startswith("center") and "4.50" in line)
    assert survey.split() == ["center", "6", "4.50", "0", "0", "1", "1", "4", "BELOW",
                              "TARGET"]
    assert f"agent {K}" in text and "target: average >= 4.75 of 5" in text
    html = summary(database, tmp_path, "html")
    assert "<h2>First-call resolution</h2>" in html and "62.5%" in html
    assert "<h2>Post-call survey</h2>" in html and "4.50" in html


def test_bad_fcr_window_and_survey_target_are_bad_input(database: Path) -> None:
    """A zero repeat window or a target outside 1..5 exits 2."""
    base = ["report", "summary", "--db", str(database), "--since", "2026-03-02T08:00+03:00",
            "--until", "2026-03-02T20:00+03:00"]
    assert main([*base, "--fcr-window", "0"]) == 2
    assert main([*base, "--survey-target", "6"]) == 2


async def test_records_carry_the_caller_customer_and_survey_score(tmp_path: Path) -> None:
    """A driver's caller number (sanitised) and customer id are written with the call's row;
    the survey score lands on that row after the call ended."""
    db = open_database(tmp_path / "acd.sqlite3")
    records = CallRecords(db)
    service = writing_service(records, agent=A)
    records.identify("c1", " +79161234567 ", "C42")
    records.identify("c2", '"Eve" <1234>', None)
    service.call_arrived(AnsweringOwner(service), "c1", "tech", "ru", "RU")
    service.call_arrived(AnsweringOwner(service), "c2", "tech", "ru", "RU")
    await asyncio.sleep(0.01)
    service.hangup("c2")
    service.hangup("c1")
    assert records.set_survey_score("c1", 4)
    assert not records.set_survey_score("nobody", 5)
    with pytest.raises(ValueError, match="1 to 5"):
        records.set_survey_score("c1", 9)
    rows = {r["call_id"]: r for r in read_calls(db)}
    assert (rows["c1"]["caller"], rows["c1"]["customer_id"], rows["c1"]["survey_score"]) == \
        ("+79161234567", "C42", 4)
    assert (rows["c2"]["caller"], rows["c2"]["customer_id"], rows["c2"]["survey_score"]) == \
        (None, None, None)


def test_an_old_database_gains_the_new_columns(tmp_path: Path) -> None:
    """A calls table without caller, customer_id, pbx and survey_score gains them at open."""
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.execute(f"CREATE TABLE calls (id INTEGER PRIMARY KEY, {', '.join(CALL_COLUMNS)})")
    old.commit()
    old.close()
    db = open_database(path)
    columns = {r[1]: r[2] for r in db.execute("PRAGMA table_info(calls)")}
    assert {k: columns[k] for k in ("caller", "customer_id", "pbx", "survey_score")} == {
        "caller": "TEXT", "customer_id": "TEXT", "pbx": "TEXT", "survey_score": "INTEGER"}


def test_caller_numbers_are_sanitised() -> None:
    """Only digits with an optional leading plus are kept as the caller's number."""
    assert sanitize_caller("+74951234567") == "+74951234567"
    assert sanitize_caller("84951234567") == "84951234567"
    for bad in ("unknown", "", None, "+7 495", "12\n34", "++7", "7" * 40):
        assert sanitize_caller(bad) is None


def test_records_export_has_caller_survey_and_repeat_flags(database: Path,
                                                           tmp_path: Path) -> None:
    """``acd records export --format records`` writes every stored column and the repeat
    flags of each call from --since on (earlier calls only count as the calls repeated)."""
    out = tmp_path / "records.csv"
    assert main(["records", "export", "--db", str(database), "--out", str(out), "--format",
                 "records", "--since", "2026-03-02T08:00+03:00"]) == 0
    with open(out, newline="", encoding="utf-8") as f:
        rows = {r["call_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == {f"c{n}" for n in range(2, 11)}
    assert (rows["c2"]["repeat_24h"], rows["c2"]["repeat_7d"]) == ("0", "1")
    assert (rows["c4"]["repeat_24h"], rows["c4"]["repeat_7d"]) == ("1", "1")
    assert (rows["c5"]["repeat_24h"], rows["c8"]["repeat_24h"]) == ("0", "")
    assert rows["c7"]["customer_id"] == "C9" and rows["c7"]["caller"] == "+7004"
    assert rows["c6"]["survey_score"] == "3" and rows["c9"]["survey_score"] == ""
    empty = tmp_path / "empty.csv"
    assert main(["records", "export", "--db", str(database), "--out", str(empty), "--format",
                 "records", "--since", "2027-01-01T00:00+03:00"]) == 0
    header = empty.read_text().splitlines()
    assert header[0].endswith("caller,customer_id,pbx,survey_score,repeat_24h,repeat_7d")
    assert len(header) == 1


def test_repeat_metrics_count_identified_calls_and_repeats(database: Path) -> None:
    """Fed the same records, the Prometheus counters find the summary's repeats: 8
    identified calls, 3 repeats within 24 h and 4 within 7 days, the first call (before the
    period) seeded, not counted; an unconfigured queue is labelled ``other``."""
    registry = CollectorRegistry()
    counter = RepeatCounter(registry, ["tech", "repair"])
    db = sqlite3.connect(database)
    since = datetime.fromisoformat("2026-03-02T08:00+03:00").timestamp()
    assert counter.seed_from(db, since - counter.longest, since) == 1
    for r in read_calls(db, since):
        counter.record(r)
    get = registry.get_sample_value
    assert get("acd_calls_identified_total", {"queue": "tech"}) == 7
    assert get("acd_calls_identified_total", {"queue": "repair"}) == 1
    assert get("acd_repeat_calls_total", {"queue": "tech", "window": "24h"}) == 3
    assert get("acd_repeat_calls_total", {"queue": "tech", "window": "7d"}) == 4
    assert get("acd_repeat_calls_total", {"queue": "other", "window": "24h"}) == 0
    counter.record({"entry_queue": "sales", "caller": "+7009", "customer_id": None,
                    "arrival": since})
    assert get("acd_calls_identified_total", {"queue": "other"}) == 1
