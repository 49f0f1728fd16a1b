"""Repeat calls, for first-call resolution: the same customer calling the same queue again.

A customer is the IVR's customer id, else the caller's number; a call with neither is not
identified. A call is a repeat within a window when the customer's previous call to the same
queue (the call's first queue) arrived at most that long before it.
"""

from __future__ import annotations

import csv
import math
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from acd.runtime.records import READ_COLUMNS
from acd.runtime.store import RecordStore, as_store

#: Repeat windows of first-call resolution by default: 24 hours and 7 days.
FCR_WINDOWS_S = (86_400.0, 604_800.0)


def window_name(seconds: float) -> str:
    """``24h``, ``7d``, ``90m``: a repeat window as a short label."""
    if seconds % 86_400 == 0:
        return f"{int(seconds // 86_400)}d" if seconds != 86_400 else "24h"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{seconds / 60:g}m"


def customer_key(row: Mapping[str, object]) -> tuple[str, str] | None:
    """(queue, customer) of a call record, or None when the caller is not identified."""
    who = row.get("customer_id") or row.get("caller")
    return None if not who else (str(row["entry_queue"]), str(who))


def export_records(rows: Iterable[Mapping[str, object]], out: Path, since: float | None,
                   windows_s: Sequence[float] = FCR_WINDOWS_S) -> int:
    """Write every stored column of each call arriving from ``since`` on as CSV, with a
    ``repeat_<window>`` column per window (1: a repeat, 0: a first call, empty: unidentified);
    earlier ``rows`` only count as the calls repeated. Return the calls written."""
    names = [window_name(w) for w in windows_s]
    last: dict[tuple[str, str], float] = {}
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        header = False
        for row in rows:
            if not header:
                writer.writerow([*row, *(f"repeat_{n}" for n in names)])
                header = True
            key = customer_key(row)
            arrival = float(row["arrival"])  # type: ignore[arg-type]
            before = last.get(key) if key is not None else None
            if key is not None:
                last[key] = arrival
            if since is not None and arrival < since:
                continue
            flags = ["" if key is None else int(before is not None and arrival - before <= w)
                     for w in windows_s]
            writer.writerow([*("" if v is None else v for v in row.values()), *flags])
            written += 1
        if not header:
            writer.writerow([*READ_COLUMNS, *(f"repeat_{n}" for n in names)])
    return written


class RepeatCounter:
    """First-call resolution for Prometheus, counted as each call's record is written:
    ``acd_calls_identified_total{queue}`` (calls with a number or a customer id) and
    ``acd_repeat_calls_total{queue,window}`` (those that repeat a call of the same customer to
    the same queue within the window). FCR over a day is
    ``1 - increase(acd_repeat_calls_total[1d]) / increase(acd_calls_identified_total[1d])``.

    Labels are configured queues only (anything else is ``other``), never a number. It keeps
    the last call of each customer to each queue, for the longest window: a few megabytes
    at the reference center's volume.
    """

    def __init__(self, registry: CollectorRegistry, queues: Collection[str],
                 windows_s: Sequence[float] = FCR_WINDOWS_S) -> None:
        self.identified = Counter("acd_calls_identified", "Calls with a caller number or a "
                                  "customer id (first-call resolution's base), by first queue.",
                                  ["queue"], registry=registry)
        self.repeats = Counter("acd_repeat_calls", "Calls of a customer who called the same "
                               "queue within the window before.", ["queue", "window"],
                               registry=registry)
        self.windows = [(window_name(w), w) for w in windows_s]
        self.longest = max(windows_s)
        self.last: dict[tuple[str, str], float] = {}
        self._prune_at = 10_000
        self.configure(queues)

    def configure(self, queues: Collection[str]) -> None:
        """The configured queues (at start and after a reload); their series start at 0."""
        self.queues = frozenset(queues)
        for queue in (*self.queues, "other"):
            self.identified.labels(queue)
            for name, _ in self.windows:
                self.repeats.labels(queue, name)

    def seed_from(self, db: RecordStore | sqlite3.Connection, since: float,
                  until: float = math.inf) -> int:
        """Remember the calls that arrived in ``[since, until)`` (at start, before calls are taken:
        the longest window back) as calls a new call may repeat, without counting them;
        only the columns it needs are read. Return the rows read."""
        cursor = as_store(db).execute("SELECT entry_queue, caller, customer_id, arrival FROM calls"
                            " WHERE arrival >= ? AND arrival < ? ORDER BY arrival",
                            (since, until))
        count = 0
        for queue, caller, customer, arrival in cursor:
            who = customer or caller
            if who:
                self.last[(str(queue), str(who))] = float(arrival)
            count += 1
        return count

    def record(self, row: Mapping[str, object]) -> None:
        """Count one written call record (a ``CallRecords.on_written`` hook)."""
        key = customer_key(row)
        if key is None:
            return
        arrival = float(row["arrival"])  # type: ignore[arg-type]
        queue = key[0] if key[0] in self.queues else "other"
        self.identified.labels(queue).inc()
        before = self.last.get(key)
        self.last[key] = arrival if before is None else max(before, arrival)
        if before is not None:
            for name, window in self.windows:
                if 0 <= arrival - before <= window:
                    self.repeats.labels(queue, name).inc()
        if len(self.last) >= self._prune_at:
            self._prune(arrival)

    def _prune(self, now: float) -> None:
        self.last = {k: t for k, t in self.last.items() if now - t <= self.longest}
        self._prune_at = max(10_000, 2 * len(self.last))
