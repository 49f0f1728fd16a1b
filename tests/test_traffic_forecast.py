"""Forecast traffic and the reference profile: volume, shape, mix, dispersion, strict YAML."""

from __future__ import annotations

import copy
import csv
import math
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from acd.config.yamlsafe import load_file
from acd.errors import ConfigError
from sim.traffic import (
    NATIVE_LANGUAGE,
    Overdispersion,
    TrafficSpec,
    build_reference_profile,
    caller_numbers,
    country_of_number,
    load_traffic,
)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "traffic" / "reference.yaml"
BANK_CSV = ROOT / "data" / "bank_calls_5min.csv"
QUEUES = ("tech", "repair", "orders", "voc")
LANGUAGES = ("ru", "uk", "be", "kk", "uz", "ky", "tg", "az", "hy", "ka", "ro", "lv")
COUNTRIES = tuple(NATIVE_LANGUAGE)
MONDAY = datetime(2025, 3, 3, tzinfo=timezone(timedelta(hours=3)))


def _load(path: Path = REFERENCE) -> TrafficSpec:
    return load_traffic(path, QUEUES, LANGUAGES, COUNTRIES)


@pytest.fixture(scope="module")
def spec() -> TrafficSpec:
    return _load()


def _interval_counts(spec: TrafficSpec, days: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    source = spec.forecast(MONDAY, days)
    batch = source.generate(np.random.default_rng(seed))
    edges = source.offset_s + np.arange(len(source.expected) + 1) * source.interval_s
    counts, _ = np.histogram(batch.t, bins=edges)
    return counts, source.expected.sum(axis=1)


def test_reference_volume_is_150k_per_30_days(spec: TrafficSpec) -> None:
    """A week averages 5,000 calls a day, i.e. 150,000 per 30-day month."""
    assert spec.expected_calls(MONDAY, 7) == pytest.approx(35_000, rel=1e-9)
    assert spec.expected_calls(MONDAY, 7, scale=2.0) == pytest.approx(70_000, rel=1e-9)


def test_month_count_within_poisson_bounds(spec: TrafficSpec) -> None:
    """Without over-dispersion a month's count is within 4 sd of its Poisson expectation."""
    poisson = spec.with_overdispersion(Overdispersion())
    expected = poisson.expected_calls(MONDAY, 30)
    for seed in range(3):
        n = len(poisson.forecast(MONDAY, 30).generate(np.random.default_rng(seed)))
        assert abs(n - expected) < 4 * math.sqrt(expected)


def test_same_seed_same_arrivals_and_different_seeds_differ(spec: TrafficSpec) -> None:
    """Arrivals are a pure function of the seed."""
    a = list(spec.arrivals(MONDAY, 2, np.random.default_rng(11)))
    b = list(spec.arrivals(MONDAY, 2, np.random.default_rng(11)))
    c = list(spec.arrivals(MONDAY, 2, np.random.default_rng(12)))
    assert a == b
    assert a != c


def test_arrivals_are_sorted_inside_the_window(spec: TrafficSpec) -> None:
    """Arrivals come in time order and inside [start, start + days), even off the grid."""
    start = MONDAY + timedelta(minutes=7, seconds=13)
    t = [a.t for a in spec.arrivals(start, 1.5, np.random.default_rng(1))]
    assert t == sorted(t)
    assert t[0] >= 0 and t[-1] < 1.5 * 86400


def test_month_generates_fast(spec: TrafficSpec) -> None:
    """A month of reference traffic (~150k calls) is drawn in well under a second."""
    spec.forecast(MONDAY, 1).generate(np.random.default_rng(0))  # warm caches
    began = time.perf_counter()
    batch = spec.forecast(MONDAY, 30).generate(np.random.default_rng(0))
    elapsed = time.perf_counter() - began
    assert 140_000 < len(batch) < 165_000
    assert elapsed < 1.0


def test_mix_and_handling_follow_the_reference(spec: TrafficSpec) -> None:
    """Queue, country and language shares and mean talk times match the YAML."""
    arrivals = list(spec.arrivals(MONDAY, 14, np.random.default_rng(5)))
    n = len(arrivals)
    share = {q: sum(a.queue == q for a in arrivals) / n for q in QUEUES}
    assert share["tech"] == pytest.approx(0.42, abs=0.01)
    assert share["voc"] == pytest.approx(0.003, abs=0.0015)
    ua = [a for a in arrivals if a.country == "UA"]
    assert len(ua) / n == pytest.approx(0.22, abs=0.01)
    assert sum(a.language == "uk" for a in ua) / len(ua) == pytest.approx(0.85, abs=0.02)
    assert {a.language for a in arrivals if a.country == "RU"} == {"ru"}
    tech_talk = np.array([a.talk_s for a in arrivals if a.queue == "tech"])
    assert tech_talk.mean() == pytest.approx(390, rel=0.03)
    assert {a.wrap_s for a in arrivals if a.queue == "voc"} == {120.0}
    patience = np.array([a.patience_s for a in arrivals])
    assert patience.mean() == pytest.approx(180, rel=0.03)


def test_generated_callers_map_back_to_their_country(spec: TrafficSpec) -> None:
    """Every generated caller number is valid E.164 and phonenumbers maps it to its country."""
    arrivals = list(spec.arrivals(MONDAY, 0.5, np.random.default_rng(2)))
    assert all(country_of_number(a.caller_number or "") == a.country for a in arrivals)


@pytest.mark.parametrize("country", COUNTRIES)
def test_caller_numbers_round_trip_for_every_country(country: str) -> None:
    """Numbers drawn for a country are valid and map back to that country."""
    numbers = caller_numbers(country, np.random.default_rng(9), 300)
    assert all(n is not None and n.startswith("+") for n in numbers)
    assert {country_of_number(n or "") for n in numbers} == {country}
    assert len(set(numbers)) > 250  # random, not a handful of fixed numbers


def test_shipped_yaml_matches_the_derived_profile() -> None:
    """config/traffic/reference.yaml carries exactly what build_reference_profile derives."""
    derived = build_reference_profile(BANK_CSV, 30)
    doc = load_file(REFERENCE)
    shipped = np.array([x for row in doc["profile"]["intraday"] for x in row])
    assert doc["interval_minutes"] == derived.interval_minutes
    assert np.allclose(shipped, derived.intraday, atol=1e-6)
    dow = [doc["profile"]["day_of_week"][k] for k in ("mon", "tue", "wed", "thu", "fri", "sat",
                                                       "sun")]
    assert np.allclose(dow, derived.day_of_week, atol=1e-4)
    assert doc["overdispersion"]["interval_shape"] == round(derived.interval_shape)
    assert doc["overdispersion"]["day_shape"] == round(derived.day_shape)


def test_derived_shape_peaks_when_the_real_data_peaks(spec: TrafficSpec) -> None:
    """The profile's busiest half hour is the data's busiest, counted here from the raw CSV."""
    totals: dict[int, int] = {}
    with open(BANK_CSV, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            stamp = datetime.fromisoformat(row["DateTime"].rstrip("Z"))
            if stamp.hour < 21:
                slot = (stamp.hour * 60 + stamp.minute) // 30
                totals[slot] = totals.get(slot, 0) + int(row["Calls"])
    assert int(np.argmax(spec.intraday)) == max(totals, key=totals.__getitem__)


def test_profile_is_a_realistic_24_7_day(spec: TrafficSpec) -> None:
    """Peak late morning, afternoon still busy, night a few percent of peak, weekends lower."""
    shape = spec.intraday
    peak = shape.max()
    assert 18 <= int(np.argmax(shape)) <= 23  # 09:00-12:00
    assert shape[28:32].min() > 0.75 * peak  # 14:00-16:00
    assert 0 < shape[2:10].max() < 0.05 * peak  # 01:00-05:00
    assert spec.day_of_week[5] < spec.day_of_week[:5].min()
    assert spec.day_of_week[6] < spec.day_of_week[5]


def test_measured_overdispersion_is_real() -> None:
    """The bank data is over-dispersed: index of dispersion well above 1 at 30 minutes."""
    derived = build_reference_profile(BANK_CSV, 30)
    assert derived.index_of_dispersion > 2
    assert 100 < derived.interval_shape < 5_000


def _dispersion_index(counts: np.ndarray, expected: np.ndarray) -> float:
    busy = expected > 20
    return float((((counts - expected) ** 2) / expected)[busy].mean())


def test_overdispersion_present_only_when_enabled(spec: TrafficSpec) -> None:
    """Interval counts are Poisson (index ~1) when off and clearly over-dispersed when on."""
    off = spec.with_overdispersion(Overdispersion())
    on = spec.with_overdispersion(Overdispersion(interval_shape=50))
    counts, expected = _interval_counts(off, 30, 3)
    assert 0.85 < _dispersion_index(counts, expected) < 1.15
    counts, expected = _interval_counts(on, 30, 3)
    assert _dispersion_index(counts, expected) > 1.5
    counts, expected = _interval_counts(spec, 30, 3)  # the measured default
    assert _dispersion_index(counts, expected) > 1.15


def test_talk_by_language_overrides_the_queue(tmp_path: Path) -> None:
    """A per-language talk distribution applies only to that language in that queue."""
    doc = _doc()
    doc["queues"]["tech"]["talk_by_language"] = {"kk": {"dist": "constant", "value": 999}}
    spec = _load(_write(tmp_path, doc))
    arrivals = list(spec.arrivals(MONDAY, 3, np.random.default_rng(0)))
    assert {a.talk_s for a in arrivals if a.queue == "tech" and a.language == "kk"} == {999.0}
    assert 999.0 not in {a.talk_s for a in arrivals if a.language != "kk"}


def _doc() -> dict[str, Any]:
    return copy.deepcopy(load_file(REFERENCE))


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "traffic.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def _set(doc: dict[str, Any], dotted: str, value: object) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc[key]
    doc[last] = value


@pytest.mark.parametrize(
    ("dotted", "value", "path", "bad", "words"),
    [
        ("surprise", 1, "surprise", "surprise", "unknown key"),
        ("queues.billing", {"share": 0, "talk": {"dist": "constant", "value": 1}},
         "queues.billing", "billing", "unknown queue"),
        ("countries.FR", {"share": 0, "languages": {"ru": 1}}, "countries.FR", "FR",
         "unknown country"),
        ("countries.UA.languages", {"uk": 0.85, "pl": 0.15}, "countries.UA.languages.pl", "pl",
         "unknown language"),
        ("queues.tech.share", 0.5, "queues", 1.08, "sum to 1"),
        ("queues.tech.talk.mean", -390, "queues.tech.talk.mean", -390, "> 0"),
        ("queues.repair.patience.mean", 0, "queues.repair.patience.mean", 0, "> 0"),
        ("queues.tech.colour", "red", "queues.tech.colour", "colour", "unknown key"),
        ("timezone", "Mars/Olympus", "timezone", "Mars/Olympus", "time zone"),
        ("interval_minutes", 20, "interval_minutes", 20, "15 or 30"),
        ("profile.intraday", [1, 2, 3], "profile.intraday", "3 values", "48 weights"),
        ("profile.day_of_week.mon", -1, "profile.day_of_week.mon", -1, ">= 0"),
        ("volume.calls_per_month", "lots", "volume.calls_per_month", "lots", "> 0"),
        ("overdispersion.interval_shape", 0, "overdispersion.interval_shape", 0, "> 0"),
    ],
)
def test_bad_traffic_file_names_file_path_and_value(
    tmp_path: Path, dotted: str, value: object, path: str, bad: object, words: str
) -> None:
    """Every class of bad traffic YAML is a ConfigError naming the file, path and value."""
    doc = _doc()
    _set(doc, dotted, value)
    file = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        _load(file)
    matches = [p for p in info.value.problems if p.path == path]
    assert matches, str(info.value)
    assert matches[0].file == str(file)
    assert matches[0].value == bad
    assert words in matches[0].message


def test_all_problems_are_reported_together(tmp_path: Path) -> None:
    """Several mistakes in one file come back in one ConfigError."""
    doc = _doc()
    doc["queues"]["tech"]["talk"]["mean"] = -1
    doc["countries"]["XX"] = {"share": 0, "languages": {"ru": 1}}
    doc["timezone"] = "Nowhere/Never"
    with pytest.raises(ConfigError) as info:
        _load(_write(tmp_path, doc))
    paths = {p.path for p in info.value.problems}
    assert {"queues.tech.talk.mean", "countries.XX", "timezone"} <= paths
