"""KPIs computed by hand on tiny hand-built runs: every SL variant, NaN on empty, intervals,
groups, consistency, and confidence intervals over replications."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import kpi
from sim.records import (
    ABANDONED,
    ANSWERED,
    CALLBACK,
    IVR_ABANDONED,
    IVR_HANGUP,
    NO_SITE,
    OUTCOMES,
    OVERFLOWED,
    VOICEMAIL,
    AgentTime,
    CallLog,
    RunResult,
)

QUEUES = ("tech", "repair", "orders", "voc")
LANGUAGES = ("ru", "uk")
COUNTRIES = ("RU", "UA", "other")
SITES = ("moscow", "kyiv")


@dataclass(frozen=True)
class Call:
    """One hand-written call: wait and outcome, when it queued, and who it was."""

    wait: float
    outcome: int
    queued: float = 0.0
    queue: str = "tech"
    language: str = "ru"
    country: str = "RU"
    site: str | None = None
    arrival: float | None = None


def make_result(
    calls: list[Call],
    *,
    agent_seconds: np.ndarray | None = None,
    duration_s: float = 900.0,
    interval_s: float = 900.0,
    queue_sl: tuple[tuple[float, float], ...] = ((20.0, 0.85),) * 4,
    short_abandon_s: float = 5.0,
    seed: int = 1,
) -> RunResult:
    """Build a RunResult from hand-written calls (IVR outcomes get queued_s = NaN)."""
    ivr = {IVR_ABANDONED, IVR_HANGUP}
    queued = [math.nan if c.outcome in ivr else c.queued for c in calls]
    log = CallLog(
        arrival_s=np.array([c.arrival if c.arrival is not None else c.queued for c in calls],
                           dtype=float),
        queued_s=np.array(queued, dtype=float),
        wait_s=np.array([c.wait for c in calls], dtype=float),
        talk_s=np.array([100.0 if c.outcome == ANSWERED else 0.0 for c in calls]),
        queue=np.array([QUEUES.index(c.queue) for c in calls], dtype=np.int16),
        language=np.array([LANGUAGES.index(c.language) for c in calls], dtype=np.int16),
        country=np.array([COUNTRIES.index(c.country) for c in calls], dtype=np.int16),
        site=np.array([NO_SITE if c.site is None else SITES.index(c.site) for c in calls],
                      dtype=np.int16),
        outcome=np.array([c.outcome for c in calls], dtype=np.int8),
        queues=QUEUES, languages=LANGUAGES, countries=COUNTRIES, sites=SITES,
    )
    if agent_seconds is None:
        agent_seconds = np.zeros((math.ceil(duration_s / interval_s), len(SITES), 3))
    return RunResult(
        seed=seed, calls=log, agent_time=AgentTime(agent_seconds, SITES, interval_s),
        start_iso="2024-03-04T00:00:00+03:00", duration_s=duration_s, interval_s=interval_s,
        threshold_s=20.0, target=0.85, queue_sl=queue_sl, short_abandon_s=short_abandon_s,
        wall_s=0.1,
    )


def ten_calls() -> list[Call]:
    """Five answered (three within 20 s), three abandoned (two within, one short), one
    overflowed, one callback, plus two IVR outcomes that are not offered."""
    return [
        Call(5, ANSWERED, site="moscow"),
        Call(10, ANSWERED, site="moscow"),
        Call(20, ANSWERED, site="moscow"),  # exactly T counts as within
        Call(25, ANSWERED, site="kyiv"),
        Call(40, ANSWERED, site="kyiv"),
        Call(3, ABANDONED, language="uk", country="UA"),  # short abandon (< 5 s)
        Call(15, ABANDONED, language="uk", country="UA"),
        Call(30, ABANDONED, language="uk", country="UA"),
        Call(60, OVERFLOWED, language="uk", country="UA"),
        Call(45, CALLBACK, language="uk", country="UA"),
        Call(0, IVR_ABANDONED),
        Call(0, IVR_HANGUP),
    ]


def agent_seconds_one_interval() -> np.ndarray:
    """Moscow busy 600 / ready 300 / paused 100; Kyiv busy 300 / ready 700."""
    secs = np.zeros((1, 2, 3))
    secs[0, 0] = (300.0, 600.0, 100.0)
    secs[0, 1] = (700.0, 300.0, 0.0)
    return secs


def test_every_kpi_variant_matches_hand_computation() -> None:
    """Each SL variant, ASA, mean wait, rates, occupancy and counts equal the hand-computed
    values for ten offered calls and two IVR outcomes."""
    result = make_result(ten_calls(), agent_seconds=agent_seconds_one_interval())
    got = kpi.kpis(result).overall
    # O = 10, A = 5, A_T = 3, Ab = 3, Ab_T = 2, short = 1.
    assert got["sl_offered"] == pytest.approx(3 / 10)
    assert got["sl_answered"] == pytest.approx(3 / 5)
    assert got["sl_abandon_good"] == pytest.approx(5 / 8)
    assert got["sl_excl_short"] == pytest.approx(3 / 9)
    assert got["asa_s"] == pytest.approx((5 + 10 + 20 + 25 + 40) / 5)
    assert got["mean_wait_s"] == pytest.approx((100 + 3 + 15 + 30 + 60 + 45) / 10)
    assert got["abandon_rate"] == pytest.approx(3 / 10)
    assert got["answer_rate"] == pytest.approx(5 / 10)
    assert got["occupancy"] == pytest.approx(900 / 1900)
    expected_counts = {"arrivals": 12, "offered": 10, "answered": 5, "answered_within": 3,
                       "abandoned": 3, "abandoned_within": 2, "short_abandoned": 1,
                       "overflowed": 1, "callback": 1, "voicemail": 0, "ivr_abandoned": 1,
                       "ivr_hangup": 1}
    assert {k: got[k] for k in kpi.COUNTS} == expected_counts


def test_empty_run_gives_nan_not_zero_division() -> None:
    """A run without calls or agent time yields NaN ratios and zero counts."""
    got = kpi.kpis(make_result([])).overall
    for name in (*kpi.RATIOS, "sl_consistency"):
        assert math.isnan(got[name]), name
    assert got["offered"] == 0


def test_ratio_is_undefined_only_without_a_denominator() -> None:
    """A share is NaN where nothing was offered and defined for any other denominator, however
    small (a third of a call per replication, a sliver of agent time)."""
    got = kpi.ratio(np.array([0.0, 1 / 3, 1e-12, 2.0]), np.array([0.0, 1 / 3, 2e-12, 4.0]))
    assert math.isnan(got[0])
    assert got[1:].tolist() == pytest.approx([1.0, 0.5, 0.5])


def test_only_ivr_outcomes_are_not_offered() -> None:
    """Calls that end in the IVR are counted apart and leave every queue ratio undefined."""
    got = kpi.kpis(make_result([Call(0, IVR_ABANDONED), Call(0, IVR_HANGUP)])).overall
    assert got["offered"] == 0 and got["arrivals"] == 2
    assert math.isnan(got["sl_offered"]) and math.isnan(got["answer_rate"])


def test_voicemail_and_callbacks_in_the_ivr_are_counted_but_not_offered() -> None:
    """After-hours voicemail and callbacks that never reached a queue still show in totals."""
    calls = [Call(0, VOICEMAIL), Call(0, CALLBACK), Call(0, ANSWERED)]
    result = make_result(calls)
    result.calls.queued_s[:2] = math.nan  # the IVR ended them: they never entered a queue
    got = kpi.kpis(result).overall
    assert got["voicemail"] == 1 and got["callback"] == 1
    assert got["offered"] == 1 and got["answer_rate"] == 1.0


def test_per_queue_threshold_decides_within() -> None:
    """A 50 s answer is within SL for a queue with a 60 s threshold but not for a 20 s queue."""
    result = make_result(
        [Call(50, ANSWERED, queue="tech"), Call(50, ANSWERED, queue="repair")],
        queue_sl=((20.0, 0.85), (60.0, 0.80), (20.0, 0.85), (20.0, 0.85)),
    )
    table = kpi.kpis(result, by="queue")
    assert table.groups["tech"]["sl_offered"] == 0.0
    assert table.groups["repair"]["sl_offered"] == 1.0
    assert table.overall["sl_offered"] == 0.5
    assert table.targets == {"tech": 0.85, "repair": 0.80, "orders": 0.85, "voc": 0.85}


def test_groups_split_calls_and_keep_empty_groups_as_nan() -> None:
    """By language the ru and uk calls are tallied apart; a queue without calls is all NaN."""
    result = make_result(ten_calls())
    by_lang = kpi.kpis(result, by="language").groups
    assert by_lang["ru"]["arrivals"] == 7 and by_lang["ru"]["offered"] == 5
    assert by_lang["ru"]["sl_offered"] == pytest.approx(3 / 5)
    assert by_lang["uk"]["offered"] == 5 and by_lang["uk"]["sl_offered"] == 0.0
    assert by_lang["uk"]["abandon_rate"] == pytest.approx(3 / 5)
    assert by_lang["uk"]["sl_excl_short"] == 0.0
    by_country = kpi.kpis(result, by="country").groups
    assert by_country["UA"]["offered"] == 5 and by_country["other"]["offered"] == 0
    by_queue = kpi.kpis(result, by="queue").groups
    assert by_queue["orders"]["offered"] == 0 and math.isnan(by_queue["orders"]["sl_offered"])


def test_by_site_shows_answered_call_metrics_and_occupancy_only() -> None:
    """By answering site: sl_answered, ASA and occupancy per site; offered-based KPIs are NaN."""
    result = make_result(ten_calls(), agent_seconds=agent_seconds_one_interval())
    sites = kpi.kpis(result, by="site").groups
    assert sites["moscow"]["answered"] == 3 and sites["kyiv"]["answered"] == 2
    assert sites["moscow"]["sl_answered"] == 1.0 and sites["kyiv"]["sl_answered"] == 0.0
    assert sites["moscow"]["asa_s"] == pytest.approx(35 / 3)
    assert sites["kyiv"]["asa_s"] == pytest.approx(32.5)
    assert sites["moscow"]["occupancy"] == pytest.approx(600 / 900)
    assert sites["kyiv"]["occupancy"] == pytest.approx(300 / 1000)
    assert math.isnan(sites["moscow"]["sl_offered"]) and math.isnan(sites["kyiv"]["offered"])


def test_occupancy_is_undefined_by_queue() -> None:
    """Agent time is not split by queue, so occupancy by queue is NaN rather than a guess."""
    result = make_result(ten_calls(), agent_seconds=agent_seconds_one_interval())
    assert math.isnan(kpi.kpis(result, by="queue").groups["tech"]["occupancy"])


def test_interval_is_that_of_queue_entry_at_boundaries() -> None:
    """A call queued exactly at 900 s belongs to the second interval, whatever its arrival."""
    calls = [
        Call(1, ANSWERED, queued=0.0),
        Call(1, ANSWERED, queued=899.999),
        Call(1, ANSWERED, queued=900.0, arrival=880.0),
        Call(30, ABANDONED, queued=1799.0),
        Call(1, ANSWERED, queued=1800.0),
        Call(0, IVR_HANGUP, arrival=900.0),
    ]
    table = kpi.kpis_per_interval(make_result(calls, duration_s=2700.0))
    assert table.groups == ("all",)
    np.testing.assert_array_equal(table.start_s, [0.0, 900.0, 1800.0])
    np.testing.assert_array_equal(table.values["offered"][0], [2, 2, 1])
    np.testing.assert_array_equal(table.values["ivr_hangup"][0], [0, 1, 0])
    np.testing.assert_allclose(table.values["sl_offered"][0], [1.0, 0.5, 1.0])


def test_calls_queued_after_the_end_count_in_the_last_interval() -> None:
    """A call queued after duration_s counts in the last interval: not dropped, and no interval
    past the horizon (whose agent time is not counted either)."""
    secs = np.ones((3, len(SITES), 3))
    secs[1:, :, 0] = 0.0  # after the horizon (the drain) agents are only busy
    table = kpi.kpis_per_interval(make_result(
        [Call(1, ANSWERED, queued=100.0), Call(1, ANSWERED, queued=2000.0)],
        agent_seconds=secs))
    np.testing.assert_array_equal(table.start_s, [0.0])
    np.testing.assert_array_equal(table.values["offered"][0], [2])
    assert kpi.kpis(make_result([], agent_seconds=secs)).overall["occupancy"] == 0.5


def test_per_interval_by_group_and_site_occupancy() -> None:
    """Per-interval tables have one row per group; by site they carry each site's occupancy."""
    secs = np.zeros((2, 2, 3))
    secs[:, 0, 0], secs[:, 0, 1] = (100.0, 300.0), (300.0, 100.0)  # moscow ready, busy
    secs[:, 1, 0], secs[:, 1, 1] = (400.0, 0.0), (0.0, 400.0)  # kyiv ready, busy
    result = make_result(ten_calls(), agent_seconds=secs, duration_s=1800.0)
    by_lang = kpi.kpis_per_interval(result, by="language")
    assert by_lang.groups == LANGUAGES
    np.testing.assert_array_equal(by_lang.values["offered"], [[5, 0], [5, 0]])
    by_site = kpi.kpis_per_interval(result, by="site")
    np.testing.assert_allclose(by_site.values["occupancy"], [[0.75, 0.25], [0.0, 1.0]])
    overall = kpi.kpis_per_interval(result)
    np.testing.assert_allclose(overall.values["occupancy"], [[300 / 800, 500 / 800]])


