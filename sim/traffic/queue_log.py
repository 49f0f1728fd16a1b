"""Replay Asterisk's ``queue_log``: the offered calls and the staffing timeline behind them.

Line format: ``epoch|callid|queuename|agent|event|data1|data2|...``. Calls come from
ENTERQUEUE (caller id) and their outcome: CONNECT then COMPLETECALLER / COMPLETEAGENT /
TRANSFER (talk = calltime), ABANDON and EXITWITHKEY (patience = waittime), EXITWITHTIMEOUT and
EXITEMPTY (the queue, not the caller, ended the wait: patience infinite). Staffing comes from
ADDMEMBER / REMOVEMEMBER, AGENTLOGIN / AGENTLOGOFF, PAUSE / UNPAUSE / PAUSEALL / UNPAUSEALL.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from acd.config.files import QUEUE_LOG_MAX_BYTES, read_text
from sim.traffic.arrival import NATIVE_LANGUAGE, Arrival, StaffingEvent, StaffingKind
from sim.traffic.callers import country_of_number
from sim.traffic.problems import ProblemList
from sim.traffic.replay import MAX_SPAN_DAYS, CallLog, fill_talk

#: Data fields each call event needs, and which of them holds a number we use.
_OUTCOMES = {
    "COMPLETECALLER": 3, "COMPLETEAGENT": 3, "ABANDON": 3, "EXITWITHTIMEOUT": 3,
    "EXITEMPTY": 3, "EXITWITHKEY": 4, "TRANSFER": 4, "BLINDTRANSFER": 4, "ATTENDEDTRANSFER": 4,
}
_STAFFING = {"ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE", "PAUSEALL", "UNPAUSEALL",
             "AGENTLOGIN", "AGENTLOGOFF", "AGENTCALLBACKLOGIN", "AGENTCALLBACKLOGOFF"}
#: Events understood but not needed for arrivals or staffing.
_IGNORED = {"CONNECT", "RINGNOANSWER", "RINGCANCELED", "QUEUESTART", "CONFIGRELOAD", "SYSCOMPAT",
            "INFO", "DID", "AGENTDUMP", "PENALTY", "JOINEMPTY", "JOINUNAVAIL"}


@dataclass(frozen=True)
class QueueLogMapping:
    """How Asterisk names map to the center's: queues, optional per-queue language, defaults."""

    queues: Mapping[str, str]
    queue_language: Mapping[str, str] = field(default_factory=dict)
    default_country: str = "RU"
    default_language: str = "ru"
    native_language: Mapping[str, str] = field(default_factory=lambda: dict(NATIVE_LANGUAGE))


@dataclass(frozen=True)
class QueueLogReplay:
    """Calls and staffing rebuilt from one queue_log; ``t`` counts from its first line."""

    file: str
    log: CallLog
    staffing: tuple[StaffingEvent, ...]
    incomplete: tuple[str, ...]
    unknown_events: Mapping[str, int]

    @property
    def calls(self) -> tuple[Arrival, ...]:
        """Every call with a known outcome, in arrival order."""
        return self.log.calls

    def arrivals(self, start: datetime | None = None, days: float | None = None,
                 rng: np.random.Generator | None = None, scale: float = 1.0
                 ) -> Iterator[Arrival]:
        """Calls in the window, as :meth:`CallLog.arrivals`."""
        return self.log.arrivals(start, days, rng, scale)


@dataclass
class _OpenCall:
    line: int
    epoch: float
    queue: str
    language: str
    country: str
    caller: str | None


def _caller(callerid: str) -> tuple[str | None, str | None]:
    """E.164 number and its country, trying ``+`` before a bare international number."""
    text = callerid.strip()
    candidates = [text] if text.startswith("+") else \
        ([f"+{text}"] if text.isdigit() and len(text) >= 8 else [])
    for candidate in candidates:
        country = country_of_number(candidate)
        if country is not None:
            return candidate, country
    return None, None


def _float(text: str, problems: ProblemList, what: str, line: int) -> float | None:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        problems.add(what, text, "must be a number >= 0", line)
        return None
    return value


