"""Duration distributions: moments, seeded sampling and strict parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from acd.errors import ConfigError
from sim.traffic.distributions import Constant, Empirical, LogNormal, parse_distribution
from sim.traffic.problems import ProblemList


def _parse(obj: object) -> object:
    problems = ProblemList("traffic.yaml")
    dist = parse_distribution(obj, problems, "queues.tech.talk")
    problems.raise_if_any()
    return dist


@pytest.mark.parametrize(
    ("spec", "mean", "cv"),
    [
        ({"dist": "exponential", "mean": 180}, 180, 1.0),
        ({"dist": "lognormal", "mean": 390, "cv": 0.9}, 390, 0.9),
        ({"dist": "lognormal", "mean": 300, "sigma": math.sqrt(math.log(1.64))}, 300, 0.8),
        ({"dist": "gamma", "mean": 240, "cv": 0.5}, 240, 0.5),
        ({"dist": "gamma", "shape": 4, "scale": 60}, 240, 0.5),
        ({"dist": "empirical", "samples": [100, 200, 300]}, 200, math.sqrt(2 / 3) / 2),
        ({"dist": "empirical", "edges": [0, 100, 200], "weights": [1, 1]}, 100, 1 / math.sqrt(3)),
    ],
)
def test_sampled_moments_match_the_parameters(spec: dict[str, object], mean: float,
                                              cv: float) -> None:
    """Each parsed distribution samples with the configured mean and coefficient of variation."""
    dist = _parse(spec)
    x = dist.sample(np.random.default_rng(7), 400_000)  # type: ignore[attr-defined]
    assert x.mean() == pytest.approx(mean, rel=0.02)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.04)
    assert dist.mean == pytest.approx(mean, rel=1e-9)  # type: ignore[attr-defined]
    assert (x >= 0).all()


def test_lognormal_cv_round_trips() -> None:
    """A lognormal built from mean and cv reports the same cv back."""
    assert LogNormal.from_cv(360, 0.8).cv == pytest.approx(0.8)


def test_same_seed_same_samples() -> None:
    """Sampling is a pure function of the Generator state."""
    dist = LogNormal.from_cv(300, 0.8)
    a = dist.sample(np.random.default_rng(3), 10)
    b = dist.sample(np.random.default_rng(3), 10)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, dist.sample(np.random.default_rng(4), 10))


def test_constant_and_histogram_bounds() -> None:
    """A constant never varies and a histogram never samples outside its edges."""
    assert set(Constant(30).sample(np.random.default_rng(0), 5).tolist()) == {30.0}
    x = Empirical((1.0, 3.0), (10.0, 20.0, 40.0)).sample(np.random.default_rng(0), 10_000)
    assert x.min() >= 10 and x.max() < 40


@pytest.mark.parametrize(
    ("spec", "path", "value"),
    [
        ({"dist": "lognormal", "mean": -360, "cv": 0.8}, "queues.tech.talk.mean", -360),
        ({"dist": "lognormal", "mean": 0, "cv": 0.8}, "queues.tech.talk.mean", 0),
        ({"dist": "exponential", "mean": "soon"}, "queues.tech.talk.mean", "soon"),
        ({"dist": "weibull", "mean": 3}, "queues.tech.talk.dist", "weibull"),
        ({"dist": "exponential", "mean": 3, "cv": 1}, "queues.tech.talk.cv", 1),
        ({"dist": "exponential"}, "queues.tech.talk.mean", None),
        ({"dist": "lognormal", "mean": 3}, "queues.tech.talk", {"dist": "lognormal", "mean": 3}),
        ({"dist": "empirical", "samples": []}, "queues.tech.talk.samples", []),
        ({"dist": "constant", "value": -1}, "queues.tech.talk.value", -1),
        (360, "queues.tech.talk", 360),
    ],
)
def test_bad_distribution_names_file_path_and_value(spec: object, path: str,
                                                    value: object) -> None:
    """Invalid distributions raise ConfigError naming the file, the YAML path and the value."""
    with pytest.raises(ConfigError) as info:
        _parse(spec)
    problem = info.value.problems[0]
    assert (problem.file, problem.path, problem.value) == ("traffic.yaml", path, value)
    assert "traffic.yaml" in str(info.value)