def volume(queued: float, answered_within: int, late: int) -> list[Call]:
    """Calls queued at one time: some answered within T, some answered late."""
    return ([Call(1, ANSWERED, queued=queued)] * answered_within
            + [Call(60, ANSWERED, queued=queued)] * late)


def test_sl_consistency_counts_only_intervals_with_enough_volume() -> None:
    """Of three intervals, one has too few calls; of the other two, one meets 85%: 1/2."""
    calls = volume(0.0, 9, 1) + volume(900.0, 8, 2) + volume(1800.0, 0, 3)
    result = make_result(calls, duration_s=2700.0)
    assert kpi.kpis(result, min_volume=10).overall["sl_consistency"] == 0.5
    assert kpi.kpis(result, min_volume=3).overall["sl_consistency"] == pytest.approx(1 / 3)
    assert math.isnan(kpi.kpis(result, min_volume=11).overall["sl_consistency"])


def test_sl_consistency_accepts_exactly_the_target() -> None:
    """17 of 20 within T is exactly 85% and meets the target despite float rounding."""
    result = make_result(volume(0.0, 17, 3))
    assert kpi.kpis(result).overall["sl_consistency"] == 1.0


def test_unknown_dimension_is_refused_with_the_valid_names() -> None:
    """Grouping by an unknown name raises an error that lists the valid dimensions."""
    with pytest.raises(ValueError, match="queue, language, country, site"):
        kpi.kpis(make_result([]), by="agent")  # type: ignore[arg-type]


