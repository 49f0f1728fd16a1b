"""Seeded long-run results without simulating them: per-interval tallies of a center open
08:00-20:00 local time (quieter at weekends), as a run of many days keeps them, for testing and
timing the report of a month or a year in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from sim.kpi import ALL, TALLY_FIELDS
from sim.records import AgentTime, RunResult, Tallies, WaitLog

QUEUES = ("tech", "billing", "sales", "repair", "vip")
LANGUAGES = ("ru", "uk", "en", "kk", "hy", "uz", "az", "ka", "be", "ro", "tg", "ky", "tk", "de",
             "tr", "zh")
COUNTRIES = ("RU", "UA", "KZ", "AM", "UZ", "other")
SITES = ("moscow", "kyiv")
START = "2026-03-05T00:00:00+03:00"  # a Thursday, midnight in Moscow
ZONE = "Europe/Moscow"


def long_run(days: float, seed: int = 1, calls_per_day: float = 5000.0, interval_s: float = 1800.0,
             start_iso: str = START, zone: str = ZONE) -> RunResult:
    """One replication's tallies over ``days``: calls per (queue, language) cell and interval
    drawn from a seeded Poisson profile that is zero at night in ``zone``; some calls answered
    within 20 s, the rest late or abandoned, busier hours worse."""
    rng = np.random.default_rng(seed)
    n_int = round(days * 86_400 / interval_s)
    start = datetime.fromisoformat(start_iso)
    local = [(start + timedelta(seconds=i * interval_s)).astimezone(ZoneInfo(zone))
             for i in range(n_int)]
    hour = np.array([t.hour + t.minute / 60 for t in local])
    weekend = np.array([t.weekday() >= 5 for t in local])
    shape = np.where((hour >= 8) & (hour < 20), np.sin(np.pi * (hour - 8) / 12) + 0.3, 0.0)
    shape *= np.where(weekend, 0.4, 1.0)
    per_interval = calls_per_day * shape / shape[:int(86_400 / interval_s)].sum()
    q_weight = np.array([0.4, 0.25, 0.2, 0.1, 0.05])
    l_weight = 1.0 / np.arange(1, len(LANGUAGES) + 1) ** 1.5
    l_weight /= l_weight.sum()
    lam = per_interval[None, None, :] * q_weight[:, None, None] * l_weight[None, :, None]
    offered = rng.poisson(lam).astype(float)  # (queue, language, interval)
    load = per_interval / max(per_interval.max(), 1e-9)
    p_within = np.clip(0.995 - 0.2 * load[None, None, :] ** 2
                       - 0.15 * (np.arange(len(LANGUAGES)) >= 10)[None, :, None], 0.05, 1.0)
    within = rng.binomial(offered.astype(np.int64), p_within).astype(float)
    late = offered - within
    abandoned = rng.binomial(late.astype(np.int64), 0.4).astype(float)
    abandoned_within = rng.binomial(abandoned.astype(np.int64), 0.2).astype(float)
    answered = offered - abandoned
    answered_within = within - abandoned_within
    cell = {name: np.zeros_like(offered) for name in TALLY_FIELDS}
    cell.update(arrivals=offered, offered=offered, answered=answered,
                answered_within=answered_within, abandoned=abandoned,
                abandoned_within=abandoned_within,
                _wait_answered=answered_within * 8.0 + (answered - answered_within) * 45.0,
                _wait_offered=answered_within * 8.0 + (offered - answered_within) * 45.0,
                _talk_answered=answered * 180.0)
    country_of = np.minimum(np.arange(len(LANGUAGES)), len(COUNTRIES) - 1)
    site_share = rng.uniform(0.4, 0.7, size=n_int)

    def stack(by: str) -> np.ndarray:
        out = []
        for name in TALLY_FIELDS:
            v = cell[name]
            if by == ALL:
                out.append(v.sum(axis=(0, 1))[None, :])
            elif by == "queue":
                out.append(v.sum(axis=1))
            elif by == "language":
                out.append(v.sum(axis=0))
            elif by == "country":
                per_lang = v.sum(axis=0)
                out.append(np.stack([per_lang[country_of == c].sum(axis=0)
                                     for c in range(len(COUNTRIES))]))
            else:  # answering site: answered calls split between the two sites
                total = v.sum(axis=(0, 1))
                out.append(np.stack([total * site_share, total * (1 - site_share)]))
        return np.stack(out)

    groups = {ALL: (ALL,), "queue": QUEUES, "language": LANGUAGES, "country": COUNTRIES,
              "site": SITES}
    tallies = Tallies(TALLY_FIELDS, groups, {d: stack(d) for d in groups})
    total = cell["offered"].sum(axis=(0, 1)).astype(np.int64)
    queued = (np.repeat(np.arange(n_int), total) + rng.random(int(total.sum()))) * interval_s
    n = queued.size
    waits = WaitLog(queued, rng.exponential(20.0, n), rng.integers(0, 5, n).astype(np.int16),
                    rng.integers(0, len(LANGUAGES), n).astype(np.int16), QUEUES, LANGUAGES)
    secs = np.zeros((n_int, len(SITES), 3))
    secs[:, :, 1] = 1800.0 * 20 * load[:, None]
    secs[:, :, 0] = 1800.0 * 20 - secs[:, :, 1]
    return RunResult(seed, None, AgentTime(secs, SITES, interval_s), start_iso,
                     n_int * interval_s, interval_s, 20.0, 0.85, ((20.0, 0.85),) * len(QUEUES),
                     5.0, 0.0, tallies=tallies, waits=waits, n_calls=n)

