"""Replay sources: the call log CSV and Asterisk's queue_log (calls and staffing)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from acd.errors import ConfigError
from sim.traffic import (
    NATIVE_LANGUAGE,
    QueueLogMapping,
    QueueLogReplay,
    StaffingEvent,
    load_call_log,
    load_queue_log,
)
from sim.traffic.problems import MAX_PROBLEMS
from sim.traffic.replay import CallLog

DATA = Path(__file__).resolve().parent / "data"
QUEUES = ("tech", "repair", "orders", "voc")
LANGUAGES = tuple(sorted(set(NATIVE_LANGUAGE.values())))
COUNTRIES = tuple(NATIVE_LANGUAGE)
MSK = timezone(timedelta(hours=3))
HEADER = "arrival,caller,country,language,queue,talk_s,abandon_s"
MAPPING = QueueLogMapping(
    queues={"support_tech": "tech", "support_tech_uk": "tech", "support_repair": "repair",
            "sales": "orders", "voc": "voc"},
    queue_language={"support_tech_uk": "uk"},
)


def _log(path: Path) -> CallLog:
    return load_call_log(path, QUEUES, LANGUAGES, COUNTRIES)


def _csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "calls.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_sample_call_log_replays_every_field() -> None:
    """The sample log gives arrivals with times from the first call and every column applied."""
    log = _log(DATA / "call_log.sample.csv")
    calls = log.calls
    assert log.origin == datetime(2025, 3, 3, 9, 0, 5, tzinfo=MSK)
    assert [c.t for c in calls] == [0, 36, 65, 115, 205, 295]
    first = calls[0]
    assert (first.queue, first.language, first.country) == ("tech", "ru", "RU")
    assert (first.talk_s, first.patience_s, first.customer_id) == (312, math.inf, "C-1001")
    assert calls[1].country == "UA"  # from the caller number
    assert calls[2].country == "KZ" and calls[2].caller_number is None and calls[2].patience_s == 37
    assert calls[3].language == "kk"  # empty language: the country's native language
    assert (calls[3].priority, calls[3].wrap_s) == (1, 45)
    # Abandoned without talk_s: the median talk of answered calls (none in orders: all queues).
    assert calls[2].talk_s == pytest.approx(float(np.median([312, 254.5, 198, 640])))


def test_call_log_window_and_thinning() -> None:
    """A window from a later start shifts and cuts times; scale < 1 thins with the seed."""
    log = _log(DATA / "call_log.sample.csv")
    later = list(log.arrivals(datetime(2025, 3, 3, 9, 1, 0, tzinfo=MSK), days=100 / 86400))
    assert [a.t for a in later] == [10, 60]
    kept = [list(log.arrivals(rng=np.random.default_rng(s), scale=0.5)) for s in (1, 1, 2)]
    assert kept[0] == kept[1]
    assert 0 < len(kept[0]) < len(log.calls)
    assert kept[0] != kept[2]
    with pytest.raises(ValueError, match="thinned"):
        list(log.arrivals(scale=2.0))


def test_seconds_log_is_replayed_as_is(tmp_path: Path) -> None:
    """Arrival times in seconds are kept as seconds from the run's start."""
    path = _csv(tmp_path, "0,+79161234567,,ru,tech,100,", "12.5,,BY,,repair,80,")
    log = _log(path)
    assert log.origin is None
    assert [(c.t, c.country, c.language) for c in log.calls] == [(0, "RU", "ru"),
                                                                 (12.5, "BY", "be")]


@pytest.mark.parametrize(
    ("rows", "header", "line", "column", "value", "words"),
    [
        (["0,+79161234567,,ru,tech,100,"], "arrival,caller,language,queue,talk_s", 1, "<header>",
         "abandon_s", "missing required column"),
        (["0,+79161234567,,ru,tech,100,"], HEADER + ",mood", 1, "<header>", "mood",
         "unknown column"),
        (["-5,+79161234567,,ru,tech,100,"], HEADER, 2, "arrival", "-5", ">= 0"),
        (["soon,+79161234567,,ru,tech,100,"], HEADER, 2, "arrival", "soon", "ISO 8601"),
        (["2025-03-03T09:00:00,+79161234567,,ru,tech,100,"], HEADER, 2, "arrival",
         "2025-03-03T09:00:00", "UTC offset"),
        (["10,+79161234567,,ru,tech,100,", "5,+79161234567,,ru,tech,100,"], HEADER, 3,
         "arrival", "5", "arrival order"),
        (["10,+79161234567,,ru,tech,100,", "10,+79161234567,,ru,tech,100,"], HEADER, 3, "<row>",
         "10,+79161234567,,ru,tech,100,", "duplicate of line 2"),
        (["0,+79161234567,,ru,billing,100,"], HEADER, 2, "queue", "billing", "unknown queue"),
        (["0,+79161234567,,fr,tech,100,"], HEADER, 2, "language", "fr", "unknown language"),
        (["0,,FR,ru,tech,100,"], HEADER, 2, "country", "FR", "unknown country"),
        (["0,+33612345678,,ru,tech,100,"], HEADER, 2, "country", "FR", "unknown country"),
        (["0,12345,,ru,tech,100,"], HEADER, 2, "caller", "12345", "E.164"),
        (["0,+79161234567,,ru,tech,long,"], HEADER, 2, "talk_s", "long", "number"),
        (["0,+79161234567,,ru,tech,,"], HEADER, 2, "talk_s", "", "needs talk_s"),
        (["0,+79161234567,,ru,tech,100,-3"], HEADER, 2, "abandon_s", "-3", ">= 0"),
        (["0,+79161234567,,ru,tech,100"], HEADER, 2, "<row>", "0,+79161234567,,ru,tech,100",
         "wrong number of fields: 6 where the header has 7"),
    ],
)
def test_bad_call_log_names_file_line_and_value(
    tmp_path: Path, rows: list[str], header: str, line: int, column: str, value: object,
    words: str,
) -> None:
    """Every class of bad call log row is a ConfigError naming file, line, column and value."""
    path = _csv(tmp_path, *rows, header=header)
    with pytest.raises(ConfigError) as info:
        _log(path)
    matches = [p for p in info.value.problems if p.path == column and p.value == value]
    assert matches, str(info.value)
    assert (matches[0].file, matches[0].line) == (str(path), line)
    assert words in matches[0].message


