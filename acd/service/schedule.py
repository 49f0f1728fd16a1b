"""When the shift summary goes out: local times of day in an IANA zone, as UTC instants.

Pure functions over aware datetimes (no clock is read here). A DST change moves the times with
the clock on the wall: a time inside a spring-forward gap falls when the clock has jumped past
it (02:30 in a 02:00 -> 03:00 gap is 03:30), a time that happens twice (fall back) counts once,
at its first occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from datetime import time as LocalTime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_times(values: Sequence[str]) -> list[LocalTime]:
    """``["08:00", "20:00"]`` as sorted, distinct times of day."""
    return sorted({LocalTime.fromisoformat(v) for v in values})


def times_problem(value: object) -> str | None:
    """Why ``value`` is not a list of ``HH:MM`` times, or None."""
    if not isinstance(value, list):
        return "must be a list of local times like '08:00'"
    for item in value:
        if isinstance(item, int):
            return (f"{item} is a number: quote local times in YAML, e.g. '20:00' "
                    "(unquoted, 20:00 reads as the number 1200)")
        if not isinstance(item, str) or len(item) != 5 or item[2] != ":":
            return f"{item!r} is not a local time HH:MM such as '08:00'"
        try:
            LocalTime.fromisoformat(item)
        except ValueError:
            return f"{item!r} is not a local time HH:MM such as '08:00'"
    return None


def zone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone, or None."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not an IANA time zone such as 'Europe/Moscow'"
    return None


def _slots_around(instant: datetime, times: Sequence[LocalTime], zone: ZoneInfo
                  ) -> list[datetime]:
    """Every scheduled instant (UTC) from two days before ``instant`` to two days after."""
    day = instant.astimezone(zone).date()
    slots = {datetime.combine(day + timedelta(days=d), t, tzinfo=zone).astimezone(UTC)
             for d in range(-2, 3) for t in times}
    return sorted(slots)


def next_send(after: datetime, times: Sequence[LocalTime], zone: ZoneInfo) -> datetime:
    """The first scheduled instant strictly after ``after`` (aware; returned in UTC)."""
    return next(s for s in _slots_around(after, times, zone) if s > after)


def previous_send(before: datetime, times: Sequence[LocalTime], zone: ZoneInfo) -> datetime:
    """The last scheduled instant strictly before ``before``: where a mail's period starts."""
    return [s for s in _slots_around(before, times, zone) if s < before][-1]
