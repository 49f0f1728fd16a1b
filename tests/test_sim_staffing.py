"""Staffing timelines from a scenario's shifts and breaks, played into the router as the
simulator does; scenarios refuse overlapping breaks; absences are each agent's own, per
calendar day, whatever the other agents and the run's start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routerkit import agent, build, center_data

from acd.config.load import center_from_data
from acd.config.policy import center_policy
from acd.config.schema import CenterConfig
from acd.core.model import AgentProfile, AgentState, RoutingError
from acd.core.router import Router
from acd.errors import ConfigError
from sim.run import default_scenario, replication_seeds, replication_streams
from sim.scenario import Staffing, load_scenario
from sim.staffing import (
    StaffAction,
    absence_root,
    absent_days,
    allocate,
    build_timeline,
    shift_slots,
)

#: A Monday, midnight in Moscow (the reference scenario's start).
MONDAY = datetime.fromisoformat("2026-03-02T00:00:00+03:00")


# ------------------------------------------------- shifts and breaks


def _timeline(staffing: dict[str, Any], start: datetime = MONDAY,
              horizon_s: float = 86400.0) -> tuple[Router, list[StaffAction]]:
    """One Moscow agent ``a`` working every day, and its staffing timeline from ``staffing``."""
    config, agents = build(center_data([agent("a")]))
    spec = Staffing.model_validate({"work_days_per_week": 7, "break_stagger_minutes": 0,
                                    **staffing})
    actions = build_timeline(config, agents, spec, start, horizon_s, np.random.default_rng(0))
    return Router(center_policy(config), agents), actions


def _state_at(router: Router, actions: Sequence[StaffAction], t: float
              ) -> tuple[AgentState, str | None]:
    """Play every action up to ``t`` into ``router`` as the engine does; agent a's state."""
    for act in actions:
        if act.t > t:
            break
        try:
            if act.action == "login":
                router.login(act.t, act.agent, paused_reason=act.reason)
            elif act.action == "logout":
                router.logout(act.t, act.agent)
            elif act.action == "pause":
                router.pause(act.t, act.agent, act.reason or "break")
            else:
                router.ready(act.t, act.agent)
        except RoutingError:
            continue
    snap = {s.agent_id: s for s in router.agent_snapshot()}["a"]
    return snap.state, snap.reason


def test_lunch_right_after_a_break_keeps_the_agent_paused() -> None:
    """A lunch that starts the instant a break ends leaves the agent paused for lunch."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "09:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 2, "minutes": 15, "reason": "break"},
                   {"after_h": 2.25, "minutes": 30, "reason": "lunch"}]})
    lunch = 11.25 * 3600 + 60  # one minute into lunch
    assert _state_at(router, actions, lunch) == (AgentState.PAUSED, "lunch")


def test_break_under_way_at_the_run_start_is_kept() -> None:
    """A night-shift break that began before the run starts keeps the agent paused until it ends."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "22:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 1.95, "minutes": 15, "reason": "break"}]})
    # The break runs 23:57-00:12 Moscow: 3 minutes before the run and 12 minutes into it.
    assert _state_at(router, actions, 60.0) == (AgentState.PAUSED, "break")
    assert _state_at(router, actions, 13 * 60.0)[0] is AgentState.READY


