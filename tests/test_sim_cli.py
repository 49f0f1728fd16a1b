"""`acd sim run`: works on the embedded defaults, replays logs, fails clearly on bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from acd.cli import main
from sim.run import PlainProgress

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "call_log.sample.csv"


def test_forecast_run_prints_the_verdict_and_writes_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A short forecast run prints the SL verdict first and writes JSON, CSV and HTML."""
    code = main(["sim", "run", "--days", "0.1", "--start", "2026-03-02T09:00:00+03:00",
                 "-r", "2", "-j", "1", "-q", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    verdict = next(line for line in out.splitlines() if line.startswith("SL "))
    assert "target 85% / 20 s" in verdict
    assert verdict.endswith((": MET", ": NOT MET", ": INCONCLUSIVE"))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overall"]["sl_offered"]["mean"] > 0
    assert (tmp_path / "overall.csv").exists()
    html = (tmp_path / "report.html").read_text()
    # SL, by queue, by language, waits, volume, queue depth, occupancy, staffing gap: inline
    # SVG figures.
    assert html.count("<figure id=\"plot-") == 8 and html.count("</svg>") == 8


def test_check_exits_1_when_the_target_is_missed(tmp_path: Path) -> None:
    """With traffic tripled the reference staffing misses 85/20 and --check exits 1."""
    code = main(["sim", "run", "--days", "0.05", "--start", "2026-03-02T10:00:00+03:00",
                 "--scale", "3", "-r", "1", "-q", "--check", "--out", str(tmp_path)])
    assert code == 1


def test_replay_of_a_call_log_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recorded call log replays through the router from the command line."""
    code = main(["sim", "run", "--replay", str(SAMPLE), "-r", "1", "-q",
                 "--out", str(tmp_path)])
    assert code == 0
    assert "replay of" in capsys.readouterr().out


def test_bad_call_log_exits_2_with_file_line_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Negative times and unknown queues or languages name the file, the line and the value."""
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival,caller,language,queue,talk_s,abandon_s\n"
                   "2026-03-02T09:00:00+03:00,+79161234567,ru,tech,-5,\n"
                   "2026-03-02T09:01:00+03:00,+79161234567,xx,plumbing,100,\n")
    code = main(["sim", "run", "--replay", str(bad), "-q", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}:2: talk_s" in err and "'-5'" in err
    assert f"{bad}:3: queue" in err and "'plumbing'" in err
    assert f"{bad}:3: language" in err and "'xx'" in err


def test_missing_call_log_columns_exit_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A call log without its required columns is refused before anything runs."""
    bad = tmp_path / "cols.csv"
    bad.write_text("when,who\n1,2\n")
    assert main(["sim", "run", "--replay", str(bad), "-q", "--out", str(tmp_path)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_bad_scenario_exits_2_naming_the_path(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown site in a scenario's shifts is reported with its YAML path."""
    text = (ROOT / "config" / "scenarios" / "reference.yaml").read_text()
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text.replace("    kyiv:\n      # Kyiv", "    minsk:\n      # Kyiv")
                        .replace("../center.yaml", str(ROOT / "config" / "center.yaml"))
                        .replace("../traffic/reference.yaml",
                                 str(ROOT / "config" / "traffic" / "reference.yaml")))
    assert main(["sim", "run", str(scenario), "-q", "--out", str(tmp_path)]) == 2
    assert "staffing.shifts.minsk" in capsys.readouterr().err


def test_progress_lines_in_logs_when_not_on_a_terminal(tmp_path: Path) -> None:
    """Run with stderr piped (cron, CI), progress is printed as plain lines ending at 100%."""
    proc = subprocess.run([sys.executable, "-m", "acd.cli", "sim", "run", "--days", "0.05",
                           "--start", "2026-03-02T10:00:00+03:00", "-r", "2", "-j", "1",
                           "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("simulating: ")]
    assert len(lines) >= 2, proc.stderr
    assert lines[-1].startswith("simulating: 100% (2.0 of 2)")
    assert "\x1b[" not in proc.stderr  # no terminal control codes in a log


def test_plain_progress_prints_each_tenth_or_after_a_quiet_minute() -> None:
    """Lines come at each new 10% step, or after 60 s without one, never more often."""
    now = [0.0]
    out = io.StringIO()
    progress = PlainProgress("simulating", 4, out, clock=lambda: now[0])
    for done, at in [(0.1, 1), (0.2, 2), (0.41, 3), (0.42, 30), (0.43, 64), (4.0, 65)]:
        now[0] = at
        progress(done)
    assert [line.split(" (")[0] for line in out.getvalue().splitlines()] == [
        "simulating:  10%", "simulating:  11%", "simulating: 100%"]


def test_runs_without_out_never_overwrite_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs without --out write two run directories under out/sim; latest is the second."""
    monkeypatch.chdir(tmp_path)
    args = ["sim", "run", "--days", "0.02", "--start", "2026-03-02T09:00:00+03:00", "-r", "1",
            "-j", "1", "-q"]
    assert main([*args, "--seed", "1"]) == 0
    assert main([*args, "--seed", "2"]) == 0
    base = tmp_path / "out" / "sim"
    runs = sorted(p for p in base.iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 2
    first, second = (json.loads((r / "summary.json").read_text()) for r in runs)
    assert {first["provenance"]["seed"], second["provenance"]["seed"]} == {1, 2}
    latest = json.loads((base / "latest" / "summary.json").read_text())
    assert latest["provenance"]["seed"] == 2
    assert (base / "latest").resolve().name == latest["provenance"]["run_id"]


def test_out_with_an_earlier_run_is_refused_unless_force(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An --out that holds an earlier run's results exits 2 naming it; --force replaces them."""
    args = ["sim", "run", "--days", "0.02", "--start", "2026-03-02T09:00:00+03:00", "-r", "1",
            "-j", "1", "-q", "--out", str(tmp_path)]
    assert main([*args, "--seed", "1"]) == 0
    before = (tmp_path / "summary.json").read_text()
    capsys.readouterr()
    assert main([*args, "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "earlier run" in err and "--force" in err
    assert (tmp_path / "summary.json").read_text() == before
    assert main([*args, "--seed", "2", "--force"]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["provenance"]["seed"] == 2


def test_bad_input_found_where_a_replication_ran_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A replication that finds bad input (a Dask worker without the scenario's files, at the
    same path as here) is a usage problem, exit 2, named with its replication and seed; any
    other failure of a task is still reported as a bug."""
    import sim.run
    from acd.errors import ConfigError, Problem
    from sim.executor import TaskFailed

    def fails(cause: Exception) -> Callable[..., None]:
        def run(*args: object, **kwargs: object) -> None:
            raise TaskFailed("replication 1 (0-based) of seed 1", cause) from cause
        return run

    args = ["sim", "run", "--days", "0.02", "--start", "2026-03-02T09:00:00+03:00", "-r", "2",
            "-j", "1", "-q", "--out", str(tmp_path / "out")]
    gone = ConfigError([Problem("/srv/scenarios/reference.yaml", "<root>", None,
                                "cannot read file: No such file or directory")])
    monkeypatch.setattr(sim.run, "run_replications", fails(gone))
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "replication 1 (0-based) of seed 1 failed: /srv/scenarios/reference.yaml: <root>: "
        "cannot read file: No such file or directory")
    monkeypatch.setattr(sim.run, "run_replications", fails(ZeroDivisionError("x")))
    assert main(args) == 70
    assert "this is a bug" in capsys.readouterr().err


def test_a_simulation_does_not_import_scipy_stats(tmp_path: Path) -> None:
    """``scipy.stats`` takes 0.3-0.6 s to import, paid by every ``acd sim`` command and every
    worker process: a run from the forecast, its summary and report do without it (its t
    quantiles come from ``scipy.special``; only a queue-log replay's patience fit needs it)."""
    code = ("import sys; from acd.cli import main; "
            f"code = main(['sim', 'run', '--days', '0.02', '-r', '2', '-j', '1', '-q', "
            f"'--out', {str(tmp_path / 'out')!r}]); "
            "print(code, 'scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=300)
    assert out.stdout.split()[-2:] == ["0", "False"], out.stdout + out.stderr
