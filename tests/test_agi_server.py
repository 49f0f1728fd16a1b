"""The asyncio FastAGI server: dispatch, deadlines, hostile peers, capacity and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest

from acd.asterisk.agi import commands as cmd
from acd.asterisk.agi.codec import LocalProtocolError
from acd.asterisk.agi.commands import clean_text, split_command
from acd.asterisk.agi.server import (
    AgiSession,
    CommandTimeout,
    FastAgiServer,
    Handler,
    SessionClosed,
)
from acd.testing.fake_agi import FakeAsterisk, environment_block
from acd.testing.loadgen import held_sessions, hold_server, percentile, session_rate

Outcome = dict[str, object]


async def start(
    handlers: dict[str, Handler], *, header_timeout: float = 2.0, max_sessions: int = 100
) -> tuple[FastAgiServer, FakeAsterisk]:
    server = FastAgiServer(
        handlers.get, port=0, header_timeout=header_timeout, max_sessions=max_sessions
    )
    await server.start()
    return server, FakeAsterisk(server.port)


@pytest.fixture
async def servers() -> AsyncIterator[list[FastAgiServer]]:
    started: list[FastAgiServer] = []
    yield started
    for server in started:
        await server.close(grace=0.5)


def noting(outcome: Outcome, fn: Callable[[AgiSession], object]) -> Handler:
    """A handler that stores what ``fn`` returns (or raises) for the test to check."""

    async def handler(session: AgiSession) -> None:
        try:
            outcome["value"] = await fn(session)  # type: ignore[misc]
        except Exception as exc:
            outcome["error"] = exc
            raise

    return handler


async def test_scripted_call_dispatches_on_script_and_sets_variables(
    servers: list[FastAgiServer],
) -> None:
    """The handler for the URL's script runs with the call's environment; the socket closes."""
    outcome: Outcome = {}

    async def route(session: AgiSession) -> str:
        await session.set_variable("ACD_TARGET", f"PJSIP/{session.env.args[1]}")
        return f"{session.env.script}:{session.env.callerid}:{','.join(session.env.args)}"

    server, fake = await start({"route": noting(outcome, route)})
    servers.append(server)
    result = await fake.call("route?site=kyiv", callerid="+380441234567", args=["tech", "1001"])
    assert outcome["value"] == "route:+380441234567:tech,1001"
    assert result.commands == ["SET VARIABLE ACD_TARGET PJSIP/1001"]
    assert result.closed_by_server


async def test_unknown_script_logs_verbose_and_closes(
    servers: list[FastAgiServer], caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown script gets a VERBOSE line for the Asterisk console, then the socket closes."""
    server, fake = await start({})
    servers.append(server)
    with caplog.at_level(logging.WARNING):
        result = await fake.call("nosuch")
    assert len(result.commands) == 1 and result.commands[0].startswith("VERBOSE ")
    assert "nosuch" in result.commands[0]
    assert result.closed_by_server
    assert server.stats.unknown_scripts == 1
    assert "nosuch" in caplog.text