def test_estimate_half_width_for_known_replicates() -> None:
    """Five replicates 0.80..0.88: mean 0.84, sd sqrt(0.001), half-width t(4) sd / sqrt 5."""
    est = kpi.estimate([0.80, 0.82, 0.84, 0.86, 0.88])
    assert est.mean == pytest.approx(0.84)
    assert est.sd == pytest.approx(math.sqrt(0.001))
    assert est.half_width == pytest.approx(2.7764 * math.sqrt(0.001) / math.sqrt(5), rel=1e-4)
    assert est.n == 5


def test_estimate_skips_nan_and_needs_two_values_for_a_spread() -> None:
    """NaN replicates are left out; a single value has a mean but no sd or half-width."""
    est = kpi.estimate([0.5, math.nan])
    assert est.mean == 0.5 and est.n == 1
    assert math.isnan(est.sd) and math.isnan(est.half_width)
    assert math.isnan(kpi.estimate([]).mean)


def test_replication_moments_work_cell_by_cell_over_the_first_axis() -> None:
    """Over a (replications, groups, periods) stack each cell gets the estimate of its own
    replicates, NaN ones left out: the values :func:`kpi.estimate` gives for that cell."""
    rng = np.random.default_rng(11)
    stack = rng.uniform(0.5, 1.0, size=(4, 2, 3))
    stack[0, 0, 1] = stack[2, 0, 1] = math.nan  # two replicates of this cell are undefined
    stack[:3, 1, 2] = math.nan  # one replicate: a mean, no spread
    stack[:, 1, 0] = math.nan  # none: nothing at all
    mean, sd, half, n = kpi.replication_moments(stack)
    assert mean.shape == sd.shape == half.shape == n.shape == (2, 3)
    for g in range(2):
        for p in range(3):
            want = kpi.estimate(stack[:, g, p].tolist())
            assert int(n[g, p]) == want.n == int(np.isfinite(stack[:, g, p]).sum())
            for got, expected in ((mean, want.mean), (sd, want.sd), (half, want.half_width)):
                assert float(got[g, p]) == pytest.approx(expected, nan_ok=True)
    assert float(mean[0, 1]) == pytest.approx(np.nanmean(stack[:, 0, 1]))
    assert float(sd[0, 1]) == pytest.approx(np.nanstd(stack[:, 0, 1], ddof=1))
    assert math.isnan(half[1, 2]) and not math.isnan(mean[1, 2])
    assert math.isnan(mean[1, 0]) and int(n[1, 0]) == 0


