"""Asyncio FastAGI server: one session per call, dispatched on the script name in the AGI URL.

Asterisk has no read timeout on a FastAGI socket: a server that stops talking holds the call
forever. So every path here ends by closing the socket, every wait has a deadline, and a
session that loses sync (timeout, cancellation, garbage) is closed rather than reused.

The dialplan should not rely on ``AGISTATUS`` alone: it is ``SUCCESS`` whenever the server
closes the socket cleanly (also for an unknown script, or when the server is over capacity
and closes at once), and ``FAILURE`` when any command returned -1 on a live channel (a missing
prompt, for instance). Have the handler set a channel variable (e.g. ``ACD_TARGET``) and take
the fallback branch when it is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

from acd.asterisk.agi import commands
from acd.asterisk.agi.codec import (
    DEFAULT_LIMITS,
    NEED_DATA,
    AgiConnection,
    AgiEnvironment,
    ConnectionClosed,
    Environment,
    HangupNotice,
    Limits,
    RemoteProtocolError,
    Reply,
)

log = logging.getLogger(__name__)

_READ_CHUNK = 65536


class SessionClosed(Exception):
    """The FastAGI connection is gone (or was closed because it lost sync)."""


class CommandTimeout(SessionClosed):
    """Asterisk did not answer a command within its deadline; the session was closed."""


class AgiSession:
    """One call's FastAGI conversation: send commands, get replies, learn about hangups."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        connection: AgiConnection,
        *,
        command_timeout: float = 120.0,
    ) -> None:
        if connection.environment is None:
            raise ValueError("An AgiSession needs a connection whose environment was read.")
        self.env: AgiEnvironment = connection.environment
        self.command_timeout = command_timeout
        self._reader = reader
        self._writer = writer
        self._conn = connection
        self._lock = asyncio.Lock()
        self._pending: asyncio.Future[Reply] | None = None
        self._hangup = asyncio.Event()
        self._closed_reason: str | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @property
    def hung_up(self) -> bool:
        """True once Asterisk said HANGUP, answered 511, or the connection ended."""
        return self._hangup.is_set()

    @property
    def closed(self) -> bool:
        """True once no further command can be sent."""
        return self._closed_reason is not None

    def start(self) -> None:
        """Start reading from the socket (replies and out-of-band HANGUP lines)."""
        if self._reader_task is None:
            self._reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def wait_for_hangup(self, timeout: float | None = None) -> bool:
        """Wait until the caller hangs up (or the connection ends); False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._hangup.wait()
        except TimeoutError:
            return False
        return True

    async def command(self, command: bytes, *, timeout: float | None = None) -> Reply:
        """Send one command (from `acd.asterisk.agi.commands`) and return Asterisk's reply.

        After a hangup the command is still sent: Asterisk answers 511 for commands it refuses
        on a dead channel, and runs the rest (GET/SET VARIABLE, EXEC, ...). Raises
        `CommandTimeout` when no reply comes within ``timeout`` (default `command_timeout`)
        and `SessionClosed` when the connection is gone; both leave the session closed.
        """
        deadline = self.command_timeout if timeout is None else timeout
        async with self._lock:
            if self._closed_reason is not None:
                raise SessionClosed(f"The AGI session is closed: {self._closed_reason}")
            wire = self._conn.send_command(command)
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._pending = future
            completed = False
            try:
                async with asyncio.timeout(deadline):
                    self._writer.write(wire)
                    await self._writer.drain()
                    reply = await future
                completed = True
                return reply
            except TimeoutError:
                reason = f"no reply to {wire!r} within {deadline} s"
                self._abort(reason)
                raise CommandTimeout(reason) from None
            except ConnectionError as exc:
                self._abort(f"the socket failed while sending {wire!r}: {exc}")
                raise SessionClosed(self._closed_reason) from exc
            finally:
                self._pending = None
                if not completed:
                    # A command without its reply leaves the stream out of sync: never reuse it.
                    self._abort(f"{wire!r} did not complete")

    async def get_variable(self, name: str) -> str | None:
        """Value of a channel variable or function such as ``CALLERID(num)``; None if unset."""
        return commands.variable_value(await self.command(commands.get_variable(name)))

    async def set_variable(self, name: str, value: str) -> Reply:
        """Set a channel variable (the dialplan reads it after the session ends)."""
        return await self.command(commands.set_variable(name, value))

    async def aclose(self) -> None:
        """Stop reading and close the socket (bounded; safe to call twice)."""
        self._abort("the session ended")
        task, self._reader_task = self._reader_task, None
        if task is not None:
            await _cancel_and_wait(task)
        await _close_writer(self._writer)

    def _abort(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        self._hangup.set()
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(SessionClosed(reason))
        self._writer.close()

    async def _read_loop(self) -> None:
        try:
            while not self._dispatch_buffered():
                data = await self._reader.read(_READ_CHUNK)
                self._conn.receive_data(data)
        except RemoteProtocolError as exc:
            log.warning("Asterisk broke the AGI protocol on %s: %s", self.env.channel, exc)
            self._abort(f"protocol error: {exc}")
        except (ConnectionError, OSError) as exc:
            self._abort(f"socket error: {exc}")
        finally:
            self._abort("the connection ended")

    def _dispatch_buffered(self) -> bool:
        """Hand buffered events to their waiters; True once the peer has closed."""
        while True:
            event = self._conn.next_event()
            if event is NEED_DATA:
                return False
            if isinstance(event, Reply):
                if self._pending is not None and not self._pending.done():
                    self._pending.set_result(event)
                if event.code == 511:
                    self._hangup.set()
            elif isinstance(event, HangupNotice):
                self._hangup.set()
            elif isinstance(event, ConnectionClosed):
                self._abort("Asterisk closed the connection")
                return True


Handler = Callable[[AgiSession], Awaitable[None]]
HandlerLookup = Callable[[str], Handler | None]


@dataclass
class ServerStats:
    """Counters a FastAGI server keeps (for logs, metrics and the load benchmark)."""

    sessions_started: int = 0
    sessions_rejected: int = 0
    unknown_scripts: int = 0
    header_timeouts: int = 0
    protocol_errors: int = 0
    handler_errors: int = 0
    peak_sessions: int = 0


class FastAgiServer:
    """Accepts FastAGI connections and runs the handler registered for each script name.

    ``handler_for_script`` maps the URL script (``agi://host/<script>?query``, without the
    query) to ``async def handler(session) -> None``, or None for an unknown script. The
    socket is closed when the handler returns or raises, so the dialplan continues.
    """

    def __init__(
        self,
        handler_for_script: HandlerLookup,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        header_timeout: float = 5.0,
        command_timeout: float = 120.0,
        max_sessions: int = 2000,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.handler_for_script = handler_for_script
        self.host = host
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        self.limits = limits
        self.stats = ServerStats()
        self._requested_port = port
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("The FastAGI server is not listening; call start() first.")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        """Connections being served right now."""
        return len(self._sessions)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await asyncio.start_server(
            self._on_connect, self.host, self._requested_port, backlog=4096
        )

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give running sessions ``grace`` seconds, then cancel the rest."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        running = set(self._sessions)
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or len(self._sessions) >= self.max_sessions:
            # Close at once so the dialplan's fallback runs now rather than after a timeout.
            self.stats.sessions_rejected += 1
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        self.stats.sessions_started += 1
        self.stats.peak_sessions = max(self.stats.peak_sessions, len(self._sessions))
        try:
            await self._serve(reader, writer)
        finally:
            self._sessions.discard(task)
            await _close_writer(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = AgiConnection(self.limits)
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.header_timeout):
                env = await _read_environment(reader, connection)
        except TimeoutError:
            self.stats.header_timeouts += 1
            log.warning(
                "No AGI environment from %s within %s s; closing.", peer, self.header_timeout
            )
            return
        except RemoteProtocolError as exc:
            self.stats.protocol_errors += 1
            log.warning("Bad AGI environment from %s: %s", peer, exc)
            return
        except (ConnectionError, OSError) as exc:
            log.info("Connection from %s failed before the environment: %s", peer, exc)
            return
        if env is None:
            return
        session = AgiSession(reader, writer, connection, command_timeout=self.command_timeout)
        session.start()
        try:
            await self._run_handler(env, session)
        finally:
            await session.aclose()

    async def _run_handler(self, env: AgiEnvironment, session: AgiSession) -> None:
        try:
            handler = self.handler_for_script(env.script)
            if handler is None:
                self.stats.unknown_scripts += 1
                log.warning("No FastAGI handler for script %r (%s).", env.script, env.channel)
                notice = f"acd: no FastAGI script named {env.script!r}; the dialplan continues"
                await session.command(commands.verbose(_printable(notice)), timeout=2.0)
                return
            await handler(session)
        except SessionClosed as exc:
            log.info("AGI session for %s ended early: %s", env.channel, exc)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("FastAGI handler for %r failed on %s.", env.script, env.channel)


async def _read_environment(
    reader: asyncio.StreamReader, connection: AgiConnection
) -> AgiEnvironment | None:
    """Read until the environment block is complete; None if the peer closed first."""
    while True:
        event = connection.next_event()
        if isinstance(event, Environment):
            return event.env
        if isinstance(event, ConnectionClosed):
            return None
        if event is NEED_DATA:
            connection.receive_data(await reader.read(_READ_CHUNK))
        else:
            raise RemoteProtocolError(f"Expected the environment block first, got {event!r}.")


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)


async def _cancel_and_wait(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
