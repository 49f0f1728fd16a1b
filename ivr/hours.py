"""Business hours per queue in its site's time zone, closed on public holidays per country.

``is_open`` is on the simulator's hot path, so each answer is cached with the time window in
which it stays true (until the next opening/closing boundary or local midnight).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from acd.config.messages import unknown
from ivr.known import KnownNames

Report = Callable[[Sequence[str | int], object, str], None]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


@dataclass(frozen=True)
class QueueHours:
    """Opening hours of one queue: weekly minute spans in the site zone plus holiday countries."""

    queue: str
    site: str
    timezone: ZoneInfo
    #: Per weekday (Monday first): sorted (start_minute, end_minute) spans, end exclusive.
    weekly: tuple[tuple[tuple[int, int], ...], ...]
    #: Countries whose public holidays close the queue; ``caller`` means the caller's country.
    holiday_countries: tuple[str, ...] = ()

    @property
    def always(self) -> bool:
        """True when open around the clock every day and never closed for holidays."""
        return not self.holiday_countries and all(d == ((0, 1440),) for d in self.weekly)


_holiday_sets: dict[str, holidays.HolidayBase | None] = {}
_holiday_days: dict[tuple[str, date], str | None] = {}


def holiday_name(country: str, day: date) -> str | None:
    """Name of the public holiday in ``country`` on ``day``; ``None`` also for unknown countries."""
    key = (country, day)
    if key in _holiday_days:
        return _holiday_days[key]
    if country not in _holiday_sets:
        try:
            _holiday_sets[country] = holidays.country_holidays(country)
        except NotImplementedError:
            _holiday_sets[country] = None
    calendar = _holiday_sets[country]
    name = calendar.get(day) if calendar is not None else None
    _holiday_days[key] = name
    return name


@dataclass(frozen=True, slots=True)
class OpenState:
    """Whether a queue is open, why, and until when (epoch seconds) the answer holds."""

    open: bool
    reason: str
    until: float


class HoursCalendar:
    """Answers "is this queue open now for this caller?" with a per-queue cached window."""

    def __init__(self, hours: Mapping[str, QueueHours]) -> None:
        self.hours = dict(hours)
        self._cache: dict[tuple[str, str], tuple[float, OpenState]] = {}

    def state(self, queue: str, ts: float, caller_country: str) -> OpenState:
        """Open state of ``queue`` at epoch ``ts``; queues without declared hours never close."""
        key = (queue, caller_country)
        cached = self._cache.get(key)
        if cached is not None and cached[0] <= ts < cached[1].until:
            return cached[1]
        spec = self.hours.get(queue)
        if spec is None:
            st = OpenState(True, "no hours declared: always open", float("inf"))
        else:
            st = _compute(spec, ts, caller_country)
        self._cache[key] = (ts, st)
        return st

    def is_open(self, queue: str, ts: float, caller_country: str) -> bool:
        """True when ``queue`` takes calls at epoch ``ts`` for a caller from ``caller_country``."""
        return self.state(queue, ts, caller_country).open


def _compute(spec: QueueHours, ts: float, caller_country: str) -> OpenState:
    tz = spec.timezone
    local = datetime.fromtimestamp(ts, tz)
    today = local.date()
    midnight = datetime.combine(today + timedelta(days=1), time(0), tz).timestamp()
    for country in spec.holiday_countries:
        c = caller_country if country == "caller" else country
        name = holiday_name(c, today)
        if name is not None:
            return OpenState(False, f"closed: public holiday in {c} ({name})", midnight)
    minute = local.hour * 60 + local.minute
    day = DAYS[local.weekday()]
    spans = spec.weekly[local.weekday()]

    def at(m: int) -> float:
        if m >= 1440:
            return midnight
        return datetime.combine(today, time(m // 60, m % 60), tz).timestamp()

    for start, end in spans:
        if start <= minute < end:
            return OpenState(True, f"open {day} {_fmt(start)}-{_fmt(end)} {tz.key}", at(end))
    later = [s for s, _ in spans if s > minute]
    until = at(min(later)) if later else midnight
    return OpenState(False, f"closed {day} {local:%H:%M} {tz.key}", until)


def _fmt(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _day_keys(key: str) -> list[int] | None:
    parts = key.split("-")
    if len(parts) == 1 and key in DAYS:
        return [DAYS.index(key)]
    if len(parts) == 2 and parts[0] in DAYS and parts[1] in DAYS:
        a, b = DAYS.index(parts[0]), DAYS.index(parts[1])
        if a <= b:
            return list(range(a, b + 1))
    return None


def _spans(value: object, loc: list[str | int], report: Report) -> list[tuple[int, int]]:
    items = value if isinstance(value, list) else [value]
    out: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        where = [*loc, i] if isinstance(value, list) else loc
        m = _SPAN.match(item) if isinstance(item, str) else None
        if m is None:
            report(where, item, "hours must be 'HH:MM-HH:MM' (for example '08:00-22:00')")
            continue
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440 or end <= start:
            report(where, item, "hours must run forward within one day, 00:00 to 24:00")
            continue
        out.append((start, end))
    return out


def parse_hours(
    data: object, known: KnownNames, report: Report, loc: Sequence[str | int] = ("hours",)
) -> dict[str, QueueHours]:
    """Read a flow's ``hours:`` mapping (queue -> site, weekly spans, holidays) into QueueHours."""
    out: dict[str, QueueHours] = {}
    if data is None:
        return out
    if not isinstance(data, dict):
        report(list(loc), data, "hours must be a mapping of queue name to opening hours")
        return out
    for queue, spec in data.items():
        here = [*loc, str(queue)]
        if queue not in known.queues:
            report(here, queue, unknown("queue", queue, known.queues, list_all=True))
        if not isinstance(spec, dict):
            report(here, spec, "opening hours must be a mapping (site, open/weekly, holidays)")
            continue
        for k in spec:
            if k not in ("site", "open", "weekly", "holidays"):
                report([*here, str(k)], k, unknown("key", k, ("site", "open", "weekly", "holidays"),
                                                   list_all=True))
        site = spec.get("site", known.queue_sites.get(str(queue)))
        if not isinstance(site, str) or site not in known.sites:
            report([*here, "site"], site, unknown("site", site, known.sites, list_all=True))
            continue
        try:
            tz = ZoneInfo(known.sites[site].timezone)
        except (ZoneInfoNotFoundError, ValueError):
            report([*here, "site"], known.sites[site].timezone, "unknown time zone for site")
            continue
        weekly: list[list[tuple[int, int]]] = [[] for _ in DAYS]
        if spec.get("open") == "always":
            weekly = [[(0, 1440)] for _ in DAYS]
            if "weekly" in spec:
                report([*here, "weekly"], spec["weekly"], "give either open: always or weekly")
        elif "open" in spec:
            report([*here, "open"], spec["open"], "open may only be 'always'")
        elif isinstance(spec.get("weekly"), dict):
            for key, value in spec["weekly"].items():
                days = _day_keys(str(key))
                if days is None:
                    report([*here, "weekly", str(key)], key,
                           "day must be mon..sun or a range such as mon-fri")
                    continue
                spans = _spans(value, [*here, "weekly", str(key)], report)
                for d in days:
                    weekly[d].extend(spans)
        else:
            report([*here], spec, "give open: always or weekly: {mon-fri: '09:00-18:00'}")
        countries: list[str] = []
        raw_h = spec.get("holidays", [])
        for i, c in enumerate(raw_h if isinstance(raw_h, list) else [raw_h]):
            if c == "site":
                countries.append(known.sites[site].country)
            elif c == "caller" or c in known.countries:
                countries.append(str(c))
            else:
                report([*here, "holidays", i], c,
                       f"holidays takes site, caller or a known country {sorted(known.countries)}")
        out[str(queue)] = QueueHours(
            str(queue), str(site), tz, tuple(tuple(sorted(d)) for d in weekly),
            tuple(dict.fromkeys(countries)),
        )
    return out
