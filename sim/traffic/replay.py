"""Replay a call log CSV: one row per offered call, in time order (format in docs/traffic.md)."""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from acd.config.files import CSV_MAX_BYTES, text_lines
from acd.config.messages import unknown
from sim.traffic.arrival import NATIVE_LANGUAGE, Arrival
from sim.traffic.callers import country_of_number
from sim.traffic.problems import ProblemList

REQUIRED = ("arrival", "language", "talk_s", "abandon_s")
OPTIONAL = ("caller", "country", "queue", "skill", "priority", "wrap_s", "customer_id", "ivr_s",
            "wait_s", "outcome")
#: Values of the optional ``outcome`` column; without it, a row with ``abandon_s`` is abandoned
#: and any other answered. Overflowed and callback calls left the queue for another reason.
OUTCOMES = ("answered", "abandoned", "overflowed", "callback")
#: Every arrival lies within this many days of the first (a replay is a run, not an era).
MAX_SPAN_DAYS = 400
#: ISO arrival times must fall in these years (as command-line times must).
YEARS = (1900, 2200)


@dataclass(frozen=True)
class CallLog:
    """Calls read from a log; ``t`` is seconds from ``origin`` (the first call, if ISO times)."""

    file: str
    calls: tuple[Arrival, ...]
    origin: datetime | None

    def arrivals(self, start: datetime | None = None, days: float | None = None,
                 rng: np.random.Generator | None = None, scale: float = 1.0
                 ) -> Iterator[Arrival]:
        """Calls in ``[start, start + days)`` with ``t`` from ``start``; ``scale`` <= 1 thins.

        For a log in seconds ``start`` only labels the run (the window starts at t = 0).
        Thinning keeps each call with probability ``scale`` and needs ``rng``.
        """
        if not 0 <= scale <= 1:
            raise ValueError(f"a replay can only be thinned: scale must be in [0, 1], got {scale}")
        if scale < 1 and rng is None:
            raise ValueError("thinning a replay (scale < 1) needs a seeded rng")
        shift = 0.0
        if start is not None and self.origin is not None:
            shift = (start - self.origin).total_seconds()
        end = math.inf if days is None else days * 86400.0
        keep = rng.random(len(self.calls)) < scale if rng is not None and scale < 1 else None
        for i, call in enumerate(self.calls):
            t = call.t - shift
            if 0 <= t < end and (keep is None or keep[i]):
                yield replace(call, t=t)


def _number(text: str, problems: ProblemList, column: str, line: int, *,
            integer: bool = False) -> float | None:
    try:
        value = float(int(text)) if integer else float(text)
    except ValueError:
        problems.add(column, text, "must be " + ("an integer" if integer else "a number"), line)
        return None
    if not math.isfinite(value) or (value < 0 and not integer):
        problems.add(column, text, "must be a finite number >= 0", line)
        return None
    return value