async def test_handler_exception_is_logged_and_socket_closed(
    servers: list[FastAgiServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A failing handler never leaves the call hanging: logged, counted, socket closed."""

    async def broken(session: AgiSession) -> None:
        await session.command(cmd.answer())
        raise ValueError("routing table missing")

    server, fake = await start({"route": broken})
    servers.append(server)
    with caplog.at_level(logging.ERROR):
        result = await fake.call("route")
    assert result.commands == ["ANSWER"] and result.closed_by_server
    assert server.stats.handler_errors == 1
    assert "routing table missing" in caplog.text


async def test_slowloris_header_is_cut_at_the_header_deadline(
    servers: list[FastAgiServer],
) -> None:
    """Header bytes trickled slowly do not hold a session: the server closes at its deadline."""
    server, fake = await start(
        {"route": noting({}, lambda s: s.command(cmd.answer()))}, header_timeout=0.4
    )
    servers.append(server)
    call = await fake.connect()
    started = time.perf_counter()
    block = environment_block("route")
    closed = False
    for i in range(len(block)):
        try:
            await call.send(block[i : i + 1])
        except ConnectionError:
            closed = True
            break
        if call.reader.at_eof() or await call.wait_closed(timeout=0.05):
            closed = True
            break
    elapsed = time.perf_counter() - started
    assert closed and elapsed < 1.5
    assert server.stats.header_timeouts == 1
    assert call.commands == []


async def test_silent_client_is_closed_at_the_header_deadline(
    servers: list[FastAgiServer],
) -> None:
    """A connection that says nothing is closed once the header deadline passes."""
    server, fake = await start({}, header_timeout=0.2)
    servers.append(server)
    call = await fake.connect()
    assert await call.wait_closed(timeout=2.0)
    assert server.stats.header_timeouts == 1


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"agi_network: yes\nagi_network_script: route\n", id="eof-mid-header"),
        pytest.param(b"".join(b"agi_x%d: y\n" % n for n in range(300)), id="too-many-lines"),
        pytest.param(b"agi_calleridname: " + b"x" * 65536 + b"\n\n", id="64k-line"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http-request"),
    ],
)
async def test_bad_headers_close_without_running_a_handler(
    servers: list[FastAgiServer], data: bytes
) -> None:
    """Broken or hostile header blocks close the socket; no handler runs, nothing is sent."""
    outcome: Outcome = {}
    server, fake = await start({"route": noting(outcome, lambda s: s.command(cmd.answer()))})
    servers.append(server)
    call = await fake.connect()
    with contextlib.suppress(ConnectionError):
        await call.send(data)
    if data.startswith(b"agi_network: yes"):
        call.writer.write_eof()
    assert await call.wait_closed(timeout=2.0)
    assert outcome == {} and call.commands == []
    assert server.stats.protocol_errors == 1


async def test_hostile_caller_name_travels_safely_quoted(servers: list[FastAgiServer]) -> None:
    """Quotes, backslashes, CR, tabs and 4 KiB of caller name reach Asterisk as one cleaned
    argument; the raw name with its CR is refused rather than sent."""
    name = 'Evil "Bob" \\ \r\t; SET VARIABLE X 1 ' + "Я" * 2000
    outcome: Outcome = {}

    async def route(session: AgiSession) -> str:
        with pytest.raises(LocalProtocolError):
            cmd.set_variable("ACD_CALLER_NAME", session.env.calleridname)
        await session.set_variable("ACD_CALLER_NAME", clean_text(session.env.calleridname))
        return session.env.calleridname

    server, fake = await start({"route": noting(outcome, route)})
    servers.append(server)
    result = await fake.call("route", calleridname=name)
    assert outcome["value"] == name
    (line,) = result.commands
    expected = name.replace("\r", " ").replace("\t", " ")[:256]
    assert split_command(line) == ["SET", "VARIABLE", "ACD_CALLER_NAME", expected]


async def test_nul_in_caller_name_is_refused_before_the_wire(
    servers: list[FastAgiServer],
) -> None:
    """A NUL would truncate the command in Asterisk: the session refuses, nothing is sent."""
    outcome: Outcome = {}

    async def route(session: AgiSession) -> None:
        await session.set_variable("ACD_CALLER_NAME", session.env.calleridname)

    server, fake = await start({"route": noting(outcome, route)})
    servers.append(server)
    result = await fake.call("route", calleridname="Bob\x00; HANGUP")
    assert isinstance(outcome["error"], LocalProtocolError)
    assert result.commands == [] and result.closed_by_server


async def test_newline_in_caller_name_breaks_the_header_and_closes(
    servers: list[FastAgiServer],
) -> None:
    """A caller name with LF splits the header line; the server refuses it and closes."""
    server, fake = await start({"route": noting({}, lambda s: s.command(cmd.answer()))})
    servers.append(server)
    result = await fake.call("route", calleridname="Bob\nANSWER")
    assert result.commands == [] and result.closed_by_server
    assert server.stats.protocol_errors == 1


async def test_command_deadline_closes_a_silent_asterisk(servers: list[FastAgiServer]) -> None:
    """No reply within the command deadline raises CommandTimeout and closes the socket."""
    outcome: Outcome = {}
    server, fake = await start(
        {"route": noting(outcome, lambda s: s.command(cmd.answer(), timeout=0.2))}
    )
    servers.append(server)
    call = await fake.connect()
    await call.send_environment(environment_block("route"))
    assert await call.read_command() == "ANSWER"
    assert await call.wait_closed(timeout=2.0)
    assert isinstance(outcome["error"], CommandTimeout)


async def test_garbage_after_hangup_closes_the_session(servers: list[FastAgiServer]) -> None:
    """After HANGUP, a non-AGI line ends the session: the handler sees SessionClosed."""
    outcome: Outcome = {}
    server, fake = await start({"route": noting(outcome, lambda s: s.command(cmd.noop()))})
    servers.append(server)
    call = await fake.connect()
    await call.send_environment(environment_block("route"))
    await call.expect("NOOP")
    await call.send(b"HANGUP\n<html>oops</html>\n")
    assert await call.wait_closed(timeout=2.0)
    assert isinstance(outcome["error"], SessionClosed)


async def test_asterisk_closing_mid_command_raises_session_closed(
    servers: list[FastAgiServer],
) -> None:
    """EOF while waiting for a reply fails the command at once instead of hanging."""
    outcome: Outcome = {}
    server, fake = await start({"route": noting(outcome, lambda s: s.command(cmd.answer()))})
    servers.append(server)
    call = await fake.connect()
    await call.send_environment(environment_block("route"))
    await call.expect("ANSWER")
    await call.close()
    for _ in range(100):
        if "error" in outcome:
            break
        await asyncio.sleep(0.01)
    assert isinstance(outcome["error"], SessionClosed)


async def test_hangup_while_holding_wakes_the_handler(servers: list[FastAgiServer]) -> None:
    """An unprompted HANGUP during music on hold wakes wait_for_hangup; 511 follows for media."""
    outcome: Outcome = {}

    async def hold(session: AgiSession) -> tuple[bool, bool, int]:
        await session.command(cmd.set_music(True))
        woke = await session.wait_for_hangup(timeout=5.0)
        reply = await session.command(cmd.stream_file("beep"))
        return woke, session.hung_up, reply.code

    server, fake = await start({"hold": noting(outcome, hold)})
    servers.append(server)
    call = await fake.connect()
    await call.send_environment(environment_block("hold"))
    await call.expect("SET MUSIC ON default", "200 result=0")
    await call.hangup()
    await call.expect('STREAM FILE beep ""', "511 Command Not Permitted on a dead channel")
    assert await call.wait_closed()
    assert outcome["value"] == (True, True, 511)


async def test_over_capacity_connections_are_closed_at_once(
    servers: list[FastAgiServer],
) -> None:
    """With max_sessions reached, a new connection is closed immediately (dialplan fallback)."""
    release = asyncio.Event()

    async def hold(session: AgiSession) -> None:
        await session.command(cmd.set_music(True))
        await release.wait()

    server, fake = await start({"hold": hold}, max_sessions=1)
    servers.append(server)
    first = await fake.connect()
    await first.send_environment(environment_block("hold"))
    await first.expect("SET MUSIC ON default", "200 result=0")
    second = await fake.connect()
    started = time.perf_counter()
    assert await second.wait_closed(timeout=1.0)
    assert time.perf_counter() - started < 0.5
    assert server.stats.sessions_rejected == 1
    release.set()
    assert await first.wait_closed()


async def test_close_stops_accepting_and_bounds_the_wait_for_sessions() -> None:
    """close() cancels sessions still running after the grace period and closes their sockets."""
    outcome: Outcome = {}

    async def hold(session: AgiSession) -> None:
        await session.command(cmd.set_music(True))
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome["cancelled"] = True
            raise

    server, fake = await start({"hold": hold})
    call = await fake.connect()
    await call.send_environment(environment_block("hold"))
    await call.expect("SET MUSIC ON default", "200 result=0")
    started = time.perf_counter()
    await server.close(grace=0.2)
    assert time.perf_counter() - started < 2.0
    assert outcome == {"cancelled": True}
    assert await call.wait_closed(timeout=1.0)
    with pytest.raises(OSError):
        await fake.connect()


async def test_commands_from_two_tasks_are_serialised(servers: list[FastAgiServer]) -> None:
    """Two tasks sharing a session get their own replies, one command in flight at a time."""
    outcome: Outcome = {}

    async def route(session: AgiSession) -> list[str | None]:
        return list(
            await asyncio.gather(session.get_variable("A"), session.get_variable("B"))
        )

    server, fake = await start({"route": noting(outcome, route)})
    servers.append(server)
    await fake.call("route", reply=lambda c: f"200 result=1 ({c[-1]})")
    assert outcome["value"] == ["A", "B"]


async def test_many_sessions_at_once(servers: list[FastAgiServer]) -> None:
    """Fifty concurrent calls each get their own conversation and all sockets close."""

    async def route(session: AgiSession) -> None:
        await session.set_variable("ACD_CALLER", session.env.callerid.lstrip("+"))

    server, fake = await start({"route": route})
    servers.append(server)
    results = await asyncio.gather(
        *(fake.call("route", callerid=f"+7916{n:07d}") for n in range(50))
    )
    assert sorted(r.commands[0] for r in results) == sorted(
        f"SET VARIABLE ACD_CALLER 7916{n:07d}" for n in range(50)
    )
    assert all(r.closed_by_server for r in results)
    assert server.stats.peak_sessions >= 2



async def test_load_generator_holds_and_releases_sessions() -> None:
    """The load generator's phases complete against the hold server with exact counts."""
    server = hold_server()
    await server.start()
    try:
        held = await held_sessions("127.0.0.1", server.port, 40, timeout=5.0)
        rate = await session_rate("127.0.0.1", server.port, 30, concurrency=4)
    finally:
        await server.close(grace=1.0)
    assert (held.peak_held, held.sessions, held.failures) == (40, 40, 0)
    assert server.stats.peak_sessions == 40
    assert (rate.sessions, rate.failures, len(rate.ttfc)) == (30, 0, 30)
    assert server.stats.sessions_started == 70 and server.active_sessions == 0


def test_percentile_uses_nearest_rank() -> None:
    """p50 and p99 of 1..100 are 50 and 99; an empty sample is NaN."""
    values = [float(v) for v in range(100, 0, -1)]
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (
        50.0,
        99.0,
        100.0,
    )
    assert percentile([], 50) != percentile([], 50)


async def test_a_2000_character_script_name_is_cut_in_the_reply_and_the_log(
    servers: list[FastAgiServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A ~2,000-character unknown script name is repeated cut to 64 characters: the VERBOSE
    reply stays far below the 2,046-byte command cap and no log line carries the whole name."""
    server, fake = await start({})
    servers.append(server)
    name = "s" * 1990 + "\x1b[2J"
    with caplog.at_level(logging.INFO):
        result = await fake.call(name)
    assert len(result.commands) == 1 and result.commands[0].startswith("VERBOSE ")
    assert len(result.commands[0]) < 200 and "s" * 64 + "..." in result.commands[0]
    assert result.closed_by_server
    assert server.stats.unknown_scripts == 1 and server.stats.handler_errors == 0
    assert caplog.records and all(len(r.getMessage()) < 300 for r in caplog.records)
    assert "\x1b" not in caplog.text


async def test_a_host_name_binds_its_ipv4_address(servers: list[FastAgiServer]) -> None:
    """``localhost`` listens on 127.0.0.1 (where Asterisk connects), whatever the resolver
    lists first."""
    server = FastAgiServer({}.get, host="localhost", port=0)
    await server.start()
    servers.append(server)
    call = await FakeAsterisk(server.port, "127.0.0.1").connect()
    await call.send_environment(environment_block("nosuch"))
    assert (await call.read_command() or "").startswith("VERBOSE ")