def test_call_log_problems_are_collected_up_to_a_cap(tmp_path: Path) -> None:
    """All bad rows are reported together, capped, with a count of those left out."""
    rows = [f"{i},+79161234567,,ru,billing,100," for i in range(MAX_PROBLEMS + 7)]
    with pytest.raises(ConfigError) as info:
        _log(_csv(tmp_path, *rows))
    problems = info.value.problems
    assert len(problems) == MAX_PROBLEMS + 1
    assert [p.line for p in problems[:3]] == [2, 3, 4]
    assert problems[-1].value == 7


@pytest.fixture(scope="module")
def replay() -> QueueLogReplay:
    return load_queue_log(DATA / "queue_log.sample", MAPPING, QUEUES, LANGUAGES, COUNTRIES)


def test_queue_log_calls(replay: QueueLogReplay) -> None:
    """Calls get talk from COMPLETE*/TRANSFER and patience from ABANDON/EXITWITHKEY."""
    calls = {c.t: c for c in replay.calls}
    assert sorted(calls) == [40, 100, 130, 160, 200, 310, 320, 400]
    assert (calls[40].talk_s, calls[40].patience_s, calls[40].country) == (249, math.inf, "RU")
    assert (calls[100].queue, calls[100].language, calls[100].country) == ("tech", "uk", "UA")
    assert calls[100].caller_number == "+380501234567"  # bare international digits
    assert (calls[130].patience_s, calls[130].country, calls[130].language) == (41, "KZ", "kk")
    assert calls[160].patience_s == math.inf and calls[160].caller_number is None  # timeout
    assert calls[200].talk_s == 185  # TRANSFER calltime
    assert calls[320].patience_s == 15  # EXITWITHKEY waittime
    assert calls[400].talk_s == 118 and calls[400].country == "RU"  # national-format caller id
    assert replay.incomplete == ("1740982480.90",)
    assert replay.unknown_events == {"SURVEYRESULT": 1}
    assert replay.log.origin == datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def test_queue_log_staffing_timeline(replay: QueueLogReplay) -> None:
    """Membership and pause lines collapse into one agent-level event per change."""
    assert list(replay.staffing) == [
        StaffingEvent(0, "PJSIP/1001", "login", None, ("repair", "tech")),
        StaffingEvent(2, "PJSIP/1002", "login", None, ("tech",)),
        StaffingEvent(5, "PJSIP/2001", "login", None, ("orders",)),
        StaffingEvent(460, "PJSIP/1002", "pause", "lunch", ("tech",)),
        StaffingEvent(525, "PJSIP/2001", "pause", "training", ("orders",)),
        StaffingEvent(760, "PJSIP/1002", "unpause", None, ("tech",)),
        StaffingEvent(800, "PJSIP/2001", "unpause", None, ("orders",)),
        StaffingEvent(820, "Agent/3001", "login", None, ()),
        StaffingEvent(850, "PJSIP/1001", "queues", None, ("tech",)),
        StaffingEvent(900, "PJSIP/1002", "logout", None, ()),
        StaffingEvent(905, "Agent/3001", "logout", None, ()),
    ]


@pytest.mark.parametrize(
    ("line", "path", "value", "words"),
    [
        ("1740981700|x|support_tech", "<line>", "1740981700|x|support_tech", "epoch|callid"),
        ("yesterday|x|support_tech|NONE|ENTERQUEUE||+79161234567|1", "epoch", "yesterday",
         "number"),
        ("1740981700|c1|billing|NONE|ENTERQUEUE||+79161234567|1", "queuename", "billing",
         "no mapping"),
        ("1740981701|c0|support_tech|NONE|ABANDON|1|1", "ABANDON", "1|1", "3 data fields"),
        ("1740981702|c0|support_tech|PJSIP/1|COMPLETECALLER|3|long|1", "COMPLETECALLER.calltime",
         "long", "number"),
        ("1740981703|NONE|support_tech|NONE|ADDMEMBER|", "agent", "NONE", "member name"),
    ],
)
def test_malformed_queue_log_line_names_its_line(
    tmp_path: Path, line: str, path: str, value: object, words: str
) -> None:
    """Each malformed queue_log line is reported with the file, its line number and value."""
    file = tmp_path / "queue_log"
    file.write_text("1740981600|c0|support_tech|NONE|ENTERQUEUE||+79161234567|1\n"
                    f"{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_queue_log(file, MAPPING, QUEUES, LANGUAGES, COUNTRIES)
    problem = info.value.problems[0]
    assert (problem.file, problem.line, problem.path, problem.value) == (str(file), 2, path, value)
    assert words in problem.message


def test_queue_log_mapping_to_unknown_queue_is_refused(tmp_path: Path) -> None:
    """A mapping that targets a queue the center does not have is a ConfigError."""
    file = tmp_path / "queue_log"
    file.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown queue"):
        load_queue_log(file, QueueLogMapping({"sales": "billing"}), QUEUES, LANGUAGES, COUNTRIES)