class _Staffing:
    """Collapses per-queue membership and pause lines into agent-level staffing events."""

    def __init__(self) -> None:
        self.events: list[StaffingEvent] = []
        # Asterisk queue name -> mapped queue, per agent (two Asterisk queues may map to one).
        self.members: dict[str, dict[str, str]] = {}
        self.logged_in: set[str] = set()
        self.paused: set[str] = set()
        self.last: dict[str, int] = {}

    def _emit(self, t: float, agent: str, kind: StaffingKind, reason: str | None = None) -> None:
        queues = tuple(sorted(set(self.members.get(agent, {}).values())))
        event = StaffingEvent(t, agent, kind, reason, queues)
        i = self.last.get(agent)
        # Asterisk writes one line per queue; lines of the same second make one change.
        if i is not None and self.events[i].t == t and self.events[i].kind in ("login", "queues") \
                and kind in ("queues", "logout"):
            if self.events[i].kind == "login" and kind == "queues":
                event = replace(event, kind="login")
            self.events[i] = event
            return
        self.last[agent] = len(self.events)
        self.events.append(event)

    def apply(self, t: float, agent: str, event: str, asterisk_queue: str, queue: str | None,
              reason: str | None) -> None:
        """Apply one staffing line of ``agent`` (``queue`` is the mapped name, if any)."""
        members = self.members.setdefault(agent, {})
        if event in ("ADDMEMBER", "AGENTLOGIN", "AGENTCALLBACKLOGIN"):
            if queue is not None:
                members[asterisk_queue] = queue
            if agent not in self.logged_in:
                self.logged_in.add(agent)
                self._emit(t, agent, "login")
            else:
                self._emit(t, agent, "queues")
        elif event in ("REMOVEMEMBER", "AGENTLOGOFF", "AGENTCALLBACKLOGOFF"):
            if event == "REMOVEMEMBER":
                members.pop(asterisk_queue, None)
            else:
                members.clear()
            if not members and agent in self.logged_in:
                self.logged_in.discard(agent)
                self.paused.discard(agent)
                self._emit(t, agent, "logout")
            elif members:
                self._emit(t, agent, "queues")
        elif event in ("PAUSE", "PAUSEALL") and agent not in self.paused:
            self.paused.add(agent)
            self._emit(t, agent, "pause", reason)
        elif event in ("UNPAUSE", "UNPAUSEALL") and agent in self.paused:
            self.paused.discard(agent)
            self._emit(t, agent, "unpause", reason)


def read_queue_log(path: str | Path) -> str:
    """The text of a queue_log (a leading byte order mark dropped, bad bytes replaced): a
    regular file of at most :data:`~acd.config.files.QUEUE_LOG_MAX_BYTES`."""
    return read_text(path, QUEUE_LOG_MAX_BYTES, encoding="utf-8-sig", errors="replace")