def test_ci_bounds_clip_shares_to_0_and_1_and_times_at_0() -> None:
    """A share's CI never leaves [0, 1], a time's never goes below 0 but may exceed 1, an
    interval inside the range is mean +- half-width, and one replication has no CI."""
    assert kpi.ci_bounds("answer_rate", kpi.Estimate(0.97, 0.02, 0.05, 3)) == (
        pytest.approx(0.92), 1.0)
    assert kpi.ci_bounds("abandon_rate", kpi.Estimate(0.02, 0.02, 0.05, 3)) == (
        0.0, pytest.approx(0.07))
    assert kpi.ci_bounds("mean_wait_s", kpi.Estimate(4.0, 3.0, 6.0, 3)) == (0.0, 10.0)
    assert kpi.ci_bounds("offered", kpi.Estimate(100.0, 5.0, 8.0, 3)) == (92.0, 108.0)
    one = kpi.ci_bounds("sl_offered", kpi.Estimate(0.9, math.nan, math.nan, 1))
    assert all(math.isnan(v) for v in one)


def test_t_quantiles_from_table_or_scipy() -> None:
    """t(0.975) is 12.706 for df 1 and 2.042 for df 30; beyond 30 the table falls back to 1.96."""
    np.testing.assert_allclose(kpi.t95(np.array([1, 30])), [12.7062, 2.0423], rtol=1e-4)
    beyond = float(kpi.t95(np.array([100]))[0])
    assert beyond == (1.96 if kpi.T_SOURCE == "table" else pytest.approx(1.984, rel=1e-3))
    assert math.isnan(float(kpi.t95(np.array([0]))[0]))


