"""``acd erlang``: Erlang C/A figures and staffing from the command line; bad input exits 2."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import pytest
from rich.console import Console

from acd.cli import parse_args
from acd.errors import EXIT_BAD_INPUT, InputError
from sim.cli import parse_rate
from sim.erlang import ErlangA, agents_for_service_level, erlang_b


def run(*argv: str) -> tuple[int, str]:
    """Run ``acd erlang ...`` as ``acd.cli.main`` would; return the exit status and output."""
    console = Console(record=True, width=160)
    try:
        args = parse_args(argv)  # checks the values, as main does
        code = args.func(args, console)
    except InputError as exc:
        return EXIT_BAD_INPUT, str(exc)
    except SystemExit as exc:  # argparse rejects the value itself
        return int(exc.code or 0), ""
    return code, console.export_text()


def test_reference_queue_matches_erlang_c() -> None:
    """0.5 calls/s, AHT 180 s, 98 agents: SL 87.37% and 98 agents needed for 85/20."""
    code, out = run("erlang", "--rate", "0.5", "--aht", "180", "--agents", "98")
    assert code == 0
    assert "87.37%" in out
    assert "Erlang C 98 agents" in out


def test_patience_adds_erlang_a_and_its_staffing() -> None:
    """With --patience the Erlang A column and its (smaller) staffing appear."""
    code, out = run("erlang", "--rate", "1800/h", "--aht", "180", "--agents", "98",
                    "--patience", "300")
    assert code == 0
    assert "Erlang A" in out and "abandon rate" in out
    assert "Erlang A (patience 300 s) 94 agents" in out


def test_unstable_queue_is_reported_not_crashed() -> None:
    """Fewer agents than Erlangs of load prints an unstable queue with SL 0."""
    code, out = run("erlang", "--rate", "0.5", "--aht", "180", "--agents", "90")
    assert code == 0 and "unstable" in out


@pytest.mark.parametrize("argv", [
    ("--rate", "0.5", "--aht", "-3"),
    ("--rate", "0.5", "--aht", "180", "--target", "85"),
    ("--rate", "0.5", "--aht", "180", "--agents", "0"),
    ("--rate", "5/fortnight", "--aht", "180"),
    ("--rate", "0.5", "--aht", "180", "--patience", "0"),
])
def test_bad_arguments_exit_2(argv: tuple[str, ...]) -> None:
    """Negative times, a target given in percent, zero agents or an unknown unit exit 2."""
    code, _ = run("erlang", *argv)
    assert code == EXIT_BAD_INPUT


def test_bad_value_names_the_option() -> None:
    """The message names the option and the value."""
    _, message = run("erlang", "--rate", "0.5", "--aht", "180", "--target", "85")
    assert "--target" in message and "85" in message


def test_rate_units() -> None:
    """Rates with a unit are converted to calls per second."""
    assert parse_rate("0.5") == 0.5
    assert parse_rate("1800/h") == pytest.approx(0.5)
    assert parse_rate("30/min") == pytest.approx(0.5)
    assert parse_rate("43200/day") == pytest.approx(0.5)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate("fast")


def _blocking_by_full_recursion(agents: int, load: float) -> float:
    """Erlang B by the textbook recursion, every step taken."""
    b = 1.0
    for k in range(1, agents + 1):
        b = load * b / (k + load * b)
    return b


@pytest.mark.parametrize(("agents", "load"), [
    (98, 90.0), (1, 0.5), (400, 350.5), (2000, 10.0), (5000, 1.0), (30, 0.0)])
def test_erlang_b_stopping_at_underflow_is_exact(agents: int, load: float) -> None:
    """Erlang B stops once it underflows to 0, giving exactly the full recursion's value."""
    assert erlang_b(agents, load) == _blocking_by_full_recursion(agents, load)


@pytest.mark.parametrize("compute", [
    lambda: agents_for_service_level(1e9, 180, 20, 0.85),
    lambda: agents_for_service_level(1e9, 180, 20, 0.85, "A", 60),
    lambda: ErlangA(10, 180, 1000, 1e9),
    lambda: erlang_b(10**12, 1e11),
])
def test_absurd_queues_are_refused_at_once(compute: Callable[[], object]) -> None:
    """Queues no staffing can serve raise ValueError within seconds instead of looping."""
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"agents|terms|steps"):
        compute()
    assert time.perf_counter() - started < 5.0


def test_huge_staffing_of_a_small_load_answers_at_once() -> None:
    """A million agents for a small load: no wait, at once (Erlang B underflows early)."""
    started = time.perf_counter()
    assert erlang_b(10**12, 5.0) == 0.0
    assert ErlangA(0.5, 180, 1_000_000, 60).p_wait == 0.0
    assert time.perf_counter() - started < 5.0
