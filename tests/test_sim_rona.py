"""Ring-no-answer in the simulator: agents come back when the center leaves it to them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from routerkit import agent, center_data

from acd.cli import main
from acd.config.load import RONA_PAUSED_FOREVER, LoadedCenter, center_from_data
from sim.engine import Simulation
from sim.records import ANSWERED, PAUSED
from sim.scenario import DEFAULT_RONA_RETURN_S, Behaviour
from sim.staffing import StaffAction
from sim.traffic.arrival import Arrival

MONDAY = datetime.fromisoformat("2026-03-02T09:00:00+03:00")
ROOT = Path(__file__).resolve().parents[1]


def _center() -> LoadedCenter:
    return center_from_data(center_data([agent(f"a{i}") for i in range(4)]), "test-center.yaml")


def _run(center: LoadedCenter, rona_return_s: float | None) -> tuple[float, float, int]:
    """Answered share, paused agent-seconds and rings released of 200 calls, one per 30 s."""
    calls = [Arrival(30.0 * i, "tech", "ru", "RU", None, 0, talk_s=60.0, patience_s=300.0)
             for i in range(200)]
    timeline = [StaffAction(0.0, "login", a.id) for a in center.agents]
    behaviour = Behaviour.model_validate({
        "answer_delay": {"dist": "constant", "value": 2}, "rona_probability": 0.2,
        "rona_return_s": rona_return_s, "ivr_time": {"dist": "constant", "value": 0},
        "ivr_abandon_probability": 0})
    sim = Simulation(center, calls, timeline, behaviour, MONDAY, 6000.0, 1800.0, seed=3)
    result = sim.run()
    answered = float((result.calls.outcome == ANSWERED).mean())
    return answered, float(result.agent_time.seconds[..., PAUSED].sum()), sim.rings_released


def test_rona_pauses_end_after_the_default_when_the_center_sets_no_auto_ready() -> None:
    """With no rona.auto_ready_after_s and 20% ring-no-answer, simulated agents are back 60 s
    after each RONA and answer nearly every call; with rona_return_s null they stay paused."""
    center = _center()
    assert center.config.rona.auto_ready_after_s is None
    assert Behaviour().rona_return_s == DEFAULT_RONA_RETURN_S == 60.0
    answered, paused, rings = _run(center, DEFAULT_RONA_RETURN_S)
    assert rings > 10
    assert answered > 0.95
    assert paused <= DEFAULT_RONA_RETURN_S * rings + 1e-6  # no pause outlasts the default
    forever, paused_forever, _ = _run(center, None)
    assert forever < 0.5 < answered
    assert paused_forever > 4 * paused


def test_config_and_sim_run_warn_when_agents_could_stay_paused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A center without rona.auto_ready_after_s loads with a warning, and `acd sim run` on a
    scenario that lets offers ring out says so (and runs: exit 0)."""
    assert RONA_PAUSED_FOREVER in _center().warnings
    scenario = tmp_path / "scenario.yaml"
    text = (ROOT / "config" / "scenarios" / "reference.yaml").read_text(encoding="utf-8")
    text = text.replace("center: ../center.yaml", f"center: {ROOT / 'config' / 'center.yaml'}")
    text = text.replace("traffic: ../traffic/reference.yaml",
                        f"traffic: {ROOT / 'config' / 'traffic' / 'reference.yaml'}")
    text += "center_overrides:\n  rona: {auto_ready_after_s: null}\n"
    scenario.write_text(text, encoding="utf-8")
    code = main(["sim", "run", str(scenario), "--days", "0.02", "-r", "1", "-j", "1", "-q",
                 "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "sets no rona.auto_ready_after_s" in out and "60 s after it" in out