def _arrival_time(text: str, problems: ProblemList, line: int) -> tuple[float, bool] | None:
    """Seconds (as a float) and whether the value was an ISO 8601 timestamp."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            problems.add("arrival", text, "seconds from the start must be finite and >= 0", line)
            return None
        return seconds, False
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        problems.add("arrival", text, "must be ISO 8601 with a UTC offset "
                                      "(2025-03-03T09:00:00+03:00) or seconds from the start", line)
        return None
    if stamp.tzinfo is None:
        problems.add("arrival", text, "ISO 8601 time needs a UTC offset such as +03:00", line)
        return None
    if not YEARS[0] <= stamp.year <= YEARS[1]:
        problems.add("arrival", text, f"must fall in the years {YEARS[0]} to {YEARS[1]}", line)
        return None
    return stamp.timestamp(), True


def _header(fields: Sequence[str] | None, problems: ProblemList) -> bool:
    if not fields:
        problems.add("<header>", None, "empty file: the first line must name the columns", 1)
        return False
    for name in fields:
        if name not in REQUIRED and name not in OPTIONAL:
            problems.add("<header>", name, unknown("column", name, [*REQUIRED, *OPTIONAL]), 1)
    for name in REQUIRED:
        if name not in fields:
            problems.add("<header>", name, "missing required column", 1)
    if "caller" not in fields and "country" not in fields:
        problems.add("<header>", "caller/country", "need a caller or a country column", 1)
    if ("queue" in fields) == ("skill" in fields):
        problems.add("<header>", "queue/skill", "need exactly one of queue or skill", 1)
    return not problems


def load_call_log(
    path: str | Path, known_queues: Collection[str], known_languages: Collection[str],
    known_countries: Collection[str], default_language: str = "ru",
    native_language: Mapping[str, str] = NATIVE_LANGUAGE,
) -> CallLog:
    """Read and strictly check a call log CSV; all problems (up to a cap) in one ConfigError."""
    file = str(path)
    problems = ProblemList(file)
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark.
    reader = csv.DictReader(text_lines(path, CSV_MAX_BYTES, encoding="utf-8-sig"))
    try:
        rows = _rows(reader, problems)
    except csv.Error as exc:  # a field over the csv module's limit, a quote never closed
        # DictReader.line_num lags on a failed row; its inner reader counts the line read.
        problems.add("<row>", None, f"unreadable CSV: {exc}", reader.reader.line_num)
        rows = []
    if not rows and not problems:
        problems.add("<rows>", None, "no calls: the file has a header line but no call rows "
                     "to replay", 1)
    kind = bool(rows) and _is_iso(rows[0][2]["arrival"])
    origin_ts = rows[0][1] if rows and kind else 0.0
    calls = [_call(line, t - origin_ts, row, queue_col(reader), problems, known_queues,
                   known_languages, known_countries, default_language, native_language)
             for line, t, row in rows]
    problems.raise_if_any()
    good = [c for c in calls if c is not None]
    filled = fill_talk(good)
    origin = datetime.fromisoformat(rows[0][2]["arrival"]) if kind and rows else None
    return CallLog(file, tuple(filled), origin)


def queue_col(reader: csv.DictReader[str]) -> str:
    """The column naming the queue: ``queue`` or (Asterisk's word) ``skill``."""
    return "queue" if "queue" in (reader.fieldnames or []) else "skill"


def _is_iso(arrival: str) -> bool:
    try:
        float(arrival)
    except ValueError:
        return True
    return False


def _rows(reader: csv.DictReader[str], problems: ProblemList
          ) -> list[tuple[int, float, dict[str, str]]]:
    """The well-formed rows as (line, arrival in seconds, stripped cells), in arrival order."""
    if not _header(reader.fieldnames, problems):
        problems.raise_if_any()
    fields = list(reader.fieldnames or [])
    rows: list[tuple[int, float, dict[str, str]]] = []
    seen: dict[tuple[str, ...], int] = {}
    kind: bool | None = None
    last = -math.inf
    for row in reader:
        line = reader.line_num
        if None in row or any(v is None for v in row.values()):
            cells = [v for k, v in row.items() if k is not None and v is not None]
            cells += row.get(None) or []
            problems.add("<row>", ",".join(cells), f"wrong number of fields: {len(cells)} where "
                         f"the header has {len(fields)}", line)
            continue
        key = tuple(row.values())
        if key in seen:
            problems.add("<row>", ",".join(key), f"duplicate of line {seen[key]}", line)
            continue
        seen[key] = line
        parsed = _arrival_time(row["arrival"].strip(), problems, line)
        if parsed is None:
            continue
        t, is_iso = parsed
        if kind is None:
            kind = is_iso
        elif kind != is_iso:
            problems.add("arrival", row["arrival"], "mixes ISO times and seconds in one file", line)
            continue
        if t < last:
            problems.add("arrival", row["arrival"], "rows must be in arrival order", line)
        if rows and t - rows[0][1] > MAX_SPAN_DAYS * 86400.0:
            problems.add("arrival", row["arrival"], f"more than {MAX_SPAN_DAYS} days after the "
                         f"first call (line {rows[0][0]}); a replay covers one run", line)
            continue
        last = max(last, t)
        rows.append((line, t, {k: v.strip() for k, v in row.items()}))
    return rows


def _call(
    line: int, t: float, row: dict[str, str], queue_col: str, problems: ProblemList,
    known_queues: Collection[str], known_languages: Collection[str],
    known_countries: Collection[str], default_language: str, native_language: Mapping[str, str],
) -> Arrival | None:
    before = len(problems.problems) + problems.dropped
    queue = row[queue_col]
    if queue not in known_queues:
        problems.add(queue_col, queue, unknown("queue", queue, known_queues, list_all=True), line)
    caller = row.get("caller") or None
    country = row.get("country") or None
    if caller is not None and country is None:
        country = country_of_number(caller)
        if country is None:
            problems.add("caller", caller, "not a valid E.164 number (+ and country code); "
                                           "give a country column instead", line)
    if country is None and caller is None:
        problems.add("country", "", "need a caller number or a country", line)
    elif country is not None and country not in known_countries:
        problems.add("country", country,
                     unknown("country", country, known_countries, list_all=True), line)
    language = row["language"] or native_language.get(country or "", default_language)
    if language not in known_languages:
        problems.add("language", language,
                     unknown("language", language, known_languages, list_all=True), line)
    patience = math.inf
    if row["abandon_s"]:
        patience = _number(row["abandon_s"], problems, "abandon_s", line) or 0.0
    talk = math.nan
    if row["talk_s"]:
        talk = _number(row["talk_s"], problems, "talk_s", line) or 0.0
    outcome = row.get("outcome") or ("answered" if math.isinf(patience) else "abandoned")
    if outcome not in OUTCOMES:
        problems.add("outcome", outcome, unknown("outcome", outcome, OUTCOMES), line)
    elif (outcome == "abandoned") != (not math.isinf(patience)):
        problems.add("abandon_s", row["abandon_s"], "give abandon_s for an abandoned call and "
                     "only for one", line)
    elif outcome == "answered" and not row["talk_s"]:
        problems.add("talk_s", "", "an answered call (no abandon_s) needs talk_s", line)
    ivr = _number(row["ivr_s"], problems, "ivr_s", line) if row.get("ivr_s") else None
    wait = _number(row["wait_s"], problems, "wait_s", line) if row.get("wait_s") else None
    if wait is None and not math.isinf(patience):
        wait = patience  # an abandoned caller waited exactly their patience
    elif wait is not None and not math.isinf(patience) and abs(wait - patience) > 1.0:
        problems.add("wait_s", row["wait_s"], f"an abandoned call waited its abandon_s "
                     f"({row['abandon_s']}), within a second", line)
    priority = 0
    if row.get("priority"):
        priority = int(_number(row["priority"], problems, "priority", line, integer=True) or 0)
    wrap = _number(row["wrap_s"], problems, "wrap_s", line) if row.get("wrap_s") else None
    if len(problems.problems) + problems.dropped > before:
        return None
    assert country is not None
    return Arrival(t, queue, language, country, caller, priority, talk, patience, wrap,
                   row.get("customer_id") or None, ivr, wait)


def fill_talk(calls: list[Arrival]) -> list[Arrival]:
    """Calls without a talk time (abandoned) get the median talk of answered calls in the queue,
    marked ``talk_known=False`` (a replay draws theirs from the answered calls' talk)."""
    by_queue: dict[str, list[float]] = {}
    for c in calls:
        if not math.isnan(c.talk_s):
            by_queue.setdefault(c.queue, []).append(c.talk_s)
    everything = [x for xs in by_queue.values() for x in xs]
    overall = float(np.median(everything)) if everything else 0.0
    medians = {q: float(np.median(xs)) for q, xs in by_queue.items()}
    return [replace(c, talk_s=medians.get(c.queue, overall), talk_known=False)
            if math.isnan(c.talk_s) else c for c in calls]
