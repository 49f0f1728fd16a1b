"""Duration distributions for talk, wrap-up and patience times, parsed strictly from YAML.

YAML forms (times in seconds)::

    {dist: exponential, mean: 180}
    {dist: lognormal, mean: 360, cv: 0.8}        # or sigma: 0.7 (sd of log)
    {dist: gamma, mean: 300, cv: 0.5}            # or shape: 4, scale: 75
    {dist: constant, value: 30}
    {dist: empirical, samples: [120, 180, 240]}  # resampled with replacement
    {dist: empirical, edges: [0, 60, 180], weights: [3, 1]}  # histogram, uniform in a bin
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sim.traffic.problems import ProblemList

FloatArray = np.ndarray


class Distribution(Protocol):
    """A non-negative duration distribution that samples many values at once."""

    @property
    def mean(self) -> float:
        """Expected value in seconds."""
        ...

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """Draw ``n`` values as a float array."""
        ...


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential with the given mean (memoryless: the classic Erlang C/A assumption)."""

    mean: float

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """Draw ``n`` values."""
        return rng.exponential(self.mean, n)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal given its mean and the standard deviation ``sigma`` of the log."""

    mean: float
    sigma: float

    @classmethod
    def from_cv(cls, mean: float, cv: float) -> LogNormal:
        """The lognormal with this mean and coefficient of variation (sd / mean)."""
        return cls(mean, math.sqrt(math.log1p(cv * cv)))

    @property
    def cv(self) -> float:
        """Coefficient of variation, sd / mean."""
        return math.sqrt(math.expm1(self.sigma * self.sigma))

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """Draw ``n`` values."""
        mu = math.log(self.mean) - self.sigma * self.sigma / 2
        return rng.lognormal(mu, self.sigma, n)


@dataclass(frozen=True, slots=True)
class Gamma:
    """Gamma with shape ``k`` and scale ``theta`` (mean ``k * theta``)."""

    shape: float
    scale: float

    @property
    def mean(self) -> float:
        """Expected value."""
        return self.shape * self.scale

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """Draw ``n`` values."""
        return rng.gamma(self.shape, self.scale, n)


@dataclass(frozen=True, slots=True)
class Constant:
    """Always the same value (a fixed wrap-up, for instance)."""

    value: float

    @property
    def mean(self) -> float:
        """The value itself."""
        return self.value

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """``n`` copies of the value; draws nothing, so other streams stay aligned."""
        return np.full(n, self.value, dtype=float)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Observed values resampled with replacement, or a histogram sampled uniformly in a bin.

    With ``edges`` set, ``values`` are the bin weights (len(edges) - 1 of them).
    """

    values: tuple[float, ...]
    edges: tuple[float, ...] | None = None

    @property
    def mean(self) -> float:
        """Expected value of the sample or the histogram."""
        v = np.asarray(self.values)
        if self.edges is None:
            return float(v.mean())
        e = np.asarray(self.edges)
        return float(((e[:-1] + e[1:]) / 2 * v).sum() / v.sum())

    def sample(self, rng: np.random.Generator, n: int) -> FloatArray:
        """Draw ``n`` values."""
        v = np.asarray(self.values, dtype=float)
        if self.edges is None:
            return v[rng.integers(0, len(v), n)]
        e = np.asarray(self.edges, dtype=float)
        k = rng.choice(len(v), size=n, p=v / v.sum())
        return e[k] + rng.random(n) * (e[k + 1] - e[k])


_KEYS: dict[str, tuple[set[str], set[str]]] = {
    # dist: (required keys besides "dist", optional keys)
    "exponential": ({"mean"}, set()),
    "lognormal": ({"mean"}, {"cv", "sigma"}),
    "gamma": (set(), {"mean", "cv", "shape", "scale"}),
    "constant": ({"value"}, set()),
    "empirical": (set(), {"samples", "edges", "weights"}),
}


def _number(
    obj: Mapping[str, object], key: str, problems: ProblemList, path: str,
    *, allow_zero: bool = False,
) -> float | None:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(f"{path}.{key}", value, f"{key} must be a number")
        return None
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        need = "a finite number >= 0" if allow_zero else "a finite number > 0"
        problems.add(f"{path}.{key}", value, f"{key} must be {need}")
        return None
    return v


