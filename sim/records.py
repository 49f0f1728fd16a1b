"""What one simulation replication records: one row per offered call and agent time per interval.

Columns are numpy arrays so that KPIs are vectorised (:mod:`sim.kpi`). Categorical columns
(queue, language, country, site, outcome) are small integer codes into the name tuples.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

#: Outcome codes (``CallLog.outcome``). IVR outcomes never reach the router.
OUTCOMES = ("answered", "abandoned", "overflowed", "callback", "voicemail", "ivr_abandoned",
            "ivr_hangup", "callback_work")
ANSWERED, ABANDONED, OVERFLOWED, CALLBACK, VOICEMAIL, IVR_ABANDONED, IVR_HANGUP = range(7)
#: Not a call that came in: outbound work an agent did for an accepted callback or a
#: voicemail (``arrival_s`` when the agent began it, ``wait_s`` how long it waited for one
#: after it was due, ``talk_s`` the outbound call, ``site`` the agent's; never queued).
CALLBACK_WORK = 7
#: The pause reason of an agent doing callback work (counted as busy agent time).
CALLBACK_WORK_REASON = "callback_work"
#: Agent time categories (``AgentTime.seconds[..., k]``).
AGENT_TIME = ("ready", "busy", "paused")
READY, BUSY, PAUSED = range(3)
#: Code for "no site" (call not answered) in ``CallLog.site``.
NO_SITE = -1


@dataclass(frozen=True)
class CallLog:
    """One row per offered call (every arrival, including IVR abandons).

    ``arrival_s`` is when the caller reached the IVR (seconds from the run start); ``queued_s``
    when the call entered the router's queue (NaN if it never did); ``wait_s`` is the time in
    queue until answer, abandon or overflow (0 for IVR outcomes); ``talk_s`` is 0 unless
    answered. ``site`` is the answering agent's site code or NO_SITE. ``repeat`` is 1 for a
    redial (the same caller called the same queue before, within the day), 0 otherwise; a log
    without the column (None) has no repeats.
    """

    arrival_s: np.ndarray  # float64
    queued_s: np.ndarray  # float64
    wait_s: np.ndarray  # float64
    talk_s: np.ndarray  # float64
    queue: np.ndarray  # int16 codes into queues
    language: np.ndarray  # int16 codes into languages
    country: np.ndarray  # int16 codes into countries (last code = "other")
    site: np.ndarray  # int16 codes into sites, NO_SITE when not answered
    outcome: np.ndarray  # int8 codes into OUTCOMES
    queues: tuple[str, ...]
    languages: tuple[str, ...]
    countries: tuple[str, ...]
    sites: tuple[str, ...]
    repeat: np.ndarray | None = None  # int8, 1 = a repeat call (a redial)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


@dataclass(frozen=True)
class AgentTime:
    """Agent seconds per (interval, site, category): ready, busy (ringing+talk+wrap), paused.

    Logged-out time is not counted. Occupancy = busy / (busy + ready).
    """

    seconds: np.ndarray  # float64, shape (n_intervals, n_sites, 3)
    sites: tuple[str, ...]
    interval_s: float


@dataclass(frozen=True)
class Tallies:
    """Call counts and wait sums per (field, group, interval), counted as calls ended.

    ``values[dim]`` has shape (len(fields), len(groups[dim]), n_intervals) for the dimension
    ``dim`` ("all", "queue", "language", "country", "site"); see :mod:`sim.kpi`.
    """

    fields: tuple[str, ...]
    groups: dict[str, tuple[str, ...]]
    values: dict[str, np.ndarray]


@dataclass(frozen=True)
class WaitLog:
    """The wait of every call offered from the run start on (queued_s >= 0), for percentiles:
    20 bytes a call instead of a call log row."""

    queued_s: np.ndarray  # float64
    wait_s: np.ndarray  # float64
    queue: np.ndarray  # int16 codes into queues
    language: np.ndarray  # int16 codes into languages
    queues: tuple[str, ...]
    languages: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    """One replication: its seed, the calls, agent time, and how the run was set up.

    A long run keeps no call log (``calls`` is None): its KPIs come from ``tallies`` and its
    wait percentiles from ``waits``, both filled as calls end.
    """

    seed: int
    calls: CallLog | None
    agent_time: AgentTime
    start_iso: str
    duration_s: float
    interval_s: float
    threshold_s: float
    target: float
    #: (threshold_s, target) per queue code, for per-queue service levels.
    queue_sl: tuple[tuple[float, float], ...]
    short_abandon_s: float
    wall_s: float
    #: Calls waiting per (interval, queue): mean and maximum of one-minute samples.
    queue_depth_mean: np.ndarray | None = None
    queue_depth_max: np.ndarray | None = None
    tallies: Tallies | None = None
    waits: WaitLog | None = None
    #: Calls simulated (every arrival, IVR outcomes included); -1: ``len(calls)``.
    n_calls: int = -1

    @property
    def calls_simulated(self) -> int:
        """How many calls the run simulated."""
        return self.n_calls if self.n_calls >= 0 or self.calls is None else len(self.calls)

    def wait_log(self) -> WaitLog:
        """The waits of calls offered from the start on, from ``waits`` or the call log."""
        if self.waits is not None:
            return self.waits
        if self.calls is None:
            raise ValueError("a run result without call log or wait log has no waits")
        c = self.calls
        offered = ~np.isnan(c.queued_s) & (c.queued_s >= 0)
        return WaitLog(c.queued_s[offered], c.wait_s[offered], c.queue[offered],
                       c.language[offered], c.queues, c.languages)


#: Columns of :func:`write_call_log`, the call-log replay format (docs/traffic.md).
CALL_LOG_COLUMNS = ("arrival", "country", "language", "queue", "talk_s", "abandon_s", "wait_s",
                    "ivr_s", "outcome")
#: Outcomes of queued calls as the call-log format names them.
_LOGGED = {ANSWERED: "answered", ABANDONED: "abandoned", OVERFLOWED: "overflowed",
           CALLBACK: "callback"}


def write_call_log(result: RunResult, path: str | Path) -> int:
    """Write the calls of one replication that reached a queue as a call log that
    ``acd sim run --replay`` reads; returns how many. Calls that ended in the IVR never
    reached the router and are left out, as a PBX's queue log leaves them out."""
    calls = result.calls
    if calls is None:
        raise ValueError("write_call_log needs a run that kept its call log (keep_calls)")
    start = datetime.fromisoformat(result.start_iso)
    rows = 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(CALL_LOG_COLUMNS)
        for i in np.flatnonzero(~np.isnan(calls.queued_s)).tolist():
            outcome = int(calls.outcome[i])
            if outcome not in _LOGGED:
                continue
            arrival = start + timedelta(seconds=float(calls.arrival_s[i]))
            wait = float(calls.wait_s[i])
            country = calls.countries[calls.country[i]]
            out.writerow([
                arrival.isoformat(timespec="microseconds"),
                country if country in calls.countries[:-1] else "",
                calls.languages[calls.language[i]], calls.queues[calls.queue[i]],
                f"{calls.talk_s[i]:.3f}" if outcome == ANSWERED else "",
                f"{wait:.3f}" if outcome == ABANDONED else "", f"{wait:.3f}",
                f"{calls.queued_s[i] - calls.arrival_s[i]:.3f}", _LOGGED[outcome]])
            rows += 1
    return rows