def test_break_starting_exactly_at_the_run_start_is_kept() -> None:
    """A break that starts at the run's first second is taken, not skipped."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "22:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 2, "minutes": 15, "reason": "break"}]})
    assert _state_at(router, actions, 60.0) == (AgentState.PAUSED, "break")
    assert _state_at(router, actions, 16 * 60.0)[0] is AgentState.READY


def test_back_to_back_breaks_with_float_rounding_keep_the_agent_paused() -> None:
    """Back-to-back breaks whose instants differ only by binary rounding (the second starts
    half a nanosecond before the first ends) still leave the agent paused for the second one."""
    router, actions = _timeline({
        "shifts": {"moscow": [{"start": "00:00", "hours": 9, "share": 1.0}]},
        "breaks": [{"after_h": 0.5, "minutes": 20, "reason": "break"},
                   {"after_h": 0.5 + 20 / 60, "minutes": 30, "reason": "lunch"}]})
    assert _state_at(router, actions, 3060.0) == (AgentState.PAUSED, "lunch")


# --------------------------------------------------- scenario breaks


def _scenario_with_breaks(tmp_path: Path, breaks: str) -> Path:
    """The reference scenario copied beside ``tmp_path`` with its breaks replaced."""
    text = default_scenario().read_text(encoding="utf-8")
    config = default_scenario().parent
    text = text.replace("center: ../center.yaml", f"center: {(config.parent / 'center.yaml')}")
    text = text.replace("traffic: ../traffic/reference.yaml",
                        f"traffic: {config.parent / 'traffic' / 'reference.yaml'}")
    head, _, tail = text.partition("  breaks:\n")
    tail = tail[tail.index("  shifts:"):]
    path = tmp_path / "scenario.yaml"
    path.write_text(f"{head}  breaks:\n{breaks}{tail}", encoding="utf-8")
    return path


def test_overlapping_breaks_are_refused(tmp_path: Path) -> None:
    """Breaks that overlap (a 15-minute break inside lunch) are a scenario error, not a silent
    early return from lunch."""
    path = _scenario_with_breaks(tmp_path, "    - {after_h: 4, minutes: 60, reason: lunch}\n"
                                           "    - {after_h: 4.5, minutes: 15, reason: break}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert [p.path for p in err.value.problems] == ["staffing.breaks[1]"]


def test_back_to_back_breaks_load(tmp_path: Path) -> None:
    """A lunch starting the minute a break ends is a valid scenario."""
    path = _scenario_with_breaks(tmp_path, "    - {after_h: 2, minutes: 15, reason: break}\n"
                                           "    - {after_h: 2.25, minutes: 30, reason: lunch}\n")
    assert len(load_scenario(path).spec.staffing.breaks) == 2


# ------------------------------------------------------------------ absences


def _reference() -> tuple[CenterConfig, Staffing]:
    """The reference center and its staffing (absence rate 0.06)."""
    scenario = load_scenario(default_scenario())
    return scenario.center.config, scenario.spec.staffing


def _roster(config: CenterConfig, counts: Mapping[str, int] | None = None,
            order: Sequence[str] | None = None) -> tuple[CenterConfig, list[AgentProfile]]:
    """``config`` with some groups' head counts changed and its groups listed in ``order``."""
    data = config.model_dump(mode="json")
    groups = data["agent_groups"]
    for name, count in (counts or {}).items():
        groups[name]["count"] = count
    data["agent_groups"] = {name: groups[name] for name in (order or list(groups))}
    loaded = center_from_data(data, "test-center.yaml")
    return loaded.config, loaded.agents


def _by_agent(actions: Sequence[StaffAction]) -> dict[str, list[StaffAction]]:
    out: dict[str, list[StaffAction]] = {}
    for act in actions:
        out.setdefault(act.agent, []).append(act)
    return out


def _seed(n: int) -> np.random.SeedSequence:
    """The staffing seed sequence of replication 0 of base seed ``n``, as a run uses it."""
    return replication_streams(replication_seeds(n, 1)[0])[1]


#: Groups of the reference center without a language mix, whose head count a test may change.
PLAIN_GROUPS = ("msk-tech-ru", "msk-repair-ru", "kyi-tech-uk", "kyi-orders-uk", "kyi-voc")


@settings(max_examples=10, deadline=None)
@given(grown=st.sampled_from(PLAIN_GROUPS), extra=st.integers(1, 12),
       seed=st.integers(0, 2**32 - 1), reverse=st.booleans())
def test_agents_keep_their_timeline_when_agents_are_added(grown: str, extra: int, seed: int,
                                                          reverse: bool) -> None:
    """Every agent keeps exactly the same shift, breaks and absences when its own or another
    group gains agents and the groups are listed in another order."""
    config, staffing = _reference()
    before = _by_agent(build_timeline(config, _roster(config)[1], staffing, MONDAY,
                                      3 * 86400.0, _seed(seed)))
    order = list(config.agent_groups)[::-1] if reverse else None
    cfg, agents = _roster(config, {grown: config.agent_groups[grown].count + extra}, order)
    after = _by_agent(build_timeline(cfg, agents, staffing, MONDAY, 3 * 86400.0, _seed(seed)))
    plain = _by_agent(build_timeline(config, _roster(config)[1],
                                     staffing.model_copy(update={"absence_rate": 0.0}),
                                     MONDAY, 3 * 86400.0, _seed(seed)))
    kept = [a.id for a in _roster(config)[1]]
    assert any(before.get(a) != plain.get(a) for a in kept)  # some absences were drawn
    for agent_id in kept:
        assert after.get(agent_id) == before.get(agent_id), agent_id


