"""Compare two scenarios with common random numbers: paired differences per KPI and group.

Both scenarios run the same replications from the same base seed (:mod:`sim.run` gives
replication ``i`` the same seed sequence in both), so where the traffic file is the same the
callers, their arrival times and their patience are the same; only what the scenarios change
differs. The difference B - A of each KPI is then taken replication by replication and its 95%
CI is a Student t interval on those paired differences, far narrower than the two separate CIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text
from scipy import stats

from sim.kpi import ALL, DIMENSIONS, SITE_KPIS, Dimension, KpiTable, kpis
from sim.records import RunResult

#: The KPIs compared, and whether a higher value is better.
COMPARED: dict[str, bool] = {"sl_offered": True, "answer_rate": True, "asa_s": False,
                             "abandon_rate": False}
#: Verdicts of a comparison.
B_BETTER, A_BETTER, MIXED, NO_DIFFERENCE = ("B is better", "A is better", "mixed",
                                             "no significant difference")


@dataclass(frozen=True)
class Difference:
    """B - A of one KPI over paired replications: mean, 95% CI and how many pairs were defined."""

    kpi: str
    mean: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        """True when the CI excludes zero."""
        return self.n >= 2 and (self.low > 0.0 or self.high < 0.0)

    @property
    def better(self) -> bool | None:
        """True when B is significantly better, False when worse, None when neither."""
        if not self.significant:
            return None
        return (self.mean > 0) == COMPARED[self.kpi]


@dataclass(frozen=True)
class GroupComparison:
    """The compared KPIs of the center (``dim`` "center") or one group, with its volume in A."""

    dim: str
    group: str
    volume: float
    differences: tuple[Difference, ...]

    @property
    def verdict(self) -> str:
        """B or A better (significantly better on some KPI, worse on none), mixed, or neither."""
        better = {d.better for d in self.differences} - {None}
        if better == {True}:
            return B_BETTER
        if better == {False}:
            return A_BETTER
        return MIXED if better else NO_DIFFERENCE


@dataclass(frozen=True)
class Comparison:
    """A comparison: the center first, then each group with enough calls in A."""

    replications: int
    seeds: tuple[int, ...]
    min_offered: float
    groups: tuple[GroupComparison, ...]

    @property
    def center(self) -> GroupComparison:
        """The center's comparison."""
        return self.groups[0]

    @property
    def worse_groups(self) -> tuple[GroupComparison, ...]:
        """Groups for which B is significantly worse on at least one KPI."""
        return tuple(g for g in self.groups[1:]
                     if any(d.better is False for d in g.differences))


def paired_difference(kpi: str, a: Sequence[float], b: Sequence[float]) -> Difference:
    """Mean and 95% t interval of b - a over pairs where both are defined."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return Difference(kpi, math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    if n == 1:
        return Difference(kpi, mean, math.nan, math.nan, 1)
    sem = float(d.std(ddof=1)) / math.sqrt(n)
    if sem == 0.0:  # identical differences in every pair: no spread, the interval is a point
        return Difference(kpi, mean, mean, mean, n)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    return Difference(kpi, mean, float(low), float(high), n)


def _rows(tables: Sequence[KpiTable], group: str | None) -> list[dict[str, float]]:
    return [t.overall if group is None else t.groups[group] for t in tables]


def _compare_rows(dim: str, group: str, a: list[dict[str, float]],
                  b: list[dict[str, float]]) -> GroupComparison:
    names = [k for k in COMPARED if dim != "site" or k in SITE_KPIS]
    volume_kpi = "answered" if dim == "site" else "offered"
    volume = float(np.nanmean([row[volume_kpi] for row in a]))
    return GroupComparison(dim, group, volume, tuple(
        paired_difference(k, [row[k] for row in a], [row[k] for row in b]) for k in names))


def compare(a: Sequence[RunResult], b: Sequence[RunResult],
            by: Sequence[Dimension] = DIMENSIONS, min_offered: float = 30.0) -> Comparison:
    """Paired differences B - A of the compared KPIs, overall and per group with at least
    ``min_offered`` mean offered calls per replication in A (answered calls by site)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"a comparison needs the same number of replications on both sides, "
                         f"at least one; got {len(a)} and {len(b)}")
    if [r.seed for r in a] != [r.seed for r in b]:
        raise ValueError("the two sides were not run from the same seeds: their differences "
                         "would not be paired")
    overall_a = [kpis(r) for r in a]
    overall_b = [kpis(r) for r in b]
    groups = [_compare_rows("center", ALL, _rows(overall_a, None), _rows(overall_b, None))]
    for dim in by:
        ta = [kpis(r, dim) for r in a]
        tb = [kpis(r, dim) for r in b]
        for name in ta[0].groups:
            if name not in tb[0].groups:
                continue
            g = _compare_rows(dim, name, _rows(ta, name), _rows(tb, name))
            if g.volume >= min_offered:
                groups.append(g)
    return Comparison(len(a), tuple(r.seed for r in a), min_offered, tuple(groups))


