"""``acd sim staff``: demand from the forecast, scheduled staffing, Erlang seeds, confirmation."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from rich.console import Console

from acd.cli import parse_args
from acd.errors import EXIT_BAD_INPUT, InputError
from sim.erlang import agents_for_service_level
from sim.scenario import load_scenario
from sim.staff import confirm, demand, plan, scheduled
from sim.traffic import Constant, Exponential, QueueHandling, load_traffic

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "config" / "scenarios" / "reference.yaml"


def test_demand_adds_up_to_the_forecast() -> None:
    """Calls per interval and queue sum to the day's expected calls less IVR abandons."""
    sc = load_scenario(SCENARIO)
    d = demand(sc)
    cfg = sc.center.config
    traffic = load_traffic(sc.traffic_path, cfg.queues, cfg.languages, cfg.countries)
    expected = traffic.expected_calls(sc.spec.start, 1.0)
    keep = 1 - sc.spec.behaviour.ivr_abandon_probability
    assert d.calls.sum() == pytest.approx(expected * keep, rel=1e-6)
    assert d.calls.shape == (48, 4)
    # AHT = mean talk + wrap-up: tech talks 390 s and wraps 30 s in the traffic file.
    assert d.aht_s["tech"] == pytest.approx(420.0)
    assert d.patience_s["tech"] == pytest.approx(180.0)


def test_scheduled_follows_the_shifts() -> None:
    """Fewer agents are logged in at 03:00 than at 11:00, and never more than the roster."""
    sc = load_scenario(SCENARIO)
    d = demand(sc)
    have = scheduled(sc, d)
    tech = d.queues.index("tech")
    assert have[6, tech] < have[22, tech]
    with_skill = sum(1 for a in sc.center.agents if "tech" in a.skills)
    assert (have[:, tech] <= with_skill + 1e-9).all()
    assert (have >= 0).all()


def test_erlang_column_is_the_smallest_staffing() -> None:
    """Each row's Erlang agents is what agents_for_service_level gives for its rate."""
    sc = load_scenario(SCENARIO)
    p = plan(sc, model="C")
    row = max((r for r in p.rows if r.queue == "tech"), key=lambda r: r.calls)
    rate = row.calls / p.interval_s
    assert row.erlang_agents == agents_for_service_level(rate, row.aht_s, 20.0, 0.85)
    assert row.erlang_sl >= 0.85
    assert all(r.confirmed_agents is None for r in p.rows)


def test_confirmation_finds_the_smallest_meeting_staffing() -> None:
    """For an M/M/c-like queue the simulated count is within one agent of Erlang C's."""
    handling = QueueHandling(talk=Exponential(170.0), patience=None, wrap=Constant(10.0))
    rate = 0.1  # 18 Erlangs with AHT 180 s
    seed_agents = agents_for_service_level(rate, 180.0, 20.0, 0.85)
    n, sl = confirm(rate, handling, 10.0, seed_agents, 20.0, 0.85, seeds=[1, 2, 3])
    assert sl >= 0.85
    assert abs(n - seed_agents) <= 1


def run(*argv: str) -> tuple[int, str]:
    """Run ``acd sim ...`` as ``acd.cli.main`` would; return the exit status and output."""
    console = Console(record=True, width=200)
    try:
        args = parse_args(argv)  # checks the values, as main does
        code = args.func(args, console)
    except InputError as exc:
        return EXIT_BAD_INPUT, str(exc)
    except SystemExit as exc:
        return int(exc.code or 0), ""
    return code, console.export_text()


def test_cli_writes_csv_and_confirms_the_busiest_interval(tmp_path: Path) -> None:
    """--confirm --busiest 1 confirms one interval per queue and writes one CSV row per cell."""
    code, out = run("sim", "staff", str(SCENARIO), "--confirm", "--busiest", "1",
                    "-r", "2", "--max-replications", "2", "--out", str(tmp_path))
    assert code == 0
    assert "only visible in `acd sim run`" in out
    assert "Erlang vs confirmed" in out
    with open(tmp_path / "staff.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 48 * 4
    confirmed = [r for r in rows if r["confirmed_agents"]]
    assert len(confirmed) == 4
    assert all(float(r["confirmed_sl"]) >= 0.85 for r in confirmed)


def test_cli_bad_days_exit_2() -> None:
    """A negative --days exits 2 naming the option."""
    code, message = run("sim", "staff", "--days", "-1")
    assert code == EXIT_BAD_INPUT and "--days" in message
