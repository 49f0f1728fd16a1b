"""Derive the reference traffic shape from the real bank call data (data/bank_calls_5min.csv).

The data covers weekdays 07:00-21:00 only. From it come: the mean weekday intraday profile,
the Monday-Friday factors, the busiest interval, and the measured over-dispersion. The rest of
the week and the night are documented assumptions (constants below). Run
``acd traffic profile data/bank_calls_5min.csv`` to print the YAML block that
``config/traffic/reference.yaml`` ships; a test checks that the two agree.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np

from acd.config.files import CSV_MAX_BYTES, text_lines
from acd.config.messages import shown
from acd.errors import ConfigError, Problem

#: Observed window of the data on the local clock, minutes from midnight: [07:00, 21:00).
OPEN_MIN, CLOSE_MIN = 7 * 60, 21 * 60
#: Night floor as a share of the busiest interval (assumption: a 24/7 consumer line still
#: gets a few percent of its peak between 01:00 and 05:00).
NIGHT_FLOOR_OF_PEAK = 0.03
#: The night floor holds from 01:00 to 05:00; log-linear tapers join it to the observed
#: evening (last observed interval) and morning (first observed interval) levels.
NIGHT_FLOOR_FROM_MIN, NIGHT_FLOOR_TO_MIN = 1 * 60, 5 * 60
#: Saturday and Sunday volume relative to the mean weekday (assumption: consumer support is
#: open at weekends with lower demand; the bank data has no weekends).
WEEKEND_FACTORS = {5: 0.55, 6: 0.40}
#: Most calls one 5-minute row of the bank CSV may count (a sanity bound, not a capacity).
MAX_CALLS_PER_ROW = 100_000
#: Days either side of a day used to smooth the daily level when measuring day over-dispersion.
DAY_SMOOTHING_HALF_WIDTH = 10
WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class ReferenceProfile:
    """The traffic shape derived from the data, ready to be written to the traffic YAML."""

    interval_minutes: int
    #: Share of a day's calls in each interval from 00:00 local; sums to 1.
    intraday: tuple[float, ...]
    #: Volume factor per weekday, Monday first; mean 1 over the seven days.
    day_of_week: tuple[float, ...]
    #: Interval index (from 00:00) with the most calls in the data.
    observed_peak_interval: int
    #: Mean of (n - m)^2 / m over observed intervals (1 for a Poisson process).
    index_of_dispersion: float
    #: Gamma-Poisson shape k per interval (variance = m + m^2 / k), given the day's total.
    interval_shape: float
    #: Gamma-Poisson shape k of the daily totals around a smoothed level.
    day_shape: float
    days: int


def read_bank_calls(csv_path: str | Path) -> dict[date, dict[int, int]]:
    """Calls per day and per minute-of-day from the 5-minute bank CSV, inside [07:00, 21:00)."""
    per_day: dict[date, dict[int, int]] = defaultdict(dict)
    path = str(csv_path)
    rows = 0
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark.
    reader = csv.DictReader(text_lines(csv_path, CSV_MAX_BYTES, encoding="utf-8-sig"))
    try:
        missing = [c for c in ("DateTime", "Calls") if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError([Problem(path, "<header>", shown(reader.fieldnames),
                                       f"missing column(s) {', '.join(missing)}; the header "
                                       "must name DateTime and Calls", 1)])
        for line, row in enumerate(reader, start=2):
            rows += 1
            try:
                # "UTC-stamped local time": the Z is a label, the clock is the centre's own.
                stamp = datetime.fromisoformat(row["DateTime"].rstrip("Z"))
                calls = int(row["Calls"])
            except (KeyError, ValueError, TypeError) as exc:
                raise ConfigError([Problem(path, "DateTime/Calls", shown(dict(row)),
                                           f"unreadable row: {exc}", line)]) from exc
            if not 0 <= calls <= MAX_CALLS_PER_ROW:
                raise ConfigError([Problem(path, "Calls", calls, "must be a count from 0 to "
                                           f"{MAX_CALLS_PER_ROW} calls in 5 minutes", line)])
            minute = stamp.hour * 60 + stamp.minute
            if OPEN_MIN <= minute < CLOSE_MIN:
                per_day[stamp.date()][minute] = calls
    except csv.Error as exc:  # a field over the csv module's limit, a quote never closed
        raise ConfigError([Problem(path, "<row>", None, f"unreadable CSV: {exc}",
                                   reader.reader.line_num)]) from exc
    if not per_day:
        why = "the file has a header line but no rows" if rows == 0 else \
            f"none of its {rows} row(s) falls in the observed window 07:00-21:00"
        raise ConfigError([Problem(path, "<rows>", None, f"no calls: {why}", 1)])
    return dict(per_day)


def _counts_matrix(per_day: dict[date, dict[int, int]], interval_minutes: int
                   ) -> tuple[list[date], np.ndarray]:
    days = sorted(per_day)
    slots = (CLOSE_MIN - OPEN_MIN) // interval_minutes
    counts = np.zeros((len(days), slots))
    for i, d in enumerate(days):
        for minute, calls in per_day[d].items():
            counts[i, (minute - OPEN_MIN) // interval_minutes] += calls
    return days, counts


def _night_extension(observed: np.ndarray, interval_minutes: int) -> np.ndarray:
    """Whole-day levels: observed intervals kept, night intervals tapered log-linearly."""
    n = 24 * 60 // interval_minutes
    first, last = OPEN_MIN // interval_minutes, CLOSE_MIN // interval_minutes
    floor = NIGHT_FLOOR_OF_PEAK * observed.max()
    half = interval_minutes / 2
    # Anchors (minute of the interval midpoint, level); the day wraps at midnight.
    anchors_t = [CLOSE_MIN - half, NIGHT_FLOOR_FROM_MIN + 24 * 60,
                 NIGHT_FLOOR_TO_MIN + 24 * 60, OPEN_MIN + half + 24 * 60]
    anchors_v = [math.log(observed[-1]), math.log(floor), math.log(floor),
                 math.log(observed[0])]
    levels = np.empty(n)
    for k in range(n):
        if first <= k < last:
            levels[k] = observed[k - first]
            continue
        mid = k * interval_minutes + half
        mid = mid + 24 * 60 if mid < OPEN_MIN else mid
        levels[k] = math.exp(float(np.interp(mid, anchors_t, anchors_v)))
    return levels


def build_reference_profile(csv_path: str | Path, interval_minutes: int = 30) -> ReferenceProfile:
    """Derive the 24/7 reference shape and the over-dispersion from the bank CSV."""
    if interval_minutes not in (15, 30):
        raise ValueError(f"interval_minutes must be 15 or 30, got {interval_minutes}")
    days, counts = _counts_matrix(read_bank_calls(csv_path), interval_minutes)
    observed = counts.sum(axis=0)  # ratio of sums: the busiest interval is the data's busiest
    levels = _night_extension(observed, interval_minutes)
    intraday = levels / levels.sum()

    weekday = np.array([d.weekday() for d in days])
    daily = counts.sum(axis=1)
    weekday_mean = np.array([daily[weekday == w].mean() for w in range(5)])
    factors = [*(weekday_mean / weekday_mean.mean()), WEEKEND_FACTORS[5], WEEKEND_FACTORS[6]]
    dow = np.array(factors) / np.mean(factors)

    # Interval over-dispersion: each count against the day's own total spread by the mean
    # intraday profile of that weekday (the smoothed mean), method of moments for 1/k.
    expected = np.empty_like(counts)
    for w in range(5):
        rows = weekday == w
        share = counts[rows].sum(axis=0) / counts[rows].sum()
        expected[rows] = daily[rows, None] * share[None, :]
    excess = ((counts - expected) ** 2 - counts).sum() / (expected**2).sum()
    index = float((((counts - expected) ** 2) / expected).mean())

    # Day over-dispersion: daily totals against a smoothed level times the weekday factor.
    adjusted = daily / (weekday_mean / weekday_mean.mean())[weekday]
    h = DAY_SMOOTHING_HALF_WIDTH
    level = np.array([adjusted[max(0, i - h): i + h + 1].mean() for i in range(len(days))])
    day_expected = level * (weekday_mean / weekday_mean.mean())[weekday]
    day_excess = ((daily - day_expected) ** 2 - daily).sum() / (day_expected**2).sum()

    return ReferenceProfile(
        interval_minutes=interval_minutes,
        intraday=tuple(float(x) for x in intraday),
        day_of_week=tuple(float(x) for x in dow),
        observed_peak_interval=int(np.argmax(observed)) + OPEN_MIN // interval_minutes,
        index_of_dispersion=index,
        interval_shape=float(1 / excess),
        day_shape=float(1 / day_excess),
        days=len(days),
    )


def render_yaml(profile: ReferenceProfile) -> str:
    """The ``interval_minutes``, ``profile`` and ``overdispersion`` YAML blocks for the profile."""
    m = profile.interval_minutes
    lines = [f"interval_minutes: {m}", "profile:", "  # share of the day's calls per interval"
             " from 00:00 local, derived by sim.traffic.profile", "  intraday:"]
    for start in range(0, len(profile.intraday), 4):
        hh, mm = divmod(start * m, 60)
        chunk = ", ".join(f"{x:.6f}" for x in profile.intraday[start:start + 4])
        lines.append(f"    - [{chunk}]  # {hh:02d}:{mm:02d}")
    lines.append("  day_of_week:")
    lines += [f"    {k}: {v:.4f}" for k, v in zip(WEEKDAY_KEYS, profile.day_of_week, strict=True)]
    lines += [
        "overdispersion:",
        f"  # measured on {profile.days} days: index of dispersion "
        f"{profile.index_of_dispersion:.2f} per {m} min",
        f"  interval_shape: {round(profile.interval_shape)}",
        f"  day_shape: {round(profile.day_shape)}",
    ]
    return "\n".join(lines) + "\n"

