"""The streaming tallies counted a batch at a time are, bit for bit, the per-batch sums of the
list-based tallies over the whole interval grid."""

from __future__ import annotations

import numpy as np
import pytest

from sim import kpi
from sim.records import CALLBACK_WORK, NO_SITE, OUTCOMES, CallLog

QUEUES = ("sales", "support", "billing")
LANGUAGES = ("en", "ru")
COUNTRIES = ("ru", "kz", "other")
SITES = ("msk", "ekb")
INTERVAL_S = 900.0
DURATION_S = 3 * 86400.0
#: More (group, interval) cells than an int16 counts.
LONG_S = 400 * 86400.0
QUEUE_SL = ((20.0, 0.8), (30.0, 0.9))  # the third queue has none: the run's threshold


def _calls(n: int, seed: int, duration_s: float = DURATION_S) -> CallLog:
    """Calls of every outcome and group, some before the start, some never queued, some
    queued after the horizon, waits on and around the thresholds."""
    rng = np.random.default_rng(seed)
    arrival = rng.uniform(-3600.0, duration_s + 600.0, n)
    queued = arrival + rng.uniform(0.0, 60.0, n)
    outcome = rng.integers(0, len(OUTCOMES), n).astype(np.int8)
    never_queued = rng.random(n) < 0.2
    queued[never_queued] = np.nan
    wait = np.round(rng.exponential(25.0, n), 1)  # many waits exactly at 20 s or 30 s
    wait[never_queued & (outcome != CALLBACK_WORK)] = 0.0
    site = rng.integers(0, len(SITES), n).astype(np.int16)
    site[rng.random(n) < 0.4] = NO_SITE
    return CallLog(arrival_s=arrival, queued_s=queued, wait_s=wait,
                   talk_s=rng.exponential(180.0, n),
                   queue=rng.integers(0, len(QUEUES), n).astype(np.int16),
                   language=rng.integers(0, len(LANGUAGES), n).astype(np.int16),
                   country=rng.integers(0, len(COUNTRIES), n).astype(np.int16),
                   site=site, outcome=outcome, queues=QUEUES, languages=LANGUAGES,
                   countries=COUNTRIES, sites=SITES,
                   repeat=(rng.random(n) < 0.1).astype(np.int8))


def _batch(calls: CallLog, rows: np.ndarray) -> CallLog:
    """The calls at ``rows``, in that order."""
    return CallLog(**{f: getattr(calls, f)[rows] for f in
                      ("arrival_s", "queued_s", "wait_s", "talk_s", "queue", "language",
                       "country", "site", "outcome", "repeat")},
                   queues=QUEUES, languages=LANGUAGES, countries=COUNTRIES, sites=SITES)


def _listed(batches: list[CallLog], by: kpi.Dimension | None, duration_s: float
            ) -> np.ndarray:
    """Each batch's list-based tallies over the whole grid, added up batch after batch."""
    n_int = kpi.intervals_of(duration_s, INTERVAL_S)
    n_groups = 1 if by is None else len(getattr(batches[0], kpi._NAMES_ATTR[by]))
    grid = np.zeros((len(kpi.TALLY_FIELDS), n_groups, n_int))
    for calls in batches:
        cell, _names = kpi._cells(calls, by, n_int,
                                  kpi._interval_index(calls, INTERVAL_S, n_int))
        tally = kpi._tally(calls, kpi._thresholds(calls, 20.0, QUEUE_SL), 5.0, cell,
                           n_groups * n_int)
        for f, name in enumerate(kpi.TALLY_FIELDS):
            grid[f] += tally[name].reshape(n_groups, n_int)
    return grid


@pytest.mark.parametrize("duration_s", [DURATION_S, LONG_S])
def test_batches_in_any_order_tally_bit_for_bit_as_the_list_based_sums(
        duration_s: float) -> None:
    """Batches of mixed calls, each spanning part of the run and arriving out of time order,
    give every count and sum of every dimension with the very bits of the list-based tallies
    added batch by batch (cells a batch does not reach are left untouched), over a few days
    and over more (group, interval) cells than an int16 numbers."""
    calls = _calls(6000, seed=5, duration_s=duration_s)
    order = np.argsort(calls.queued_s, kind="stable")  # ended calls come roughly in time
    batches = [_batch(calls, rows) for rows in np.array_split(order, 7)]
    batches[2], batches[4] = batches[4], batches[2]
    batches.append(_batch(calls, np.flatnonzero(calls.arrival_s < 0)))  # before the start
    acc = kpi.TallyAccumulator({"queues": QUEUES, "languages": LANGUAGES,
                                "countries": COUNTRIES, "sites": SITES}, duration_s,
                               INTERVAL_S, 20.0, QUEUE_SL, 5.0)
    for batch in batches:
        acc.add(batch)
    tallies = acc.tallies()
    assert tallies.fields == kpi.TALLY_FIELDS
    for by in (None, *kpi.DIMENSIONS):
        got = tallies.values[kpi.ALL if by is None else by]
        want = _listed(batches, by, duration_s)
        assert got.shape == want.shape
        assert got.tobytes() == want.tobytes(), by
        assert want[kpi.TALLY_FIELDS.index("offered")].sum() > 0


def test_an_empty_batch_and_one_before_the_start_count_nothing() -> None:
    """A batch without calls, or with only calls before the run start, leaves every tally
    at zero."""
    calls = _calls(500, seed=8)
    acc = kpi.TallyAccumulator({"queues": QUEUES, "languages": LANGUAGES,
                                "countries": COUNTRIES, "sites": SITES}, DURATION_S,
                               INTERVAL_S, 20.0, QUEUE_SL, 5.0)
    acc.add(_batch(calls, np.zeros(0, dtype=np.int64)))
    early = np.flatnonzero(np.where(np.isnan(calls.queued_s), calls.arrival_s,
                                    calls.queued_s) < 0)
    assert early.size > 0
    acc.add(_batch(calls, early))
    assert all(not v.any() for v in acc.tallies().values.values())
