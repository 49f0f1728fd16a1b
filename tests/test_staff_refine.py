"""``acd sim staff --confirm``: the per-interval refinement and the groups' minimum."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from rich.console import Console
from test_staff_confirm import _mmc_scenario

from sim.erlang import service_level_c
from sim.executor import LocalExecutor
from sim.refine import effective_rate, sized
from sim.scenario import load_scenario
from sim.staff import MIN_JUDGED_CALLS, StaffPlan, plan, print_languages

#: Half-hours from midnight: 36 calls, 36, a peak of 144, then 36 again (the weight of the rest
#: of the day only sets the scale: 8,640 calls a day over 240 weights).
PEAK = [1.0, 1.0, 4.0, 1.0, 1.0, 1.0] + [5.5] * 42
PEAK_AT = 2


def _peak_plan(tmp_path: Path, seed: int, max_replications: int, rounds: int) -> StaffPlan:
    """The peak day (exponential talk of 600 s, no abandonment) sized with --confirm all."""
    sc = load_scenario(_mmc_scenario(tmp_path, hours=3.0, intraday=PEAK, aht=600.0))
    return plan(sc, model="C", confirm_mode="all", replications=4, seed=seed,
                executor=LocalExecutor(1), max_replications=max_replications,
                refine_rounds=rounds)


def test_effective_load_inverts_erlang_c() -> None:
    """The rate that reproduces an Erlang C service level is the rate that gave it, and sizing
    at it gives Erlang C's own count."""
    sl = service_level_c(0.1, 120.0, 16, 20.0)
    assert math.isclose(effective_rate(sl, 16, 120.0, 20.0), 0.1, rel_tol=1e-4)
    assert sized(sl, 16, 120.0, 20.0, 0.85) == 16
    # A better SL than Erlang C predicts means a lighter effective load: fewer agents.
    assert sized(0.99, 16, 120.0, 20.0, 0.85) < 16


def test_a_peak_is_refined_below_its_stationary_erlang_count(tmp_path: Path) -> None:
    """When calls jump fourfold for half an hour, the busy agents lag the arrivals, so the
    simulation shows the peak far above target at Erlang's count; the refinement takes agents
    out there (and only where the simulation says so), and every judged interval's SL CI
    still reaches the target."""
    p = _peak_plan(tmp_path, seed=3, max_replications=24, rounds=3)
    rows = p.language_rows[:6]
    assert [round(r.calls) for r in rows] == [36, 36, 144, 36, 36, 36]
    assert p.confirmation is not None and p.confirmation.refinement is not None
    refined = p.confirmation.refinement
    assert refined.removed > 0 and refined.rounds >= 1
    peak = rows[PEAK_AT]
    assert peak.required_agents < peak.erlang_agents and peak.source == "refined"
    assert peak.confirmed_sl_low is not None and peak.confirmed_sl_low >= 0.85
    for r in rows:
        assert r.source in ("factor", "refined")
        assert r.required_agents == r.confirmed_agents
        if r.calls >= MIN_JUDGED_CALLS:
            assert r.confirmed_sl_high is not None and r.confirmed_sl_high >= 0.85
    assert refined.counts[:, 0].tolist() == [r.required_agents for r in rows]


def test_the_refinement_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """Two searches with the same seed give the same counts, SLs and moves, bit for bit."""
    def result(where: Path) -> tuple[list[tuple[int, str, float | None]], list[int]]:
        where.mkdir()
        p = _peak_plan(where, seed=5, max_replications=8, rounds=2)
        assert p.confirmation is not None and p.confirmation.refinement is not None
        r = p.confirmation.refinement
        return ([(row.required_agents, row.source, row.confirmed_sl)
                 for row in p.language_rows], [r.rounds, r.added, r.removed, r.replications_run])

    first, second = result(tmp_path / "a"), result(tmp_path / "b")
    assert first == second
    assert any(source == "refined" for _, source, _ in first[0])


def test_refine_rounds_zero_keeps_the_factor_search(tmp_path: Path) -> None:
    """With no rounds the requirement is Erlang times the group's factor in every interval."""
    p = _peak_plan(tmp_path, seed=3, max_replications=6, rounds=0)
    assert p.confirmation is not None and p.confirmation.refinement is None
    rows = p.language_rows[:6]
    scale = p.confirmation.scale[("q", "en")]
    assert all(r.source == "factor" for r in rows)
    assert [r.required_agents for r in rows] == [
        max(1, math.ceil(r.erlang_agents * scale - 1e-9)) for r in rows]


def test_the_minimum_explains_the_languages_over_the_queue(tmp_path: Path) -> None:
    """French callers (under 4 a half-hour) are staffed because the minimum of one agent puts
    the group there: the plan says how many agent-intervals that adds over a minimum of 0,
    under which they get none and the rows say so."""
    sc = load_scenario(_mmc_scenario(tmp_path, hours=1.5, french=0.02))
    one = plan(sc, model="C")
    fr = [r for r in one.language_rows if r.language == "fr"]
    assert all(0 < r.calls < MIN_JUDGED_CALLS for r in fr)
    assert one.minimum is not None and one.minimum.agents == 1
    added = sum(r.required_agents for r in fr)
    assert one.minimum.added == added and added >= 3
    assert one.minimum.cells == 3
    assert one.minimum.language_total == sum(r.required_agents for r in one.language_rows)
    assert one.minimum.queue_total == sum(r.erlang_agents for r in one.rows)
    console = Console(record=True, width=300)
    print_languages(one, console)
    text = console.export_text()
    without = (one.minimum.language_total - added) * 0.5  # agent-h of half-hour intervals
    assert f"{added} agent-intervals" in text and f"({without:.0f} without it)" in text

    none = plan(sc, model="C", min_agents=0)
    fr0 = [r for r in none.language_rows if r.language == "fr"]
    assert [r.required_agents for r in fr0] == [0, 0, 0]
    assert all(r.source == "minimum" and r.erlang_agents >= 1 for r in fr0)
    assert none.minimum is not None and none.minimum.added == 0
    en = np.array([r.required_agents for r in none.language_rows if r.language == "en"])
    assert (en == [r.erlang_agents for r in none.language_rows if r.language == "en"]).all()