def test_a_days_absence_does_not_depend_on_the_run_start() -> None:
    """A run started a week earlier has, on the days both runs cover, exactly the same
    logins, breaks and absences as the later run."""
    config, staffing = _reference()
    agents = _roster(config)[1]
    week = 7 * 86400.0
    later = build_timeline(config, agents, staffing, MONDAY, 2 * 86400.0, _seed(5))
    earlier = build_timeline(config, agents, staffing, MONDAY - timedelta(weeks=1),
                             week + 2 * 86400.0, _seed(5))
    inside = {a for a in later if a.t > 0.0}
    moved = {replace(a, t=a.t - week) for a in earlier if a.t > week}
    assert inside and inside == moved


def test_absences_keep_their_rate_and_are_independent_of_the_hash_seed() -> None:
    """Over 200 agents and a year, the share of absent agent-days is the absence rate, and an
    agent's days are the same in a process with another string-hash salt."""
    root = absence_root(_seed(3))
    days = np.array([absent_days(root, f"a-{i:03d}", date(2026, 1, 1), 365, 0.06)
                     for i in range(200)])
    assert days.mean() == pytest.approx(0.06, abs=0.004)
    assert 0 < days[0].sum() < 60
    code = ("import numpy as np, datetime as d; from sim.staffing import absent_days; "
            f"print(''.join('1' if x else '0' for x in absent_days(np.array({root.tolist()}, "
            "dtype=np.uint32), 'a-000', d.date(2026, 1, 1), 365, 0.06)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == "".join("1" if x else "0" for x in days[0])


def test_seeded_timelines_are_reproducible_from_their_seed() -> None:
    """The same seed gives the same timeline (from its seed sequence or a generator seeded
    with it), and another seed other absences."""
    config, staffing = _reference()
    agents = _roster(config)[1]
    one = build_timeline(config, agents, staffing, MONDAY, 86400.0, _seed(11))
    assert build_timeline(config, agents, staffing, MONDAY, 86400.0, _seed(11)) == one
    assert build_timeline(config, agents, staffing, MONDAY, 86400.0,
                          np.random.default_rng(_seed(11))) == one
    assert build_timeline(config, agents, staffing, MONDAY, 86400.0, _seed(12)) != one


# ------------------------------------------------------------------ shift slots


@settings(max_examples=60, deadline=None)
@given(shares=st.lists(st.floats(0.01, 1.0), min_size=1, max_size=8),
       n=st.integers(0, 120), extra=st.integers(1, 40))
def test_shift_slots_never_move_earlier_agents(shares: list[float], n: int, extra: int) -> None:
    """The first ``n`` agents of a larger group have the shifts they have in a group of ``n``;
    every shift holds its exact share to within one agent, and exactly the largest-remainder
    count wherever largest remainders grow one seat at a time up to ``n``."""
    slots = shift_slots(shares, n)
    assert shift_slots(shares, n + extra)[:n] == slots
    counts = [slots.count(s) for s in range(len(shares))]
    for count, share in zip(counts, shares, strict=True):
        assert abs(count - share / sum(shares) * n) < 1
    monotone = all(all(b >= a for a, b in zip(allocate(shares, j), allocate(shares, j + 1),
                                                 strict=True)) for j in range(n))
    if monotone:
        assert counts == allocate(shares, n)


def test_reference_groups_keep_their_shift_head_counts() -> None:
    """Groups of the reference center get the largest-remainder head count per shift, except
    10-agent groups, where largest remainders would take a seat back from the night shift that
    a 9-agent group has (one agent moves from the 09:00 shift to the night)."""
    config, staffing = _reference()
    for name, group in config.agent_groups.items():
        shares = [s.share for s in staffing.shifts[group.site]]
        slots = shift_slots(shares, group.count)
        counts = [slots.count(s) for s in range(len(shares))]
        expected = allocate(shares, group.count)
        if group.count == 10:
            expected[3] -= 1
            expected[7] += 1
        assert counts == expected, name