def _numbers(obj: object, problems: ProblemList, path: str) -> tuple[float, ...] | None:
    if not isinstance(obj, list) or not obj:
        problems.add(path, obj, "must be a non-empty list of numbers")
        return None
    bad = [x for x in obj if isinstance(x, bool) or not isinstance(x, int | float)
           or not math.isfinite(float(x)) or x < 0]
    if bad:
        problems.add(path, bad[0], "every value must be a finite number >= 0")
        return None
    return tuple(float(x) for x in obj)


def parse_distribution(obj: object, problems: ProblemList, path: str) -> Distribution | None:
    """Parse one distribution mapping; record problems (with ``path``) and return None if bad."""
    if not isinstance(obj, dict):
        problems.add(path, obj, "a distribution must be a mapping such as "
                                "{dist: lognormal, mean: 300, cv: 0.8}")
        return None
    kind = obj.get("dist")
    if kind not in _KEYS:
        problems.add(f"{path}.dist", kind, f"unknown distribution; use one of {sorted(_KEYS)}")
        return None
    required, optional = _KEYS[kind]
    n_before = len(problems.problems)
    for key in sorted(set(obj) - required - optional - {"dist"}):
        problems.add(f"{path}.{key}", obj[key], f"unknown key for dist {kind}; allowed: "
                                                f"{sorted(required | optional)}")
    for key in sorted(required - set(obj)):
        problems.add(f"{path}.{key}", None, f"dist {kind} needs {key}")
    if len(problems.problems) > n_before:
        return None
    if kind == "exponential":
        mean = _number(obj, "mean", problems, path)
        return Exponential(mean) if mean is not None else None
    if kind == "lognormal":
        return _parse_lognormal(obj, problems, path)
    if kind == "gamma":
        return _parse_gamma(obj, problems, path)
    if kind == "constant":
        value = _number(obj, "value", problems, path, allow_zero=True)
        return Constant(value) if value is not None else None
    return _parse_empirical(obj, problems, path)


def _parse_lognormal(
    obj: Mapping[str, object], problems: ProblemList, path: str
) -> LogNormal | None:
    if ("cv" in obj) == ("sigma" in obj):
        problems.add(path, obj, "lognormal needs exactly one of cv or sigma")
        return None
    mean = _number(obj, "mean", problems, path)
    spread = _number(obj, "cv" if "cv" in obj else "sigma", problems, path)
    if mean is None or spread is None:
        return None
    return LogNormal.from_cv(mean, spread) if "cv" in obj else LogNormal(mean, spread)


def _parse_gamma(obj: Mapping[str, object], problems: ProblemList, path: str) -> Gamma | None:
    keys = set(obj) - {"dist"}
    if keys == {"mean", "cv"}:
        mean = _number(obj, "mean", problems, path)
        cv = _number(obj, "cv", problems, path)
        if mean is None or cv is None:
            return None
        shape = 1 / (cv * cv)
        return Gamma(shape, mean / shape)
    if keys == {"shape", "scale"}:
        k = _number(obj, "shape", problems, path)
        theta = _number(obj, "scale", problems, path)
        return Gamma(k, theta) if k is not None and theta is not None else None
    problems.add(path, obj, "gamma needs either mean and cv, or shape and scale")
    return None


def _parse_empirical(
    obj: Mapping[str, object], problems: ProblemList, path: str
) -> Empirical | None:
    keys = set(obj) - {"dist"}
    if keys == {"samples"}:
        samples = _numbers(obj["samples"], problems, f"{path}.samples")
        if samples is not None and sum(samples) <= 0:
            problems.add(f"{path}.samples", obj["samples"], "samples must not all be zero")
            return None
        return Empirical(samples) if samples is not None else None
    if keys == {"edges", "weights"}:
        edges = _numbers(obj["edges"], problems, f"{path}.edges")
        weights = _numbers(obj["weights"], problems, f"{path}.weights")
        if edges is None or weights is None:
            return None
        if len(edges) != len(weights) + 1 or any(b <= a for a, b in itertools.pairwise(edges)):
            problems.add(f"{path}.edges", obj["edges"],
                         "edges must increase strictly and number one more than weights")
            return None
        if sum(weights) <= 0:
            problems.add(f"{path}.weights", obj["weights"], "weights must not all be zero")
            return None
        return Empirical(weights, edges)
    problems.add(path, obj, "empirical needs either samples, or edges and weights")
    return None