# --- Terminal ---------------------------------------------------------------------------------

#: Column headers and units: shares in percentage points, ASA in seconds.
_HEADERS = {"sl_offered": ("ΔSL pp", 100.0), "answer_rate": ("ΔCAR pp", 100.0),
            "asa_s": ("ΔASA s", 1.0), "abandon_rate": ("Δaband pp", 100.0)}
#: Short verdicts for the table.
_SHORT = {B_BETTER: "B better", A_BETTER: "A better", MIXED: "mixed", NO_DIFFERENCE: "-"}


def fmt_difference(d: Difference) -> str:
    """E.g. ``+1.23 [+0.80, +1.66]`` (percentage points for shares, seconds for ASA)."""
    _header, scale = _HEADERS[d.kpi]
    if not math.isfinite(d.mean):
        return "-"
    if not math.isfinite(d.low):
        return f"{scale * d.mean:+.2f}"
    return f"{scale * d.mean:+.2f} [{scale * d.low:+.2f}, {scale * d.high:+.2f}]"


def _label(g: GroupComparison) -> str:
    return "center" if g.dim == "center" else f"{g.dim} {g.group}"


def verdict_line(comparison: Comparison) -> str:
    """The center's verdict, and the groups B makes significantly worse."""
    center = comparison.center
    line = f"Verdict for the center: {center.verdict} (B - A, 95% CI of paired differences)"
    worse = comparison.worse_groups
    if worse:
        line += f"; B is significantly worse for {', '.join(_label(g) for g in worse)}"
    return line


def print_comparison(comparison: Comparison, console: Console, a_name: str,
                     b_name: str) -> None:
    """The table of paired differences (center and each group), then the verdict."""
    table = Table(title=f"B - A: B = {b_name}, A = {a_name}; {comparison.replications} paired "
                        f"replication(s), seeds {', '.join(map(str, comparison.seeds))}",
                  title_justify="left")
    table.add_column("group", no_wrap=True)
    table.add_column("calls", justify="right", no_wrap=True)
    for k in COMPARED:
        table.add_column(_HEADERS[k][0], justify="right", no_wrap=True)
    table.add_column("B vs A", no_wrap=True)
    colour = {True: "green", False: "red", None: ""}
    for g in comparison.groups:
        cells = {d.kpi: d for d in g.differences}
        row = [Text(fmt_difference(cells[k]), style=colour[cells[k].better]) if k in cells
               else Text("-") for k in COMPARED]
        table.add_row(_label(g), f"{g.volume:.0f}", *row, _SHORT[g.verdict])
    console.print(table)
    console.print(f"mean [95% CI] of B - A; groups with >= {comparison.min_offered:g} calls "
                  "per replication in A; green: B significantly better, red: significantly "
                  "worse", markup=False, highlight=False)
    console.print(verdict_line(comparison), markup=False, highlight=False,
                  style="bold")


def _number(x: float) -> float | None:
    return x if math.isfinite(x) else None


def comparison_to_dict(comparison: Comparison, a_name: str, b_name: str) -> dict[str, object]:
    """The comparison as plain JSON types (undefined values as null)."""
    return {
        "a": a_name, "b": b_name, "replications": comparison.replications,
        "seeds": list(comparison.seeds), "min_offered": comparison.min_offered,
        "verdict": comparison.center.verdict,
        "groups": [{"dim": g.dim, "group": g.group, "volume": g.volume, "verdict": g.verdict,
                    "differences": {d.kpi: {"mean": _number(d.mean), "low": _number(d.low),
                                            "high": _number(d.high), "n": d.n,
                                            "significant": d.significant}
                                    for d in g.differences}}
                   for g in comparison.groups],
    }
