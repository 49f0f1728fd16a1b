"""Repeat calls, for first-call resolution: the same customer calling the same queue again.

A customer is the IVR's customer id, else the caller's number; a call with neither is not
identified. A call is a repeat within a window when the customer's previous call to the same
queue (the call's first queue) arrived at most that long before it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from acd.runtime.records import READ_COLUMNS

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
