"""``acd ivr check`` and ``acd ivr trace`` against the reference center and flows."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from acd.errors import EXIT_BAD_INPUT, InputError
from ivr.cli import register

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str) -> tuple[int, str]:
    """Run ``acd ivr ...`` as ``acd.cli.main`` would; return the exit status and output."""
    parser = argparse.ArgumentParser(prog="acd")
    register(parser.add_subparsers(dest="command", required=True))
    console = Console(record=True, width=400)
    try:
        args = parser.parse_args(argv)
        code = args.func(args, console)
    except InputError as exc:
        return EXIT_BAD_INPUT, str(exc)
    except SystemExit as exc:
        return int(exc.code or 0), ""
    return code, console.export_text()


def test_reference_flows_check_ok() -> None:
    """Every shipped flow validates against the reference center."""
    code, out = run("ivr", "check")
    assert code == 0
    assert "flow main" in out and "flow callback" in out


def test_flow_by_name() -> None:
    """A flow can be named instead of given as a path."""
    code, out = run("ivr", "check", "main")
    assert code == 0 and "flow callback" not in out


def test_broken_flow_exits_2_with_file_line_and_value(tmp_path: Path) -> None:
    """An unknown queue and start node are reported with the file, line and bad value."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("flow: bad\nstart: nowhere\ndefault_queue: nosuch\n"
                   "prompts: {prompts: {}}\nnodes: {a: {type: queue}}\n", encoding="utf-8")
    code, message = run("ivr", "check", str(bad))
    assert code == EXIT_BAD_INPUT
    assert f"{bad}:3: default_queue" in message and "'nosuch'" in message
    assert "'nowhere'" in message


def test_unknown_flow_name_exits_2() -> None:
    """A flow name that is neither a file nor a shipped flow exits 2 listing the flows."""
    code, message = run("ivr", "trace", "nosuch", "--caller", "+79161234567")
    assert code == EXIT_BAD_INPUT and "main" in message


def test_trace_christmas_night_goes_to_voicemail() -> None:
    """Jan 7 03:00 Moscow, keys 2,1: orders is closed for the holiday, the call leaves a message."""
    code, out = run("ivr", "trace", "main", "--caller", "+79161234567", "--digits", "2,1",
                    "--at", "2026-01-07T03:00")
    assert code == 0
    assert "public holiday in RU" in out
    assert "result: voicemail" in out


def test_trace_wait_estimate_offers_callback() -> None:
    """A long wait given with --wait makes the flow offer a callback."""
    code, out = run("ivr", "trace", "main", "--caller", "+77012345678", "--digits=-,1,-",
                    "--at", "2026-03-04T12:00+03:00", "--wait", "tech=300")
    assert code == 0
    assert "offer callback" in out and "result: queued queue=tech language=kk" in out


def test_trace_bad_time_exits_2() -> None:
    """An --at that is not ISO 8601 is refused with exit status 2."""
    code, _ = run("ivr", "trace", "main", "--caller", "+79161234567", "--at", "tomorrow")
    assert code == EXIT_BAD_INPUT
