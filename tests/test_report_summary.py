"""``acd report summary`` on a hand-made set of call records whose figures are known: SL,
answer rate, ASA, AHT and abandon rate for the center and by queue, site and interval, the
interval that missed, SL consistency, and the same figures in text and HTML."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from acd.cli import main
from acd.runtime.records import CALL_COLUMNS, open_database

MSK = "+03:00"


def stamp(local: str) -> float:
    """Unix seconds of a Moscow wall time like ``08:05``."""
    return datetime.fromisoformat(f"2026-03-02T{local}:00{MSK}").timestamp()


def record(n: int, at: str, queue: str, outcome: str, wait: float, talk: float,
           site: str | None, language: str = "ru", country: str = "RU") -> tuple[object, ...]:
    arrival = stamp(at)
    answered = arrival + wait if outcome == "answered" else None
    values = {"call_id": f"c{n}", "outcome": outcome, "entry_queue": queue, "queue": queue,
              "language": language, "country": country,
              "agent_id": "a1" if outcome == "answered" else None, "site": site,
              "arrival": arrival, "queued": arrival, "offered": answered, "answered": answered,
              "ended": arrival + wait + talk, "wait_s": wait, "talk_s": talk, "offers": 1,
              "overflow_target": None, "overflow_reason": None}
    return tuple(values[c] for c in CALL_COLUMNS)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """08:00-08:30: 10 tech calls, 8 answered in 5 s (talk 100 s), 1 in 30 s (talk 200 s),
    1 abandoned after 40 s. 08:30-09:00: 10 repair calls from Ukraine answered in Kyiv in
    2 s (talk 60 s). One call before and one after the period."""
    rows = [record(n, f"08:{n:02d}", "tech", "answered", 5.0, 100.0, "moscow")
            for n in range(8)]
    rows.append(record(8, "08:10", "tech", "answered", 30.0, 200.0, "moscow"))
    rows.append(record(9, "08:11", "tech", "abandoned", 40.0, 0.0, None))
    rows += [record(10 + n, f"08:{30 + n:02d}", "repair", "answered", 2.0, 60.0, "kyiv",
                    "uk", "UA") for n in range(10)]
    rows.append(record(20, "07:59", "tech", "abandoned", 1.0, 0.0, None))
    rows.append(record(21, "09:00", "tech", "abandoned", 1.0, 0.0, None))
    path = tmp_path / "acd.sqlite3"
    db = open_database(path)
    db.executemany(f"INSERT INTO calls ({', '.join(CALL_COLUMNS)}) VALUES "
                   f"({', '.join('?' * len(CALL_COLUMNS))})", rows)
    db.close()
    return path


def run(database: Path, out: Path, form: str) -> str:
    code = main(["report", "summary", "--db", str(database), "--since", f"2026-03-02T08:00{MSK}",
                 "--until", f"2026-03-02T09:00{MSK}", "--format", form, "--out", str(out)])
    assert code == 0
    return out.read_text()


def test_summary_figures_by_center_queue_site_and_interval(database: Path,
                                                            tmp_path: Path) -> None:
    """The JSON summary has the figures worked out by hand from the records."""
    data = json.loads(run(database, tmp_path / "s.json", "json"))
    center = data["center"]
    assert center["offered"] == 20 and center["answered"] == 19
    assert center["sl"] == pytest.approx(18 / 20)
    assert center["answer_rate"] == pytest.approx(19 / 20)
    assert center["abandon_rate"] == pytest.approx(1 / 20)
    assert center["asa_s"] == pytest.approx((8 * 5 + 30 + 10 * 2) / 19)
    assert center["aht_s"] == pytest.approx((8 * 100 + 200 + 10 * 60) / 19)
    tech = data["by"]["queue"]["tech"]
    assert tech["sl"] == pytest.approx(0.8) and tech["asa_s"] == pytest.approx(70 / 9)
    assert data["by"]["queue"]["repair"]["sl"] == 1.0
    assert data["by"]["site"]["moscow"]["offered"] == 9
    assert data["by"]["site"]["-"]["offered"] == 1 and data["by"]["site"]["kyiv"]["offered"] == 10
    assert data["by"]["language"]["uk"]["answer_rate"] == 1.0
    assert data["by"]["country"]["RU"]["abandon_rate"] == pytest.approx(0.1)
    assert [i["start"] for i in data["intervals"]] == ["2026-03-02T08:00+03:00",
                                                      "2026-03-02T08:30+03:00"]
    assert data["intervals_missed"] == ["2026-03-02T08:00+03:00"]
    assert data["sl_consistency"] == 0.5 and data["intervals_judged"] == 2


def test_text_and_html_carry_the_same_figures(database: Path, tmp_path: Path) -> None:
    """The text and HTML forms show the center's SL, the missed interval and consistency."""
    text = run(database, tmp_path / "s.txt", "text")
    assert "center" in text and "90.0%" in text and "95.0%" in text
    assert "2026-03-02T08:00+03:00" in text and "MISSED" in text
    assert "SL consistency: 50.0% of 2 intervals" in text
    html = run(database, tmp_path / "s.html", "html")
    assert html.startswith("<!doctype html>") and "<h2>By site</h2>" in html
    assert 'class="miss"' in html and "50.0%" in html


def test_until_before_since_is_bad_input(database: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    """A period that ends before it starts exits 2 with a message naming --until."""
    code = main(["report", "summary", "--db", str(database), "--since", f"2026-03-02T09:00{MSK}",
                 "--until", f"2026-03-02T08:00{MSK}"])
    assert code == 2
    assert "--until" in capsys.readouterr().err
