"""Staffing timelines from a scenario's shifts and breaks, played into the router as the
simulator does; scenarios refuse overlapping breaks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from routerkit import agent, build, center_data

from acd.config.policy import center_policy
from acd.core.model import AgentState, RoutingError
from acd.core.router import Router
from acd.errors import ConfigError
from sim.run import default_scenario
from sim.scenario import Staffing, load_scenario
from sim.staffing import StaffAction, build_timeline

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