def replications(within: list[int], answered: int = 50) -> list[RunResult]:
    """One run per entry: 50 calls answered, ``within`` of them within T."""
    return [make_result(volume(0.0, w, answered - w), seed=i) for i, w in enumerate(within)]


def test_summarise_gives_ci_over_replications_and_the_verdict() -> None:
    """sl_offered of 0.80..0.88 over five runs: mean 0.84 < 0.85 fails; CAR 1.0 meets 0.96."""
    summary = kpi.summarise(replications([40, 41, 42, 43, 44]))
    sl = summary.overall["sl_offered"]
    assert sl.mean == pytest.approx(0.84) and sl.n == 5
    assert sl.half_width == pytest.approx(2.7764 * math.sqrt(0.001) / math.sqrt(5), rel=1e-4)
    verdicts = {v.kpi: v for v in summary.verdicts}
    assert not verdicts["sl_offered"].met and verdicts["answer_rate"].met
    assert not summary.meets_target
    assert summary.seeds == (0, 1, 2, 3, 4) and summary.t_source == kpi.T_SOURCE


def test_summarise_answer_rate_target_is_a_parameter() -> None:
    """The same runs meet SL 85% but fail a CAR target above what was achieved."""
    runs = [make_result(volume(0.0, 45, 0) + [Call(30, ABANDONED)] * 5, seed=s) for s in (1, 2)]
    assert kpi.summarise(runs).meets_target is False  # CAR 0.9 < 0.96
    assert kpi.summarise(runs, answer_rate_target=0.9).meets_target is True


