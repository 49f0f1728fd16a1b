"""Business hours per queue in the site's time zone, and public holidays per country."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ivr.hours import HoursCalendar, holiday_name, parse_hours
from ivr.known import reference_known

KNOWN = reference_known()


def calendar(spec: dict[str, Any]) -> HoursCalendar:
    """A calendar from an ``hours:`` mapping (fails the test on any problem)."""
    problems: list[object] = []
    hours = parse_hours(spec, KNOWN, lambda loc, value, msg: problems.append((loc, value, msg)))
    assert problems == []
    return HoursCalendar(hours)


REFERENCE = calendar({
    "tech": {"site": "moscow", "open": "always"},
    "orders": {"site": "moscow", "weekly": {"mon-sun": "08:00-22:00"}, "holidays": ["site"]},
    "voc": {"site": "moscow", "weekly": {"mon-fri": "09:00-18:00"}, "holidays": ["site"]},
    "repair": {"site": "kyiv", "weekly": {"mon-sun": "08:00-20:00"}, "holidays": ["caller"]},
})


def utc(year: int, month: int, day: int, hour: int, minute: int) -> float:
    """Epoch seconds of a UTC wall time."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("when", "is_open"), [
    (utc(2026, 3, 4, 4, 59), False),   # 07:59 Moscow
    (utc(2026, 3, 4, 5, 0), True),     # 08:00 Moscow
    (utc(2026, 3, 4, 18, 59), True),   # 21:59 Moscow
    (utc(2026, 3, 4, 19, 0), False),   # 22:00 Moscow
])
def test_orders_hours_in_moscow_time(when: float, is_open: bool) -> None:
    """orders opens 08:00-22:00 Moscow time, whatever the UTC clock says."""
    assert REFERENCE.is_open("orders", when, "RU") is is_open


def test_voc_is_weekdays_only() -> None:
    """voc is open 09:00-18:00 Monday to Friday and closed on Saturday."""
    assert REFERENCE.is_open("voc", utc(2026, 3, 6, 7, 0), "RU")      # Fri 10:00 MSK
    assert not REFERENCE.is_open("voc", utc(2026, 3, 7, 7, 0), "RU")  # Sat 10:00 MSK


def test_orthodox_christmas_closes_orders_by_local_date() -> None:
    """Jan 7 is a RU holiday in Moscow's calendar day, not in UTC's."""
    assert not REFERENCE.is_open("orders", utc(2026, 1, 7, 9, 0), "RU")
    state = REFERENCE.state("orders", utc(2026, 1, 7, 9, 0), "RU")
    assert "Christmas" in state.reason
    # 2026-01-11 00:30 UTC is 03:30 in Moscow: outside hours, but no holiday any more.
    assert "holiday" not in REFERENCE.state("orders", utc(2026, 1, 11, 0, 30), "RU").reason
    # Sunday 2026-01-11 10:00 Moscow (07:00 UTC) is an ordinary open day.
    assert REFERENCE.is_open("orders", utc(2026, 1, 11, 7, 0), "RU")
    assert REFERENCE.is_open("tech", utc(2026, 1, 7, 0, 0), "RU")  # tech never closes


def test_kyiv_queue_follows_kyiv_time_and_daylight_saving() -> None:
    """A Kyiv queue opens at 08:00 Kyiv time: UTC+2 in winter, UTC+3 in summer."""
    assert not REFERENCE.is_open("repair", utc(2026, 1, 15, 5, 59), "UA")
    assert REFERENCE.is_open("repair", utc(2026, 1, 15, 6, 0), "UA")
    assert REFERENCE.is_open("repair", utc(2026, 7, 15, 5, 0), "UA")
    assert not REFERENCE.is_open("repair", utc(2026, 7, 15, 4, 59), "UA")


def test_caller_country_holiday() -> None:
    """holidays: [caller] closes the queue on the caller's national holiday only."""
    nauryz = utc(2026, 3, 23, 9, 0)
    assert holiday_name("KZ", datetime(2026, 3, 23).date()) is not None
    assert not REFERENCE.is_open("repair", nauryz, "KZ")
    assert REFERENCE.is_open("repair", nauryz, "RU")
    assert REFERENCE.is_open("repair", nauryz, "other")  # unknown country: no holidays


def test_cached_windows_agree_with_fresh_answers() -> None:
    """The per-queue cache never changes an answer, in time order or out of it."""
    rng = random.Random(7)
    start = utc(2026, 3, 1, 0, 0)
    times = sorted(start + rng.uniform(0, 14 * 86400) for _ in range(400))
    times += [start + rng.uniform(0, 14 * 86400) for _ in range(200)]
    for t in times:
        for queue in ("orders", "voc", "repair"):
            fresh = HoursCalendar(REFERENCE.hours).is_open(queue, t, "KZ")
            assert REFERENCE.is_open(queue, t, "KZ") is fresh, (queue, t)


def test_undeclared_queue_is_always_open() -> None:
    """A queue without hours in the flow is treated as 24/7."""
    assert calendar({}).is_open("tech", utc(2026, 1, 1, 0, 0), "RU")


def test_span_boundaries_over_a_week() -> None:
    """Each minute of a week matches the declared weekly spans in Moscow time."""
    base = datetime(2026, 3, 2, 0, 0, tzinfo=UTC) - timedelta(hours=3)  # Mon 00:00 MSK
    for minute in range(0, 7 * 1440, 29):
        t = base + timedelta(minutes=minute)
        day, m = divmod(minute, 1440)
        assert REFERENCE.is_open("voc", t.timestamp(), "RU") is (day < 5 and 540 <= m < 1080)
