"""The traffic YAML (``config/traffic/*.yaml``): volume, 24/7 shape, mix and call behaviour.

Normalisation rule: the queue, country and per-country language shares must each sum to 1
within 1e-6 (they are then divided by their sum); anything further off is a ConfigError. The
intraday weights and day-of-week factors are relative: they are scaled to sum 1 and mean 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from acd.config.messages import EMPTY_FILE, closest, unknown, wrong_kind
from acd.config.yamlsafe import read_yaml
from acd.errors import ConfigError, Problem
from sim.traffic.arrival import Arrival
from sim.traffic.distributions import Distribution, parse_distribution
from sim.traffic.forecast import ForecastSource, Overdispersion, QueueHandling, Stream
from sim.traffic.problems import ProblemList
from sim.traffic.profile import WEEKDAY_KEYS

SHARE_TOLERANCE = 1e-6
MONTH_DAYS = 30
_TOP = {"version", "timezone", "interval_minutes", "volume", "profile", "overdispersion",
        "queues", "countries"}
_QUEUE = {"share", "talk", "patience", "wrap", "priority", "talk_by_language"}


@dataclass(frozen=True)
class TrafficSpec:
    """A forecast traffic model on the local clock of ``timezone``."""

    file: str
    timezone: ZoneInfo
    interval_minutes: int
    calls_per_day: float
    intraday: np.ndarray
    day_of_week: np.ndarray
    overdispersion: Overdispersion
    streams: tuple[Stream, ...]
    mix: np.ndarray
    handling: Mapping[str, QueueHandling]

    def with_overdispersion(self, overdispersion: Overdispersion) -> TrafficSpec:
        """The same model with other over-dispersion (``Overdispersion()`` = pure Poisson)."""
        return replace(self, overdispersion=overdispersion)

    def _grid(self, start: datetime, days: float) -> tuple[float, np.ndarray, np.ndarray]:
        """Offset of interval 0, calls per interval (all streams), and day index per interval."""
        if days <= 0 or not math.isfinite(days):
            raise ValueError(f"days must be a finite number > 0, got {days}")
        start = start if start.tzinfo is not None else start.replace(tzinfo=self.timezone)
        local = start.astimezone(self.timezone)
        m = self.interval_minutes
        minute = local.hour * 60 + local.minute
        first = local.replace(hour=0, minute=0, second=0, microsecond=0) \
            + timedelta(minutes=minute // m * m)
        t0 = first.astimezone(UTC)
        offset = (t0 - start).total_seconds()
        n = math.ceil((days * 86400 - offset) / (m * 60))
        calls = np.empty(n)
        day = np.empty(n, dtype=int)
        for i in range(n):
            at = (t0 + timedelta(seconds=i * m * 60)).astimezone(self.timezone)
            slot = (at.hour * 60 + at.minute) // m
            calls[i] = self.calls_per_day * self.day_of_week[at.weekday()] * self.intraday[slot]
            day[i] = (at.date() - local.date()).days
        return offset, calls, day

    def forecast(self, start: datetime, days: float) -> ForecastSource:
        """Expected calls per interval and stream for ``[start, start + days)``."""
        offset, calls, day = self._grid(start, days)
        return ForecastSource(
            streams=self.streams, expected=calls[:, None] * self.mix[None, :],
            interval_s=self.interval_minutes * 60.0, handling=self.handling,
            day_of_interval=day, overdispersion=self.overdispersion,
            offset_s=offset, horizon_s=days * 86400.0,
        )

    def expected_calls(self, start: datetime, days: float, scale: float = 1.0) -> float:
        """Expected number of arrivals in the window (partial intervals pro rata)."""
        offset, calls, _ = self._grid(start, days)
        dt = self.interval_minutes * 60.0
        lo = offset + np.arange(len(calls)) * dt
        overlap = np.clip(np.minimum(lo + dt, days * 86400) - np.maximum(lo, 0), 0, dt) / dt
        return float(scale * (calls * overlap).sum())

    def arrivals(self, start: datetime, days: float, rng: np.random.Generator,
                 scale: float = 1.0) -> Iterator[Arrival]:
        """Time-ordered arrivals for ``[start, start + days)``; ``scale`` multiplies volume."""
        return iter(self.forecast(start, days).generate(rng, scale))


def _mapping(obj: object, problems: ProblemList, path: str, allowed: Collection[str] | None,
             required: Collection[str] = ()) -> dict[str, object] | None:
    if not isinstance(obj, dict):
        problems.add(path, obj, "must be a mapping")
        return None
    meant: set[str | None] = set()
    if allowed is not None:
        for key in obj:
            if key not in allowed:
                problems.add(f"{path}.{key}" if path != "<root>" else str(key), key,
                             unknown("key", key, allowed))
                meant.add(closest(key, allowed))
    for key in required:
        if key not in obj and key not in meant:  # a misspelt key is reported once
            problems.add(f"{path}.{key}" if path != "<root>" else key, None,
                         f"missing required key {key}")
    return {str(k): v for k, v in obj.items()}


def _positive(obj: object, problems: ProblemList, path: str, allow_zero: bool = False
              ) -> float | None:
    ok = isinstance(obj, int | float) and not isinstance(obj, bool) and math.isfinite(obj) \
        and (obj > 0 or (allow_zero and obj == 0))
    if not ok:
        problems.add(path, obj, "must be a finite number " + (">= 0" if allow_zero else "> 0"))
        return None
    return float(obj)  # type: ignore[arg-type]


def _shares(obj: object, problems: ProblemList, path: str, known: Collection[str], what: str,
            ) -> dict[str, float] | None:
    table = _mapping(obj, problems, path, None)
    if table is None:
        return None
    out: dict[str, float] = {}
    for key, value in table.items():
        if key not in known:
            problems.add(f"{path}.{key}", key, unknown(what, key, known, list_all=True))
        share = _positive(value, problems, f"{path}.{key}", allow_zero=True)
        if share is not None:
            out[key] = share
    return _normalised(out, problems, path)


def _normalised(shares: dict[str, float], problems: ProblemList, path: str
                ) -> dict[str, float] | None:
    total = sum(shares.values())
    if abs(total - 1) > SHARE_TOLERANCE:
        problems.add(path, round(total, 9), "shares must sum to 1 (within 1e-6)")
        return None
    return {k: v / total for k, v in shares.items()}


def _weights(obj: object, problems: ProblemList, path: str, n: int) -> np.ndarray | None:
    if isinstance(obj, list) and all(isinstance(row, list) for row in obj):
        obj = [x for row in obj for x in row]  # rows of a few intervals each, for readability
    if not isinstance(obj, list) or len(obj) != n:
        problems.add(path, obj if not isinstance(obj, list) else f"{len(obj)} values",
                     f"must list {n} weights (one per interval from 00:00)")
        return None
    values = [_positive(x, problems, f"{path}[{i}]", allow_zero=True) for i, x in enumerate(obj)]
    if any(v is None for v in values) or sum(v or 0 for v in values) <= 0:
        return None
    arr = np.array(values, dtype=float)
    return arr / arr.sum()


def _queue(name: str, obj: object, problems: ProblemList, path: str,
           known_languages: Collection[str]) -> tuple[float, QueueHandling] | None:
    table = _mapping(obj, problems, path, _QUEUE, ("share", "talk"))
    if table is None or "share" not in table or "talk" not in table:
        return None
    share = _positive(table["share"], problems, f"{path}.share", allow_zero=True)
    talk = parse_distribution(table["talk"], problems, f"{path}.talk")
    patience = parse_distribution(table["patience"], problems, f"{path}.patience") \
        if "patience" in table else None
    wrap = parse_distribution(table["wrap"], problems, f"{path}.wrap") \
        if "wrap" in table else None
    priority = table.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        problems.add(f"{path}.priority", priority, "priority must be an integer")
        priority = 0
    by_language: dict[str, Distribution] = {}
    overrides = _mapping(table.get("talk_by_language", {}), problems,
                         f"{path}.talk_by_language", None) or {}
    for language, spec in overrides.items():
        if language not in known_languages:
            problems.add(f"{path}.talk_by_language.{language}", language,
                         unknown("language", language, known_languages, list_all=True))
        dist = parse_distribution(spec, problems, f"{path}.talk_by_language.{language}")
        if dist is not None:
            by_language[language] = dist
    if share is None or talk is None:
        return None
    return share, QueueHandling(talk, patience, wrap, priority, by_language)


def load_traffic(path: str | Path, known_queues: Collection[str],
                 known_languages: Collection[str], known_countries: Collection[str]
                 ) -> TrafficSpec:
    """Load and strictly validate a traffic YAML; every problem is reported in one ConfigError."""
    file = str(path)
    data, text = read_yaml(path)
    problems = ProblemList(file, text=text)
    other = wrong_kind(data, "traffic file")
    if other is not None:
        raise ConfigError([Problem(file, "<root>", None, other, 1)])
    if data is None:
        raise ConfigError([Problem(file, "<root>", EMPTY_FILE, "a traffic file must be a mapping "
                                   "with version, timezone, volume, profile, queues and "
                                   "countries")])
    doc = _mapping(data, problems, "<root>", _TOP,
                   ("version", "timezone", "volume", "profile", "queues", "countries"))
    problems.raise_if_any()
    assert doc is not None
    if doc["version"] != 1:
        problems.add("version", doc["version"], "unsupported version; use 1")

    tz: ZoneInfo | None = None
    try:
        tz = ZoneInfo(str(doc["timezone"]))
    except (ZoneInfoNotFoundError, ValueError):
        problems.add("timezone", doc["timezone"], "unknown IANA time zone (e.g. Europe/Moscow)")

    minutes = doc.get("interval_minutes", 30)
    if minutes not in (15, 30) or isinstance(minutes, bool):
        problems.add("interval_minutes", minutes, "interval_minutes must be 15 or 30")
        minutes = 30
    assert isinstance(minutes, int)

    calls_per_day: float | None = None
    volume = _mapping(doc["volume"], problems, "volume", {"calls_per_day", "calls_per_month"})
    if volume is not None:
        if len(volume) != 1:
            problems.add("volume", volume, "give exactly one of calls_per_day or "
                                           f"calls_per_month ({MONTH_DAYS}-day month)")
        elif "calls_per_day" in volume:
            calls_per_day = _positive(volume["calls_per_day"], problems, "volume.calls_per_day")
        elif "calls_per_month" in volume:
            per_month = _positive(volume["calls_per_month"], problems, "volume.calls_per_month")
            calls_per_day = per_month / MONTH_DAYS if per_month is not None else None

    intraday = dow = None
    profile = _mapping(doc["profile"], problems, "profile", {"source", "intraday", "day_of_week"},
                       ("intraday", "day_of_week"))
    if profile is not None and "intraday" in profile and "day_of_week" in profile:
        intraday = _weights(profile["intraday"], problems, "profile.intraday", 24 * 60 // minutes)
        factors = _mapping(profile["day_of_week"], problems, "profile.day_of_week",
                           WEEKDAY_KEYS, WEEKDAY_KEYS)
        if factors is not None and set(factors) == set(WEEKDAY_KEYS):
            values = [_positive(factors[k], problems, f"profile.day_of_week.{k}", allow_zero=True)
                      for k in WEEKDAY_KEYS]
            if all(v is not None for v in values) and sum(v or 0 for v in values) > 0:
                dow = np.array(values, dtype=float)
                dow = dow / dow.mean()

    over = Overdispersion()
    if doc.get("overdispersion") is not None:
        shape_table = _mapping(doc["overdispersion"], problems, "overdispersion",
                               {"interval_shape", "day_shape"}) or {}
        shapes = {k: None if v is None else _positive(v, problems, f"overdispersion.{k}")
                  for k, v in shape_table.items()}
        over = Overdispersion(shapes.get("interval_shape"), shapes.get("day_shape"))

    queue_share: dict[str, float] = {}
    handling: dict[str, QueueHandling] = {}
    queues = _mapping(doc["queues"], problems, "queues", None) or {}
    for name, spec in queues.items():
        if name not in known_queues:
            problems.add(f"queues.{name}", name,
                         unknown("queue", name, known_queues, list_all=True))
        parsed = _queue(name, spec, problems, f"queues.{name}", known_languages)
        if parsed is not None:
            queue_share[name], handling[name] = parsed
    queue_mix = _normalised(queue_share, problems, "queues") if queue_share else None

    country_mix: dict[str, float] = {}
    language_mix: dict[str, dict[str, float]] = {}
    countries = _mapping(doc["countries"], problems, "countries", None) or {}
    for code, spec in countries.items():
        where = f"countries.{code}"
        if code not in known_countries:
            problems.add(where, code, unknown("country", code, known_countries, list_all=True))
        table = _mapping(spec, problems, where, {"share", "languages"}, ("share", "languages"))
        if table is None or "share" not in table or "languages" not in table:
            continue
        share = _positive(table["share"], problems, f"{where}.share", allow_zero=True)
        languages = _shares(table["languages"], problems, f"{where}.languages", known_languages,
                            "language")
        if share is not None and languages is not None:
            country_mix[code], language_mix[code] = share, languages
    country_norm = _normalised(country_mix, problems, "countries") if country_mix else None

    problems.raise_if_any()
    assert tz is not None and calls_per_day is not None and intraday is not None
    assert dow is not None and queue_mix is not None and country_norm is not None
    streams: list[Stream] = []
    mix: list[float] = []
    for queue, qs in queue_mix.items():
        for country, cs in country_norm.items():
            for language, ls in language_mix[country].items():
                if qs * cs * ls > 0:
                    streams.append(Stream(queue, language, country))
                    mix.append(qs * cs * ls)
    return TrafficSpec(file, tz, minutes, calls_per_day, intraday, dow, over, tuple(streams),
                       np.array(mix), handling)
