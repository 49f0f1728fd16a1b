"""Site outages in a scenario: the site's agents leave and come back; calls move where allowed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acd.cli import main
from sim.outage import OutageWindow, apply_outages
from sim.records import ANSWERED, RunResult
from sim.run import RunSpec, run_one
from sim.staffing import StaffAction

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "config" / "scenarios" / "reference.yaml"
#: Kyiv 10:00-12:00 is 11:00-13:00 in Moscow, 2 to 4 hours after the 09:00 Moscow start.
DOWN_S, UP_S = 2 * 3600.0, 4 * 3600.0


def _scenario(tmp_path: Path, outages: str = "") -> Path:
    text = REFERENCE.read_text(encoding="utf-8")
    text = text.replace("center: ../center.yaml", f"center: {ROOT / 'config' / 'center.yaml'}")
    text = text.replace("traffic: ../traffic/reference.yaml",
                        f"traffic: {ROOT / 'config' / 'traffic' / 'reference.yaml'}")
    text = text.replace('start: "2026-03-02T00:00:00+03:00"', 'start: "2026-03-02T09:00:00+03:00"')
    text = text.replace("days: 1\n", "days: 0.25\n")
    path = tmp_path / ("outage.yaml" if outages else "plain.yaml")
    path.write_text(text + outages, encoding="utf-8")
    return path


def _answered(result: RunResult, site: str, t0: float, t1: float) -> int:
    """Calls answered by ``site``'s agents between ``t0`` and ``t1`` (answer time)."""
    c = result.calls
    answered_at = c.queued_s + c.wait_s
    code = c.sites.index(site)
    return int(((c.outcome == ANSWERED) & (c.site == code) & (answered_at >= t0)
                & (answered_at < t1)).sum())


def test_an_outage_takes_the_sites_agents_away_and_moves_calls_to_the_other_site(
        tmp_path: Path) -> None:
    """Kyiv down 10:00-12:00 Kyiv time: no call is answered in Kyiv then, Moscow answers more
    than without the outage (routing adds the other site), Kyiv's share of answered calls falls,
    and Kyiv answers again once it is back."""
    outage = '\noutages:\n  - {site: kyiv, from: "10:00", until: "12:00"}\n'
    seed = np.random.SeedSequence(3)
    plain = run_one(RunSpec(str(_scenario(tmp_path)), {}), seed)
    down = run_one(RunSpec(str(_scenario(tmp_path, outage)), {}), seed)
    assert len(plain.calls) == len(down.calls)  # the same callers (common random numbers)
    assert _answered(plain, "kyiv", DOWN_S, UP_S) > 100
    assert _answered(down, "kyiv", DOWN_S, UP_S) == 0
    assert _answered(down, "moscow", DOWN_S, UP_S) > _answered(plain, "moscow", DOWN_S, UP_S)
    assert _answered(down, "kyiv", UP_S, UP_S + 3600) > 0.5 * _answered(plain, "kyiv", UP_S,
                                                                          UP_S + 3600)

    def kyiv_share(r: RunResult) -> float:
        answered = r.calls.outcome == ANSWERED
        return float((r.calls.site[answered] == r.calls.sites.index("kyiv")).mean())

    assert kyiv_share(down) < kyiv_share(plain) - 0.05


def test_outage_timeline_logs_out_through_it_and_back_in_as_the_shift_stands() -> None:
    """An agent ready at the outage is logged out at its start and back in after it; one whose
    break is under way at the end comes back paused; one whose shift ends inside stays out; the
    other site's agents are untouched."""
    from routerkit import agent, center_data

    from acd.config.load import center_from_data

    loaded = center_from_data(center_data([agent("k1", site="kyiv"), agent("k2", site="kyiv"),
                                           agent("k3", site="kyiv"), agent("m1")]), "t.yaml")
    k1, k2, k3, m1 = (a.id for a in loaded.agents)
    timeline = [StaffAction(0.0, "login", a) for a in (k1, k2, k3, m1)] + [
        StaffAction(150.0, "pause", k2, "lunch"), StaffAction(160.0, "logout", k3),
        StaffAction(150.0, "pause", m1, "lunch")]
    timeline.sort(key=lambda a: a.t)
    out = apply_outages(timeline, loaded.agents, [OutageWindow("kyiv", 100.0, 200.0)])
    assert [(a.t, a.action, a.agent, a.reason) for a in out if a.t > 0] == [
        (100.0, "logout", k1, None), (100.0, "logout", k2, None), (100.0, "logout", k3, None),
        (150.0, "pause", m1, "lunch"),
        (200.0, "login", k1, None), (200.0, "login", k2, "lunch")]


@pytest.mark.parametrize(("outage", "path", "message"), [
    ('{site: lviv, from: "10:00", until: "12:00"}', "outages[0].site", "unknown site"),
    ('{site: kyiv, from: "25:00", until: "12:00"}', "outages[0].from", "clock time"),
    ('{site: kyiv, from: "2026-03-02T12:00+02:00", until: "2026-03-02T10:00+02:00"}',
     "outages[0].until", "must be after from"),
    ('{site: kyiv, from: "2026-03-02T10:00", until: "12:00"}', "outages[0].from", "utc offset"),
    ('{site: kyiv, from: "10:00"}', "outages[0].until", "required"),
])
def test_bad_outage_exits_2_naming_file_path_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], outage: str, path: str,
        message: str) -> None:
    """An unknown site, a bad time, an end before the start or a missing end exits 2 with the
    scenario file, the YAML path and the value."""
    scenario = _scenario(tmp_path, f"\noutages:\n  - {outage}\n")
    assert main(["sim", "run", str(scenario), "-q", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(scenario) in err and path in err and message in err.lower(), err


def test_sim_run_reports_each_site_and_language_during_the_outage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`acd sim run` prints the service level of each site and language during the outage
    against the rest of the run and writes it to outages.csv: Moscow, taking Kyiv's calls,
    answers fewer of them within 20 s during the outage than outside it, and Kyiv's row shows it
    answering almost nothing then."""
    outage = '\noutages:\n  - {site: kyiv, from: "10:00", until: "12:00"}\n'
    out = tmp_path / "out"
    code = main(["sim", "run", str(_scenario(tmp_path, outage)), "-r", "2", "-j", "1", "-q",
                 "--out", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert "Service level during each outage" in printed
    rows = {(r[1], r[2]): r for r in (line.split(",") for line in
                                       (out / "outages.csv").read_text().splitlines()[1:])}
    assert {("site", "moscow"), ("language", "ru"), ("language", "uk")} <= set(rows)
    moscow, kyiv = rows[("site", "moscow")], rows[("site", "kyiv")]
    assert moscow[3] == "sl_answered" and float(moscow[5]) < float(moscow[7])
    assert float(kyiv[4]) < 0.1 * float(moscow[4])  # Kyiv answers (almost) nothing in it


def test_staffing_says_it_leaves_a_scenarios_outages_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``acd sim staff`` on a scenario with an outage sizes agents as logged in and says that
    the outage is left out; on the same scenario without one it says nothing of outages."""
    outage = '\noutages:\n  - {site: kyiv, from: "10:00", until: "12:00"}\n'
    for text, expected in (("", False), (outage, True)):
        out = tmp_path / ("down" if text else "plain")
        code = main(["sim", "staff", str(_scenario(tmp_path, text)), "--out", str(out)])
        assert code == 0
        said = " ".join(capsys.readouterr().out.split())
        assert ("site outages are left out" in said) is expected
        assert "sized as its own pool" in said