def test_summarise_groups_and_intervals() -> None:
    """Per-group estimates cover every name; per-interval means average the replications."""
    runs = [make_result(volume(0.0, 10, 0) + volume(900.0, w, 10 - w), duration_s=1800.0,
                        seed=w) for w in (4, 6)]
    summary = kpi.summarise(runs, by="queue")
    assert set(summary.groups) == {"queue"}
    assert set(summary.groups["queue"]) == set(QUEUES)
    assert summary.groups["queue"]["tech"]["sl_offered"].mean == pytest.approx(0.75)
    assert math.isnan(summary.groups["queue"]["voc"]["sl_offered"].mean)
    sl = summary.intervals["all"].mean["sl_offered"][0]
    np.testing.assert_allclose(sl, [1.0, 0.5])
    half = summary.intervals["all"].half_width["sl_offered"][0]
    assert half[0] == 0.0 and half[1] == pytest.approx(12.7062 * math.sqrt(0.02) / math.sqrt(2),
                                                       rel=1e-4)
    assert set(kpi.summarise(runs).intervals) == {"all", *kpi.DIMENSIONS}


def test_summarise_refuses_no_replications() -> None:
    """An empty list of runs is an error, not a summary of NaN."""
    with pytest.raises(ValueError, match="at least one replication"):
        kpi.summarise([])


def test_outcome_names_are_the_ones_kpis_assume() -> None:
    """The outcome codes this module relies on still mean what records.py says."""
    assert OUTCOMES[ANSWERED] == "answered" and OUTCOMES[ABANDONED] == "abandoned"
    assert OUTCOMES[OVERFLOWED] == "overflowed" and OUTCOMES[CALLBACK] == "callback"


def test_calls_before_the_run_start_are_left_out() -> None:
    """A call queued at -1 s (warm-up) is in no interval and in no total."""
    result = make_result([Call(1, ANSWERED, queued=-1.0), Call(1, ANSWERED, queued=10.0)],
                         duration_s=1800.0)
    np.testing.assert_array_equal(kpi.kpis_per_interval(result).values["offered"][0], [1, 0])
    assert kpi.kpis(result).overall["offered"] == 1


def test_summarise_refuses_replications_with_different_group_names() -> None:
    """Replications of different centers (other queue names) cannot be averaged."""
    other = make_result([])
    renamed = replace(other, calls=replace(other.calls, queues=("a", "b", "c", "d")))
    with pytest.raises(ValueError, match="replications disagree on queue names"):
        kpi.summarise([other, renamed], by="queue")


calls_strategy = st.lists(
    st.builds(
        Call,
        wait=st.floats(0, 120),
        outcome=st.sampled_from(range(len(OUTCOMES))),
        queued=st.floats(0, 2699),
        queue=st.sampled_from(QUEUES),
        language=st.sampled_from(LANGUAGES),
        country=st.sampled_from(COUNTRIES),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(calls_strategy)
def test_groups_and_intervals_add_up_and_variants_are_ordered(calls: list[Call]) -> None:
    """Counts per group and per interval sum to the totals; sl_offered <= sl_excl_short and
    sl_offered <= sl_answered whenever both are defined."""
    result = make_result(calls, duration_s=2700.0)
    total = kpi.kpis(result).overall
    for dim in ("queue", "language", "country"):
        groups = kpi.kpis(result, by=dim).groups
        for name in kpi.COUNTS:
            assert sum(row[name] for row in groups.values()) == total[name]
    per_interval = kpi.kpis_per_interval(result, by="queue")
    for name in kpi.COUNTS:
        assert per_interval.values[name].sum() == total[name]
    if total["answered"]:
        assert total["sl_offered"] <= total["sl_answered"]
    if total["offered"] > total["short_abandoned"]:
        assert total["sl_offered"] <= total["sl_excl_short"]
