"""What a process keeps between the replications it runs: the loaded scenario (read again when
one of its files changes), its traffic forecast and shift plan; the replications come out the
same, bit for bit, as from a process that kept nothing."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from test_executor import same
from test_replay_faithful import _exported, _scenario

from sim import run as run_module
from sim.executor import LocalExecutor, frozen_while
from sim.run import (
    RunSpec,
    clear_shared,
    default_scenario,
    kept_set_up,
    load_run_scenario,
    replication_seeds,
    replication_streams,
    run_one,
    run_replications,
)
from sim.staffing import (
    StaffAction,
    _shift_actions,
    _stagger,
    absence_root,
    absent_days,
    shift_plan,
    shift_slots,
)

REFERENCE = default_scenario()
#: A busy morning and a bit: a few hundred calls.
SMALL = RunSpec(str(REFERENCE), {"days": 0.1, "start": "2026-03-02T09:00:00+03:00"})


@pytest.fixture(autouse=True)
def nothing_kept() -> Iterator[None]:
    """Each test starts, and leaves, with no scenario kept."""
    clear_shared()
    yield
    clear_shared()


def same_kept_or_fresh(spec: RunSpec, seeds: list[np.random.SeedSequence]) -> None:
    """Assert the replications of ``spec`` run one after another in this process (what the
    first loaded kept) equal each run with nothing kept."""
    kept = [run_one(spec, ss) for ss in seeds]
    fresh = []
    for ss in seeds:
        clear_shared()
        fresh.append(run_one(spec, ss))
    same(kept, fresh)


def test_replications_of_a_kept_scenario_equal_those_of_a_fresh_process() -> None:
    """Replications run one after another in one process (scenario, forecast and shift plan
    kept from the first) equal each run alone with nothing kept, warm-up and scaled agents
    included."""
    seeds = replication_seeds(11, 3)
    for spec in (SMALL, replace(SMALL, warmup_s=3600.0), replace(SMALL, agent_scale=1.1)):
        same_kept_or_fresh(spec, seeds)


def test_replays_of_a_kept_scenario_equal_those_of_a_fresh_process(tmp_path: Path) -> None:
    """Replaying a call log (each replication's horizon its own calls') one replication after
    another in one process gives what each gives alone."""
    scenario = _scenario(tmp_path, days=0.1)
    _, log = _exported(tmp_path, scenario)
    spec = RunSpec(str(scenario), {}, replay_path=str(log), keep_calls=False)
    same_kept_or_fresh(spec, replication_seeds(4, 3))


def test_a_scenario_is_kept_while_its_files_are_unchanged(tmp_path: Path) -> None:
    """The same spec gets the same loaded scenario back, also after a file is written again
    unchanged; a different override, or a change to the scenario, center or traffic file,
    loads it again with the new contents."""
    config = REFERENCE.parents[1]
    shutil.copytree(config, tmp_path / "config")
    scenario_file = tmp_path / "config" / REFERENCE.relative_to(config)
    spec = RunSpec(str(scenario_file), {"days": 1})
    first = kept_set_up(spec)
    assert kept_set_up(spec) is first
    scenario_file.write_text(scenario_file.read_text())
    assert kept_set_up(spec) is first
    assert kept_set_up(replace(spec, overrides={"days": 2})) is not first

    text = scenario_file.read_text()
    scenario_file.write_text(text.replace("name: reference center, current staffing",
                                          "name: reference center, edited"))
    second = kept_set_up(spec)
    assert second is not first and second.scenario.spec.name == "reference center, edited"
    assert kept_set_up(spec) is second
    text = scenario_file.read_text()  # the same size, at once: within the clock's tick
    scenario_file.write_text(text.replace("center, edited", "center, EDITED"))
    again = kept_set_up(spec)
    assert again.scenario.spec.name == "reference center, EDITED"
    scenario_file.write_text(text)
    second = kept_set_up(spec)

    center = Path(second.scenario.center.path)
    center.write_text(center.read_text() + "\n")  # the same settings, one byte more
    third = kept_set_up(spec)
    assert third is not second
    assert len(third.scenario.center.agents) == len(second.scenario.center.agents)

    traffic = third.scenario.traffic_path
    traffic.write_text(traffic.read_text() + "\n# edited\n")
    assert kept_set_up(spec) is not third


def test_a_changed_traffic_file_changes_the_arrivals(tmp_path: Path) -> None:
    """A replication after the traffic file was edited draws from the edited file, not from a
    forecast kept from before."""
    config = REFERENCE.parents[1]
    shutil.copytree(config, tmp_path / "config")
    scenario_file = tmp_path / "config" / REFERENCE.relative_to(config)
    spec = replace(SMALL, scenario_path=str(scenario_file))
    (ss,) = replication_seeds(3, 1)
    before = run_one(spec, ss)
    traffic = kept_set_up(spec).scenario.traffic_path
    lines = traffic.read_text().splitlines()
    volume = next(i for i, line in enumerate(lines) if line.strip().startswith("calls_per_month"))
    key, value = lines[volume].split(":", 1)
    lines[volume] = f"{key}: {float(value.split('#')[0]) * 2}"
    traffic.write_text("\n".join(lines) + "\n")
    after = run_one(spec, ss)
    assert after.calls_simulated > 1.5 * before.calls_simulated


def test_a_shift_plan_gives_the_actions_of_every_present_agent_day_in_time_order() -> None:
    """A replication's timeline from the plan is exactly every agent's shift and breaks on each
    working day it is not absent, sorted by time (leave before join, then agent), as building
    it day by day gives it."""
    scenario = load_run_scenario(RunSpec(str(REFERENCE), {"days": 7}))
    staffing = scenario.spec.staffing.model_copy(update={"absence_rate": 0.2})
    config, agents, start = scenario.center.config, scenario.center.agents, scenario.spec.start
    horizon = 7 * 86400.0 + 3600.0
    plan = shift_plan(config, agents, staffing, start, horizon)
    order = {"logout": 0, "pause": 1, "ready": 2, "login": 3}
    for ss in replication_seeds(5, 2):
        _, staffing_ss, _ = replication_streams(ss)
        root = absence_root(staffing_ss)
        expected: list[StaffAction] = []
        days = plan.days
        for group in dict.fromkeys(a.group for a in agents):
            members = [a for a in agents if a.group == group]
            site = config.agent_groups[group].site
            shifts = staffing.group_shifts.get(group) or staffing.shifts.get(site, [])
            if not shifts:
                continue
            tz = ZoneInfo(config.sites[site].timezone)
            first = start.astimezone(tz).date() - timedelta(days=1)
            slots = shift_slots([s.share for s in shifts], len(members))
            for k, agent in enumerate(members):
                absent = absent_days(root, agent.id, first, days, 0.2)
                off = {(k + j) % 7 for j in range(7 - staffing.work_days_per_week)}
                for d in range(days):
                    day = first + timedelta(days=d)
                    if day.weekday() not in off and not absent[d]:
                        expected += _shift_actions(agent.id, shifts[slots[k]], day, tz, start,
                                                   horizon, staffing,
                                                   _stagger(k, staffing.break_stagger_minutes))
        expected.sort(key=lambda a: (a.t, order[a.action], a.agent))
        got = plan.timeline(staffing_ss)
        assert got == expected
        assert len(got) < len(plan.actions)  # some agents were absent


def test_tasks_in_this_process_leave_its_collector_as_they_found_it() -> None:
    """A one-process executor runs its tasks with this process's objects frozen out of the
    collector, and unfreezes them after; a block inside an already frozen process leaves the
    freeze alone."""
    assert gc.get_freeze_count() == 0
    seen: list[int] = []
    LocalExecutor(1).map(lambda item, progress: seen.append(gc.get_freeze_count()), [0, 1],
                         ["a", "b"])
    assert seen[0] > 0 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_while():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_a_spec_run_once_keeps_nothing_and_one_run_again_keeps_its_set_up() -> None:
    """A single replication in the calling process leaves no scenario kept (its shift plan
    would only hold memory), two replications of the same spec keep it, and both give the
    numbers a fresh process gives."""
    [once] = run_replications(SMALL, 1, 5, jobs=1)
    assert not run_module._shared
    twice = run_replications(SMALL, 2, 5, jobs=1)
    assert len(run_module._shared) == 1
    clear_shared()
    fresh = [run_one(replace(SMALL, keep_set_up=False), ss) for ss in replication_seeds(5, 2)]
    assert not run_module._shared
    same(once, fresh[0])
    for a, b in zip(twice, fresh, strict=True):
        same(a, b)
