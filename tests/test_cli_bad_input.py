"""Bad-input matrix: every command, given ordinary mistakes, exits 2 with a line naming each one.

Each case runs a real subprocess (as a user would) in a scratch directory, and asserts: exit
status 2, no Python traceback, every expected fragment (the option or path, and the value) in the
output, and no file created, changed or removed. Cases carry several mistakes at once where the
command reports them together, to keep the file fast.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BANK = ROOT / "data" / "bank_calls_5min.csv"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of bad inputs: binary, empty, a FIFO, a directory, a file in the way."""
    d = tmp_path_factory.mktemp("bad")
    (d / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (d / "empty.yaml").write_text("")
    (d / "empty.csv").write_text("")
    (d / "taken").write_text("a file where a directory is expected\n")
    (d / "not-a-db.sqlite3").write_text("just text\n")
    (d / "folder").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo")
    return d


@pytest.fixture(scope="module")
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another socket is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``d`` with its size and modification time."""
    return {str(p.relative_to(d)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in d.rglob("*")}


def run_bad(scratch: Path, argv: list[str], *expected: str, module: str = "acd.cli") -> str:
    """Run ``python -m module argv`` in ``scratch``; assert exit 2, no traceback, no writes."""
    before = snapshot(scratch)
    proc = subprocess.run([sys.executable, "-m", module, *argv], cwd=scratch, timeout=60,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output, output
    for fragment in expected:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    assert snapshot(scratch) == before, "a command that refused its input wrote something"
    return output


def test_sim_run_missing_scenario(scratch: Path) -> None:
    """A scenario that does not exist is named, with no run and no output directory."""
    run_bad(scratch, ["sim", "run", "nope.yaml"],
            "nope.yaml: <root>: cannot read file: no such file (given as scenario)")


def test_sim_run_every_bad_number_at_once(scratch: Path) -> None:
    """A directory as scenario and zero/negative/huge numbers are all reported, one line each."""
    out = run_bad(scratch, ["sim", "run", "folder", "-r", "0", "-j", "-2", "--seed", "-1",
                            "--days", "10000", "--scale", "0", "--out", "taken"],
                  "folder: <root>: cannot read file: it is a directory",
                  "<command line>: --replications: must be an integer from 1 to 1000 (got 0)",
                  "<command line>: --jobs: must be an integer from 1 to 256 (got -2)",
                  "<command line>: --seed: must be an integer >= 0 (got -1)",
                  "<command line>: --days: must be > 0 and <= 400 (got 10000.0)",
                  "<command line>: --scale: must be > 0 and <= 100 (got 0.0)",
                  "<command line>: --out: exists and is not a directory")
    assert "reference.yaml" not in out  # --days is the command line's, not the scenario's


def test_sim_run_negative_replications_fifo_and_blocked_out(scratch: Path) -> None:
    """-r -1, -j 0, a FIFO as call log and an --out below a file are refused before a run."""
    if not (scratch / "fifo").exists():
        pytest.skip("no FIFOs on this platform")
    run_bad(scratch, ["sim", "run", "-r", "-1", "-j", "0", "--replay", "fifo",
                      "--out", "taken/results"],
            "--replications: must be an integer from 1 to 1000 (got -1)",
            "--jobs: must be an integer from 1 to 256 (got 0)",
            "fifo: <root>: cannot read file: it is a FIFO (named pipe) (given as --replay)",
            "--out: ", "taken is not a directory")


def test_sim_run_binary_queue_log_and_huge_replications(scratch: Path) -> None:
    """A binary queue_log and a 20-digit replication count are both named with their values."""
    run_bad(scratch, ["sim", "run", "--queue-log", "binary.yaml", "-r", "9" * 20,
                      "--days", "nan"],
            "binary.yaml: <root>: file is not UTF-8 text (byte 128 is 0x80)",
            f"--replications: must be an integer from 1 to 1000 (got {'9' * 20})",
            "--days: must be > 0 and <= 400 (got nan)")


def test_sim_run_bare_date_gets_a_suggestion_that_works(scratch: Path) -> None:
    """--start with a bare date suggests a start that itself parses, never a doubled offset."""
    out = run_bad(scratch, ["sim", "run", "--start", "2026-03-02"],
                  "--start", "'2026-03-02'", "2026-03-02T00:00+03:00")
    assert "+03:00+03:00" not in out
    run_bad(scratch, ["sim", "run", "--start", "2026-03-02+03:00"],
            "'2026-03-02+03:00'", "2026-03-02T00:00+03:00")


def test_sim_run_empty_scenario(scratch: Path) -> None:
    """An empty scenario file is named as the file at fault."""
    run_bad(scratch, ["sim", "run", "empty.yaml", "--days", "0.05"],
            "empty.yaml:1: <root>: a scenario must be a mapping")


def test_sim_staff_bad_values(scratch: Path) -> None:
    """sim staff: a missing scenario, --seed -1 with --confirm, --busiest 0 and --out a file."""
    run_bad(scratch, ["sim", "staff", "nope.yaml", "--seed", "-1", "--confirm", "--busiest",
                      "0", "--days", "-3", "--out", "taken"],
            "nope.yaml: <root>: cannot read file: no such file",
            "<command line>: --seed: must be an integer >= 0 (got -1)",
            "<command line>: --busiest: must be an integer from 1 to 1000 (got 0)",
            "<command line>: --days: must be > 0 and <= 400 (got -3.0)",
            "<command line>: --out: exists and is not a directory; give a directory (got 'taken')")


def test_erlang_absurd_rates_are_refused_at_once(scratch: Path) -> None:
    """Rates of 10,000 and 1e9 calls/s are refused at once, with the per-hour spelling offered."""
    run_bad(scratch, ["erlang", "--rate", "10000", "--aht", "180"],
            "<command line>: --rate:", "1.8e+06 Erlangs", "--rate 10000/h", "(got 10000.0)")
    run_bad(scratch, ["erlang", "--rate", "1e9", "--aht", "180", "--agents", "10"],
            "<command line>: --rate:", "1.8e+11 Erlangs")


def test_erlang_near_infinite_patience_is_refused(scratch: Path) -> None:
    """A patience whose Erlang A series would need 1e10 terms is refused, naming the values."""
    run_bad(scratch, ["erlang", "--rate", "10", "--aht", "180", "--agents", "1000",
                      "--patience", "1e9"],
            "<command line>: --patience: times --rate 10/s is 1e+10 callers",
            "(got 1000000000.0)")


def test_erlang_every_bad_number_at_once(scratch: Path) -> None:
    """Negative, infinite, zero and percent-instead-of-share values are each reported."""
    run_bad(scratch, ["erlang", "--rate", "0", "--aht", "inf", "--agents", "0", "--target",
                      "85", "--threshold", "-5", "--patience", "-1"],
            "--rate: must be > 0 calls (got 0.0)", "--aht: must be > 0 seconds (got inf)",
            "--agents: must be from 1 to 1000000 (got 0)", "--target:", "(got 85.0)",
            "--threshold: must be >= 0 seconds (got -5.0)", "--patience:", "(got -1.0)")


def test_check_and_ivr_refuse_unreadable_configs(scratch: Path) -> None:
    """acd check and acd ivr name a binary, a directory or a FIFO given as the center file."""
    run_bad(scratch, ["check", "binary.yaml"], "binary.yaml: <root>: file is not UTF-8")
    run_bad(scratch, ["check", "folder"], "folder: <root>: cannot read file: it is a directory")
    config = "fifo" if (scratch / "fifo").exists() else "folder"
    run_bad(scratch, ["ivr", "check", "--config", config],
            f"{config}: <root>: cannot read file: it is a")


def test_ivr_trace_bad_values(scratch: Path) -> None:
    """ivr trace: an unknown flow, then a call time past the calendar, each named."""
    run_bad(scratch, ["ivr", "trace", "nope", "--caller", "+79161234567"],
            "nope: <root>: no such flow file or flow name", "main")
    run_bad(scratch, ["ivr", "trace", "main", "--caller", "+79161234567", "--at",
                      "9999-12-31T23:59", "--wait", "tech=1"],
            "<command line>: --at: must be within the years 1900 to 2200",
            "9999-12-31T23:59")


def test_serve_refuses_busy_and_foreign_addresses_and_a_directory_database(
        scratch: Path, busy_port: int, tmp_path: Path) -> None:
    """serve: a port in use, an address not on this machine and a directory database, at once."""
    settings = tmp_path / "service.yaml"
    settings.write_text(f"agi:\n  host: 192.0.2.1\n  port: 4573\n"
                        f"http:\n  host: 127.0.0.1\n  port: {busy_port}\n"
                        f"records:\n  database: {scratch / 'folder'}\n")
    run_bad(scratch, ["serve", "--config", str(settings)],
            f"{settings}: agi.host/agi.port: cannot listen on 192.0.2.1:4573",
            f"{settings}: http.host/http.port: cannot listen on 127.0.0.1:{busy_port}: "
            "address already in use",
            f"{settings}: records.database: is a directory")


def test_serve_missing_settings(scratch: Path) -> None:
    """serve --config naming no file says so."""
    run_bad(scratch, ["serve", "--config", "nope.yaml"],
            "nope.yaml: <root>: cannot read file: no such file (given as --config)")


def test_records_export_bad_paths(scratch: Path) -> None:
    """export: a missing database is not created; a text file as database and a dir as --out."""
    run_bad(scratch, ["records", "export", "--db", "nope.sqlite3", "--out", "calls.csv"],
            "<command line>: --db: no call records database here", "'nope.sqlite3'")
    run_bad(scratch, ["records", "export", "--db", "not-a-db.sqlite3", "--out", "folder"],
            "<command line>: --out: is a directory; give a file name (got 'folder')")
    run_bad(scratch, ["records", "export", "--db", "not-a-db.sqlite3", "--out", "calls.csv"],
            "<command line>: --db: not an SQLite database (got 'not-a-db.sqlite3')")


def test_records_export_bare_date_and_directory_database(scratch: Path, tmp_path: Path) -> None:
    """--since with a bare date gets a working suggestion; a directory database is named."""
    out = run_bad(scratch, ["records", "export", "--since", "2026-03-02", "--out", "calls.csv"],
                  "--since", "2026-03-02T00:00+03:00")
    assert "+03:00+03:00" not in out
    settings = tmp_path / "service.yaml"
    settings.write_text(f"records:\n  database: {scratch / 'folder'}\n")
    run_bad(scratch, ["records", "export", "--config", str(settings), "--out", "calls.csv"],
            f"{settings}: records.database: is a directory")


def test_traffic_profile_bad_inputs(scratch: Path) -> None:
    """`acd traffic profile`: a missing file, interval 20 and an empty CSV are refused."""
    run_bad(scratch, ["traffic", "profile", "nope.csv"],
            "nope.csv: <root>: cannot read file: no such file")
    run_bad(scratch, ["traffic", "profile", str(BANK), "20"],
            "argument interval: invalid choice: 20")
    run_bad(scratch, ["traffic", "profile", "empty.csv"],
            "empty.csv:1: <header>: missing column(s) DateTime, Calls")
