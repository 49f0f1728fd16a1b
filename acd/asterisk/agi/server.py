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
import errno
import logging
import os
import socket
import time
from collections import deque
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
from acd.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

_READ_CHUNK = 65536
#: Longest script name a log line or a reply repeats (the rest is cut, marked with "...").
MAX_SCRIPT_SHOWN = 64
#: errno values of ``accept()`` that mean "no file descriptor (or memory) for a new socket".
_OUT_OF_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


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
        accepted_at: float | None = None,
        on_first_command: Callable[[float], None] | None = None,
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
        #: ``time.monotonic()`` when the connection was accepted (None: not measured).
        self.accepted_at = accepted_at
        self._on_first_command = on_first_command

    @property
    def peer_host(self) -> str | None:
        """The address the connection comes from (the PBX's), None when unknown."""
        peer = self._writer.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) and peer else None

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
            if self._on_first_command is not None:
                first, self._on_first_command = self._on_first_command, None
                if self.accepted_at is not None:
                    first(time.monotonic() - self.accepted_at)
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
            await cancel_and_wait(task)
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


class Listener:
    """A listening TCP socket with its own accept loop, kept within a file-descriptor budget.

    asyncio's own accept loop, when ``accept()`` fails for want of a file descriptor, logs
    "socket.accept() out of system resource" for every attempt and leaves the connections in
    the kernel backlog, where callers wait with no answer. Here one descriptor is kept spare:
    when ``accept()`` fails with EMFILE/ENFILE, the spare is closed, the waiting connection
    accepted and reset at once (so Asterisk takes the dialplan fallback now), and the spare
    opened again; one warning per ``log_every_s`` counts the connections closed that way.
    ``admit()`` is asked before each accepted socket is handed to ``on_socket``; when it says
    no, the socket is reset at once as well.
    """

    def __init__(self, on_socket: Callable[[socket.socket], None], host: str, port: int, *,
                 admit: Callable[[], bool] = lambda: True, name: str = "listener",
                 backlog: int = 4096, log_every_s: float = 10.0) -> None:
        self.on_socket = on_socket
        self.admit = admit
        self.name = name
        self.log_every_s = log_every_s
        self.refused_no_fd = 0
        self.refused_over_budget = 0
        # IPv4 when the host has an IPv4 address (``localhost`` included), else IPv6.
        families = {info[0] for info in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)}
        family = socket.AF_INET if socket.AF_INET in families else socket.AF_INET6
        self._sock = socket.create_server((host, port), family=family, backlog=backlog)
        self._sock.setblocking(False)
        self._spare: int | None = _open_spare()
        self._loop = asyncio.get_running_loop()
        self._paused: asyncio.TimerHandle | None = None
        self._logged_at = -float("inf")
        self._unlogged = 0
        self._loop.add_reader(self._sock.fileno(), self._accept_ready)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._sock.getsockname()[1])

    def close(self) -> None:
        """Stop accepting and close the socket and the spare descriptor (safe twice)."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        if self._paused is not None:
            self._paused.cancel()
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None

    def _accept_ready(self) -> None:
        for _ in range(256):  # then let the other callbacks of this loop turn run
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _OUT_OF_FDS:
                    log.warning("%s: accept() failed: %s", self.name, exc)
                    return
                if not self._refuse_without_fd():
                    return
                continue
            if not self.admit():
                self.refused_over_budget += 1
                _reset(conn)
                continue
            conn.setblocking(False)
            self.on_socket(conn)

    def _refuse_without_fd(self) -> bool:
        """Out of descriptors: reset the next waiting connection with the spare one.
        False when that is impossible (accepting pauses briefly rather than spinning)."""
        if self._spare is not None:
            os.close(self._spare)
            self._spare = None
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                # Linux wants a free descriptor before it looks at the backlog: empty.
                self._spare = _open_spare()
                return False
            except OSError:
                conn = None
            if conn is not None:
                _reset(conn)
                self._note_refusal()
            self._spare = _open_spare()
            if conn is not None:
                return True
        # No spare descriptor to be had: stop reading for a moment instead of spinning.
        self._loop.remove_reader(self._sock.fileno())
        self._paused = self._loop.call_later(0.1, self._resume)
        return False

    def _resume(self) -> None:
        self._paused = None
        if self._sock.fileno() >= 0:
            self._loop.add_reader(self._sock.fileno(), self._accept_ready)

    def _note_refusal(self) -> None:
        self.refused_no_fd += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= self.log_every_s:
            soft = _nofile_soft()
            log.warning("%s: out of file descriptors (nofile limit %s): %d connection(s) "
                        "closed at once, so the dialplan takes its fallback", self.name, soft,
                        self._unlogged)
            self._logged_at = now
            self._unlogged = 0


def _open_spare() -> int | None:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def _nofile_soft() -> int | str:
    try:
        import resource
    except ImportError:  # not a POSIX system
        return "unknown"
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _reset(conn: socket.socket) -> None:
    """Close at once: the peer reads end-of-file (or a reset, if it had already sent data)."""
    conn.close()


class Admission:
    """Latency-based admission control: turn new calls away while the service is late.

    Two signals, both cheap: the event loop's lag, measured by a periodic timer that notes
    how late it fires (and, between firings, how overdue the next one already is); and the
    time to first command, the time from a connection's accept to its first command, as
    reported by each session (the mean over the last two ``window_s`` windows) and, for the
    call being judged, the time it has already waited. A bound of None switches a signal off.
    """

    def __init__(self, max_loop_lag_s: float | None = 0.05, max_ttfc_s: float | None = 0.05,
                 *, probe_interval_s: float = 0.02, window_s: float = 0.5,
                 on_shed: Callable[[str], None] | None = None) -> None:
        self.max_loop_lag_s = max_loop_lag_s
        self.max_ttfc_s = max_ttfc_s
        self.probe_interval_s = probe_interval_s
        self.window_s = window_s
        self.on_shed = on_shed
        self.lag_s = 0.0
        self.shed: dict[str, int] = {}
        self._due: float | None = None
        self._probe: asyncio.TimerHandle | None = None
        # Per window: (start, sum of TTFC, calls).
        self._ttfc: deque[tuple[float, float, int]] = deque()

    def start(self) -> None:
        """Start the loop-lag probe on the running loop."""
        if self._probe is None and self.max_loop_lag_s is not None:
            self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        """Stop the probe."""
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
            self._due = None

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + self.probe_interval_s
        self._probe = loop.call_at(self._due, self._fired, loop)

    def _fired(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._due is not None
        self.lag_s = max(0.0, loop.time() - self._due)
        self._schedule(loop)

    def loop_lag(self) -> float:
        """The loop's lag now: the last probe's lateness, or how overdue the next one is."""
        if self._due is None:
            return self.lag_s
        overdue = asyncio.get_running_loop().time() - self._due
        return max(self.lag_s, overdue)

    def first_command(self, ttfc_s: float) -> None:
        """A session sent its first command ``ttfc_s`` after its connection was accepted."""
        now = time.monotonic()
        if self._ttfc and now - self._ttfc[-1][0] < self.window_s:
            start, total, count = self._ttfc[-1]
            self._ttfc[-1] = (start, total + ttfc_s, count + 1)
        else:
            self._ttfc.append((now, ttfc_s, 1))
            while len(self._ttfc) > 2:
                self._ttfc.popleft()

    def recent_ttfc(self) -> float:
        """The mean time to first command over the current and the previous window (0 when
        no call was admitted lately, so a guard that turned everyone away tries again)."""
        now = time.monotonic()
        total = count = 0.0
        for start, window_total, window_count in self._ttfc:
            if now - start < 2 * self.window_s:
                total += window_total
                count += window_count
        return total / count if count else 0.0

    def refuse(self, waited_s: float | None = None) -> str | None:
        """Why a new call should be turned away now (``loop_lag`` or ``ttfc``), or None.
        ``waited_s``: how long this call has waited since its connection was accepted."""
        if self.max_loop_lag_s is not None and self.loop_lag() > self.max_loop_lag_s:
            return self._count("loop_lag")
        if self.max_ttfc_s is not None and (
                (waited_s is not None and waited_s > self.max_ttfc_s)
                or self.recent_ttfc() > self.max_ttfc_s):
            return self._count("ttfc")
        return None

    def _count(self, reason: str) -> str:
        self.shed[reason] = self.shed.get(reason, 0) + 1
        if self.on_shed is not None:
            self.on_shed(reason)
        return reason


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
        admission: Admission | None = None,
    ) -> None:
        self.handler_for_script = handler_for_script
        self.host = host
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.max_sessions = max_sessions
        self.limits = limits
        #: Latency-based admission control; the call path asks it before admitting a call.
        self.admission = admission
        self.stats = ServerStats()
        self._requested_port = port
        self._listener: Listener | None = None
        self._stopped: asyncio.Event | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        if self._listener is None:
            raise RuntimeError("The FastAGI server is not listening; call start() first.")
        return self._listener.port

    @property
    def active_sessions(self) -> int:
        """Connections being served right now."""
        return len(self._sessions)

    @property
    def refused_no_fd(self) -> int:
        """Connections reset at once because no file descriptor was left."""
        return self._listener.refused_no_fd if self._listener is not None else 0

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._stopped = asyncio.Event()
        self._listener = Listener(self._on_socket, self.host, self._requested_port,
                                  admit=self._has_room, name="FastAGI")
        if self.admission is not None:
            self.admission.start()

    async def serve_forever(self) -> None:
        """Start if needed and serve until cancelled."""
        if self._listener is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, give running sessions ``grace`` seconds, then cancel the rest."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        if self.admission is not None:
            self.admission.stop()
        running = set(self._sessions)
        if running:
            _, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2.0)
        if self._stopped is not None:
            self._stopped.set()

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

    def _has_room(self) -> bool:
        if self._closing or len(self._sessions) >= self.max_sessions:
            # Reset at once so the dialplan's fallback runs now rather than after a timeout.
            self.stats.sessions_rejected += 1
            return False
        return True

    def _on_socket(self, conn: socket.socket) -> None:
        task = asyncio.get_running_loop().create_task(self._session(conn, time.monotonic()))
        self._sessions.add(task)
        self.stats.sessions_started += 1
        self.stats.peak_sessions = max(self.stats.peak_sessions, len(self._sessions))
        task.add_done_callback(self._sessions.discard)

    async def _session(self, conn: socket.socket, accepted_at: float) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=_READ_CHUNK)
        except OSError as exc:
            conn.close()
            log.info("A FastAGI connection failed at once: %s", exc)
            return
        try:
            await self._serve(reader, writer, accepted_at)
        finally:
            await _close_writer(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     accepted_at: float | None = None) -> None:
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
        session = AgiSession(
            reader, writer, connection, command_timeout=self.command_timeout,
            accepted_at=accepted_at,
            on_first_command=self.admission.first_command if self.admission else None)
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
                shown = shorten(env.script)
                log.warning("No FastAGI handler for script %r (%s).", shown, env.channel)
                notice = f"acd: no FastAGI script named {shown!r}; the dialplan continues"
                await session.command(commands.verbose(_printable(notice)), timeout=2.0)
                return
            await handler(session)
        except SessionClosed as exc:
            log.info("AGI session for %s ended early: %s", env.channel, exc)
        except Exception:
            self.stats.handler_errors += 1
            log.exception("FastAGI handler for %r failed on %s.", shorten(env.script),
                          env.channel)


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


def shorten(text: str, limit: int = MAX_SCRIPT_SHOWN) -> str:
    """``text`` cut to ``limit`` characters (marked with "...") and made printable, for a log
    line or a reply that repeats something the peer sent."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return _printable(cut)


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(TimeoutError, ConnectionError, OSError):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()
