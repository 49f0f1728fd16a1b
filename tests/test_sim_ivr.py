"""IVR in the simulator: forced menu answers, flow outcomes, and the IVR scenario end to end."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from acd.config.load import load_center
from acd.errors import ConfigError
from sim.ivrsim import IvrCallers, IvrResult, forced_answers, load_sim_flow
from sim.records import ANSWERED, VOICEMAIL
from sim.run import RunSpec, run_one
from sim.scenario import load_scenario
from sim.traffic import Arrival

ROOT = Path(__file__).resolve().parents[1]
CENTER = load_center(ROOT / "config" / "center.yaml")
FLOW = load_sim_flow(ROOT / "config" / "ivr" / "main.yaml", CENTER.config)
IVR_SCENARIO = ROOT / "config" / "scenarios" / "reference-ivr.yaml"
# A Wednesday, midnight Moscow time, as epoch seconds.
WEDNESDAY = datetime(2026, 3, 4, tzinfo=UTC).timestamp() - 3 * 3600


def test_forced_answers_pick_queue_and_language() -> None:
    """Digits are forced per (queue, language): 1/2/3/0 in the main menu, 9 for Russian."""
    assert forced_answers(FLOW, "tech", "uk", "UA") == {"main_menu": "1", "language_offer": None}
    assert forced_answers(FLOW, "tech", "ru", "UA") == {"main_menu": "1", "language_offer": "9"}
    assert forced_answers(FLOW, "orders", "ru", "RU") == {"main_menu": "2"}
    assert forced_answers(FLOW, "repair", "kk", "KZ") == {
        "main_menu": "3", "repair_menu": "2", "language_offer": None}
    # Escalations go through the menu's 0, not through the chance of a complaint card.
    assert forced_answers(FLOW, "voc", "ru", "RU") == {"main_menu": "0"}


def test_forced_answers_fall_back_to_any_language() -> None:
    """A language the flow cannot select still reaches the queue (in the caller's language)."""
    assert forced_answers(FLOW, "tech", "lv", "RU") == {"main_menu": "1"}


def _walk(queue: str, hour: float, n: int = 400, seed: int = 3
          ) -> list[tuple[Arrival, IvrResult]]:
    callers = IvrCallers(FLOW, WEDNESDAY, np.random.default_rng(seed))
    out = []
    for i in range(n):
        a = Arrival(hour * 3600 + i, queue, ("uk", "ru")[i % 2], "UA", "+380501234567", 0, 300.0)
        out.append((a, callers.walk(a)))
    return out


def test_daytime_callers_reach_their_queue_and_language() -> None:
    """At noon nearly every tech caller is queued for tech in the language of the arrival."""
    results = _walk("tech", 12.0)
    queued = [(a, r) for a, r in results if r.status == "queued"]
    assert len(queued) > 0.9 * len(results)
    assert all(r.language == a.language for a, r in queued)
    on_queue = sum(r.queue == "tech" for _, r in queued)
    assert on_queue > 0.98 * len(queued)  # complaint cards escalate a few to voc
    assert all(5 < r.elapsed_s < 120 for _, r in queued)


def test_orders_at_night_leave_voicemail_from_the_flow() -> None:
    """At 03:00 orders is closed: callers leave voicemail, go to tech or hang up, per the flow."""
    statuses = Counter(r.status for _, r in _walk("orders", 3.0))
    assert statuses["voicemail"] > 100
    assert statuses["queued"] > 50  # the after-hours menu's "2" sends them to tech
    assert "abandoned" in statuses


def test_walks_are_reproducible_and_costed() -> None:
    """The same seed gives the same walks; the per-call cost is measured."""
    a = [(r.status, r.elapsed_s) for _, r in _walk("repair", 10.0, 100, seed=8)]
    b = [(r.status, r.elapsed_s) for _, r in _walk("repair", 10.0, 100, seed=8)]
    assert a == b
    callers = IvrCallers(FLOW, WEDNESDAY, np.random.default_rng(1))
    callers.walk(Arrival(0.0, "tech", "ru", "RU", None, 0, 60.0))
    assert callers.cost.calls == 1 and callers.cost.us_per_call > 0


def test_ivr_scenario_runs_the_flow_through_the_router() -> None:
    """A night and morning of the IVR scenario: voicemail rows never queue, answered calls do."""
    spec = RunSpec(str(IVR_SCENARIO), {"days": 0.3, "start": "2026-03-04T02:00:00+03:00"})
    r = run_one(spec, np.random.SeedSequence(5))
    c = r.calls
    voicemail = c.outcome == VOICEMAIL
    assert voicemail.sum() > 0
    assert np.isnan(c.queued_s[voicemail]).all()
    answered = c.outcome == ANSWERED
    assert answered.sum() > 100
    # Queue entry follows arrival by the time spent in the flow's prompts and menus.
    delay = c.queued_s[answered] - c.arrival_s[answered]
    assert (delay > 3).all() and np.median(delay) < 90
    again = run_one(spec, np.random.SeedSequence(5))
    np.testing.assert_array_equal(c.outcome, again.calls.outcome)


def test_scenario_without_flow_keeps_ivr_time() -> None:
    """The default scenario has no flow; the IVR scenario resolves its flow to a real file."""
    plain = load_scenario(ROOT / "config" / "scenarios" / "reference.yaml")
    assert plain.spec.behaviour.ivr_flow is None
    ivr = load_scenario(IVR_SCENARIO)
    assert ivr.spec.behaviour.ivr_flow is not None
    assert Path(ivr.spec.behaviour.ivr_flow).is_file()


def test_missing_flow_file_is_a_config_error(tmp_path: Path) -> None:
    """A scenario naming a flow that does not exist fails with the YAML path and value."""
    text = IVR_SCENARIO.read_text(encoding="utf-8").replace("../ivr/main.yaml", "nosuch.yaml")
    text = text.replace("../center.yaml", str(ROOT / "config" / "center.yaml"))
    text = text.replace("../traffic/reference.yaml",
                        str(ROOT / "config" / "traffic" / "reference.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_scenario(bad)
    (problem,) = exc.value.problems
    assert problem.path == "behaviour.ivr_flow" and problem.value == "nosuch.yaml"
    assert problem.line is not None
