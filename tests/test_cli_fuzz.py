"""Random command lines: the parser and its checks either accept them or refuse them as usage.

Hypothesis builds argument vectors from each subcommand's options, awkward values and random
text, and hands them to :func:`acd.cli.parse_args` in-process (nothing is run). The only ways out
are a namespace, a :class:`UsageError` whose every line names its source, or ``SystemExit(2)``
after argparse printed an error: never another exception, and never a file written.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from acd.cli import parse_args
from acd.errors import COMMAND_LINE, EXIT_BAD_INPUT, UsageError

COMMANDS = {
    ("sim", "run"): ["--days", "--start", "--scale", "--replay", "--queue-log", "--queue-map",
                     "--default-language", "--default-country", "--strict", "-r", "--seed",
                     "-j", "--out", "--check", "-q"],
    ("sim", "staff"): ["--days", "--model", "--confirm", "--busiest", "-r", "--seed", "--out"],
    ("erlang",): ["--rate", "--aht", "--agents", "--threshold", "--target", "--patience"],
    ("ivr", "check"): ["--config", "--flow-dir"],
    ("ivr", "trace"): ["--config", "--flow-dir", "--caller", "--digits", "--at", "--wait",
                       "--order"],
    ("check",): [],
    ("serve",): ["--config"],
    ("records", "export"): ["--db", "--config", "--out", "--since", "--until"],
    ("traffic", "profile"): [],
    (): [],
}
#: Options a command cannot run without: given (with a drawn value) in most examples.
REQUIRED = {("erlang",): ["--rate", "--aht"], ("ivr", "trace"): ["--caller"],
            ("records", "export"): ["--out"]}
VALUES = ["0", "-1", "-2", "1", "5", "0.05", "1e9", "1e400", "nan", "inf", "-inf", "abc", "",
          "9" * 30, "2026-03-02", "2026-03-02+03:00", "2026-03-02T00:00+03:00",
          "9999-12-31T23:59", "0001-01-01T00:00+00:00", "nope.yaml", "folder", "taken",
          "binary.yaml", "fifo", "empty.yaml", "10000/h", "5/fortnight", "0.5", "180", "85",
          "+79161234567", "tech=1", "tech=-1", "x=y", "15", "20", "A", "C", "all", "main",
          "-", "--", "--unknown"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A working directory holding awkward inputs, current while the module's tests run."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "binary.yaml").write_bytes(bytes(range(256)))
    (d / "empty.yaml").write_text("")
    (d / "taken").write_text("a file\n")
    (d / "folder").mkdir()
    if hasattr(os, "mkfifo"):
        os.mkfifo(d / "fifo")
    with contextlib.chdir(d):
        yield d


def snapshot(d: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``d`` with its size and modification time."""
    return {str(p.relative_to(d)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in d.rglob("*")}


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A subcommand followed by a few of its options, values and random words, in any order."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    value = st.one_of(st.sampled_from(VALUES), st.text(max_size=8))
    # Mostly option-value pairs (so the checks behind the parser are reached), some loose words.
    pair = st.tuples(st.sampled_from(COMMANDS[command] or ["--x"]), value).map(list)
    items = st.lists(st.one_of(pair, pair, pair, value.map(lambda v: [v])), max_size=5)
    required = [w for option in REQUIRED.get(command, []) for w in (option, draw(value))]
    return [*command, *required, *(word for item in draw(items) for word in item)]


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines())
def test_random_command_lines_parse_or_are_refused_as_usage(argv: list[str],
                                                            scratch: Path) -> None:
    """Any argument vector parses, or is refused with exit 2 and a message; nothing is written."""
    before = snapshot(scratch)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            args = parse_args(argv)
    except UsageError as exc:
        event("refused: usage error")
        assert exc.problems
        for problem in exc.problems:
            line = str(problem)
            assert line.startswith(COMMAND_LINE) or "(given as " in line, line
    except SystemExit as exc:
        event("refused: argparse")
        assert exc.code == EXIT_BAD_INPUT, argv
        assert f"{COMMAND_LINE}: acd" in stderr.getvalue(), stderr.getvalue()
    else:
        event("accepted")
        assert callable(args.func)
    assert snapshot(scratch) == before