def load_queue_log(path: str | Path, mapping: QueueLogMapping, known_queues: Collection[str],
                   known_languages: Collection[str], known_countries: Collection[str]
                   ) -> QueueLogReplay:
    """Read a queue_log; malformed lines and unmapped queues are one ConfigError with lines."""
    file = str(path)
    problems = ProblemList(file)
    text = read_queue_log(path)
    for name, target in mapping.queues.items():
        if target not in known_queues:
            problems.add(f"mapping.queues.{name}", target,
                         f"maps to an unknown queue; known: {sorted(known_queues)}")
    parsed: list[tuple[float, int, list[str]]] = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("|")
        if len(fields) < 5:
            problems.add("<line>", raw[:80], "needs epoch|callid|queuename|agent|event|data...",
                         line)
            continue
        epoch = _float(fields[0], problems, "epoch", line)
        if epoch is not None:
            parsed.append((epoch, line, fields))
    if not parsed and not problems:
        problems.add("<root>", None, "no queue_log events: the file is empty, nothing to replay")
    problems.raise_if_any()
    parsed.sort(key=lambda item: (item[0], item[1]))  # stable: same-second lines keep file order
    start = parsed[0][0] if parsed else 0.0
    for epoch, line, fields in parsed:
        if epoch - start > MAX_SPAN_DAYS * 86400.0:
            problems.add("epoch", fields[0], f"more than {MAX_SPAN_DAYS} days after the log's "
                         "first line; a replay covers one run", line)
    problems.raise_if_any()

    open_calls: dict[str, _OpenCall] = {}
    calls: list[Arrival] = []
    staffing = _Staffing()
    unknown: dict[str, int] = {}
    for epoch, line, fields in parsed:
        callid, queue_name, agent, event, data = fields[1], fields[2], fields[3], fields[4], \
            fields[5:]
        queue = mapping.queues.get(queue_name)
        if queue is None and queue_name in known_queues:
            queue = queue_name
        t = epoch - start
        if event in _STAFFING:
            if agent in ("", "NONE"):
                problems.add("agent", agent, f"{event} needs the member name", line)
                continue
            reason = data[0] if data and data[0] and event in ("PAUSE", "PAUSEALL",
                                                                 "UNPAUSE", "UNPAUSEALL") else None
            staffing.apply(t, agent, event, queue_name, queue, reason)
        elif event == "ENTERQUEUE":
            if queue is None:
                problems.add("queuename", queue_name, "queue has no mapping to a configured "
                             f"queue; map it with --queue-map {queue_name}=QUEUE (queues: "
                             f"{', '.join(sorted(known_queues))})", line)
                continue
            number, found = _caller(data[1] if len(data) > 1 else "")
            if found is None or found not in known_countries:
                # A national-format or foreign caller id: trust neither number nor country.
                number, found = None, mapping.default_country
            country = found
            language = mapping.queue_language.get(
                queue_name, mapping.native_language.get(country, mapping.default_language))
            if language not in known_languages:
                language = mapping.default_language
            open_calls[callid] = _OpenCall(line, epoch, queue, language, country, number)
        elif event in _OUTCOMES:
            if len(data) < _OUTCOMES[event] or (event == "ATTENDEDTRANSFER" and len(data) < 4):
                problems.add(event, "|".join(data), f"{event} needs {_OUTCOMES[event]} data fields",
                             line)
                continue
            call = open_calls.pop(callid, None)
            if call is not None:
                arrival = _outcome(call, event, data, start, problems, line)
                if arrival is not None:
                    calls.append(arrival)
        elif event not in _IGNORED:
            unknown[event] = unknown.get(event, 0) + 1
    problems.raise_if_any()
    calls.sort(key=lambda a: a.t)
    origin = datetime.fromtimestamp(start, UTC)
    return QueueLogReplay(file, CallLog(file, tuple(fill_talk(calls)), origin),
                          tuple(staffing.events), tuple(open_calls), unknown)


def _outcome(call: _OpenCall, event: str, data: list[str], start: float,
             problems: ProblemList, line: int) -> Arrival | None:
    talk, patience, wait = math.nan, math.inf, None
    if event in ("COMPLETECALLER", "COMPLETEAGENT"):
        value = _float(data[1], problems, f"{event}.calltime", line)
        if value is None:
            return None
        talk = value
        wait = _held(data[0])
    elif event.endswith("TRANSFER"):
        # holdtime|calltime|origposition are the last three, whatever the transfer target.
        value = _float(data[-2], problems, f"{event}.calltime", line)
        if value is None:
            return None
        talk = value
        wait = _held(data[-3])
    elif event in ("ABANDON", "EXITWITHKEY"):
        value = _float(data[-1], problems, f"{event}.waittime", line)
        if value is None:
            return None
        patience = wait = value
    else:  # EXITWITHTIMEOUT, EXITEMPTY: still waiting when the queue let go
        wait = _float(data[-1], problems, f"{event}.waittime", line)
        if wait is None:
            return None
    return Arrival(call.epoch - start, call.queue, call.language, call.country, call.caller, 0,
                   talk, patience, wait_s=wait)


def _held(text: str) -> float | None:
    """An answered call's hold time, when the field holds one (it only informs patience)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None
