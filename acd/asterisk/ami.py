"""The Asterisk Manager Interface for AGI-only deployments: callbacks, and asking whether a
channel still exists after a restart.

Without ARI the engine cannot hold a channel of its own, so it asks Asterisk to ring the
customer with AMI ``Originate`` (pyst2's :class:`asterisk.manager.Manager`) into the dialplan
context ``acd-callback-out`` (``config/asterisk/extensions.conf``). That context runs
``AGI(agi://.../callback,<task id>)``: the ``callback`` script
(:mod:`acd.asterisk.agi.callback`) plays the callback flow and queues the customer like the
``route`` script does, and reports the attempt's result through an
:class:`~acd.callbacks.dialler.AttemptBoard`.

pyst2's Manager blocks (its replies come through thread queues), so each attempt runs in a
worker thread of a pool sized to the dialler's concurrency rather than in the event loop's
shared default pool: a synchronous Originate holds its thread for the whole ring time. Each
attempt uses a connection of its own (connect, log in with events off, originate, log off):
pyst2 matches replies to actions by order, so one connection must never carry two actions
at once. Its sockets get a deadline, so a silent Manager cannot hold a thread forever.

After a restart, :class:`AmiChannelProbe` asks the Manager (``CoreShowChannels``, one
connection per question, same deadlines) whether a restored call's channel still exists, so a
call the engine lost track of is ended when Asterisk says it is gone rather than guessed at
(:mod:`acd.service.state`). Only our own call ids (Asterisk uniqueids) are compared; nothing
is sent but the action.

What reaches the Manager is built only from configuration and the task id: the dial string
from the trunk template and a checked E.164 number, the context, the center's caller id, and
the variable ``ACD_CALLBACK_TASK=<id>``. Caller names, customer ids and recordings never do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import re
import socket
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from acd.callbacks.dialler import AttemptBoard, AttemptResult, dial_string
from acd.runtime.records import StoredCallback

# pyst2 still calls threading's camelCase aliases (isSet, setDaemon), deprecated since 3.10.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"asterisk\.manager")

from asterisk.manager import (  # noqa: E402  (after the warning filter on purpose)
    Manager,
    ManagerException,
    ManagerSocketException,
)

log = logging.getLogger(__name__)

#: The channel variable that carries the task id into the dialplan (the only one we set).
TASK_VAR = "ACD_CALLBACK_TASK"


class AmiError(Exception):
    """The Manager refused the login or could not be reached; the attempt failed."""


@dataclass(frozen=True)
class AmiTarget:
    """Where the Manager listens and how the engine logs in (secret kept out of reprs)."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = ""
    connect_timeout_s: float = 5.0

    def __repr__(self) -> str:
        return f"AmiTarget(host={self.host!r}, port={self.port}, username={self.username!r})"


@dataclass(frozen=True)
class OriginateRequest:
    """One call to a customer: everything in it is configuration or our own id."""

    channel: str
    context: str
    task_id: int
    ring_timeout_s: float
    caller_id: str | None = None


class TimedManager(Manager):
    """pyst2's Manager whose socket has a deadline, so no read can wait forever."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def connect(self, host: str, port: int = 5038) -> Any:
        """As ``Manager.connect``, with a connect and read deadline and a bounded greeting."""
        if self._connected.is_set():
            raise ManagerException("Already connected to manager")
        try:
            sock = socket.create_connection((host, int(port)), self.timeout)
        except OSError as exc:
            raise ManagerSocketException(exc.errno, str(exc)) from None
        # The file object keeps the connection (and its timeout) after the socket is closed.
        self._sock = sock.makefile(mode="rwb", buffering=0)
        sock.close()
        self._connected.set()
        self._running.set()
        self.message_thread.start()
        self.event_dispatch_thread.start()
        try:
            greeting = self._response_queue.get(timeout=self.timeout)
        except queue.Empty:
            raise ManagerSocketException(0, "no Manager greeting in time") from None
        if not greeting:
            raise ManagerSocketException(0, "connection closed before the greeting")
        return greeting


def originate_blocking(target: AmiTarget, request: OriginateRequest,
                       manager_factory: Callable[[float], Manager] = TimedManager) -> bool:
    """Log in, originate synchronously, log off; True when the customer answered.

    Runs in a worker thread. Raises :class:`AmiError` when the Manager cannot be reached or
    refuses the login.
    """
    # Reads may legitimately wait for the whole ring time (the Originate reply comes on answer).
    manager = manager_factory(request.ring_timeout_s + target.connect_timeout_s)
    try:
        manager.connect(target.host, target.port)
        login = manager.send_action({"Action": "Login", "Username": target.username,
                                     "Secret": target.secret, "Events": "off"})
        if login.get_header("Response") != "Success":
            raise AmiError(f"the Manager refused the login of {target.username!r}")
        reply = manager.originate(
            request.channel, "s", context=request.context, priority="1",
            timeout=str(int(request.ring_timeout_s * 1000)),
            caller_id=request.caller_id or "",
            variables={TASK_VAR: str(request.task_id)})
        return bool(reply.get_header("Response") == "Success")
    except ManagerException as exc:
        raise AmiError(f"Manager at {target.host}:{target.port}: {exc}") from None
    finally:
        # A connection already gone cannot log off; its threads end on their own. pyst2 then
        # fails with ValueError or OSError on its closed socket file: the originate's result
        # is known by now and must not be turned into a failure.
        with contextlib.suppress(ManagerException, OSError, ValueError):
            manager.close()


#: An Asterisk uniqueid (``<epoch>.<sequence>``): the only call ids the Manager can check.
_UNIQUEID_RE = re.compile(r"[0-9]{1,20}\.[0-9]{1,20}")


def channels_blocking(target: AmiTarget,
                      manager_factory: Callable[[float], Manager] = TimedManager) -> set[str]:
    """Log in, list the channels (``CoreShowChannels``), log off: their uniqueids.

    Runs in a worker thread. Raises :class:`AmiError` when the Manager cannot be reached,
    refuses the login, or does not finish the list within the connect deadline.
    """
    manager = manager_factory(target.connect_timeout_s)
    seen: set[str] = set()
    complete = threading.Event()

    def on_channel(event: Any, _manager: Any) -> None:
        seen.add(str(event.get_header("Uniqueid", "")))

    def on_complete(event: Any, _manager: Any) -> None:
        complete.set()

    manager.register_event("CoreShowChannel", on_channel)
    manager.register_event("CoreShowChannelsComplete", on_complete)
    try:
        manager.connect(target.host, target.port)
        login = manager.send_action({"Action": "Login", "Username": target.username,
                                     "Secret": target.secret, "Events": "off"})
        if login.get_header("Response") != "Success":
            raise AmiError(f"the Manager refused the login of {target.username!r}")
        reply = manager.send_action({"Action": "CoreShowChannels"})
        if reply.get_header("Response") != "Success":
            raise AmiError(f"the Manager refused CoreShowChannels: {reply.get_header('Message')}")
        if not complete.wait(target.connect_timeout_s):
            raise AmiError("the Manager did not finish the channel list in time")
        return seen
    except ManagerException as exc:
        raise AmiError(f"Manager at {target.host}:{target.port}: {exc}") from None
    finally:
        with contextlib.suppress(ManagerException, OSError, ValueError):
            manager.close()


class AmiChannelProbe:
    """Whether a restored call's channel still exists, asked of the Manager (a
    :class:`~acd.service.state.ChannelProbe`)."""

    def __init__(self, target: AmiTarget,
                 list_channels: Callable[[AmiTarget], set[str]] = channels_blocking) -> None:
        self.target = target
        self._list = list_channels
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acd-ami-probe")

    async def channel_exists(self, call_id: str) -> bool | None:
        """True or False; None for a call id that is not a uniqueid or a Manager that fails."""
        if not _UNIQUEID_RE.fullmatch(call_id):
            return None
        loop = asyncio.get_running_loop()
        try:
            channels = await loop.run_in_executor(self._pool, self._list, self.target)
        except AmiError as exc:
            log.warning("cannot ask the Manager about call %s: %s", call_id, exc)
            return None
        return call_id in channels

    def close(self) -> None:
        """Stop the worker thread."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True)
class AmiOptions:
    """How AMI callbacks are dialled."""

    trunk: str = "PJSIP/{number}@trunk"
    context: str = "acd-callback-out"
    caller_id: str | None = None
    ring_timeout_s: float = 30.0
    #: Longest the callback flow may take after the answer before the attempt counts as failed.
    flow_timeout_s: float = 120.0


class AmiCallbacks:
    """The dialler's :class:`~acd.callbacks.dialler.Outbound` for AGI-only deployments."""

    def __init__(
        self,
        target: AmiTarget,
        board: AttemptBoard,
        options: AmiOptions | None = None,
        *,
        concurrency: int = 2,
        originate: Callable[[AmiTarget, OriginateRequest], bool] = originate_blocking,
    ) -> None:
        self.target = target
        self.board = board
        self.options = options or AmiOptions()
        self._originate = originate
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="acd-ami")

    async def call_back(self, callback: StoredCallback) -> AttemptResult:
        """Originate to the customer; once answered, wait for the AGI script's result."""
        try:
            channel = dial_string(self.options.trunk, callback.task.number)
        except ValueError:
            return AttemptResult.INVALID
        request = OriginateRequest(channel, self.options.context, callback.id,
                                   self.options.ring_timeout_s, self.options.caller_id)
        result = self.board.expect(callback)
        loop = asyncio.get_running_loop()
        try:
            answered = await loop.run_in_executor(self._pool, self._originate, self.target,
                                                  request)
            if not answered:
                # A synchronous Originate does not say why: busy and no answer look the same.
                return AttemptResult.NO_ANSWER
            return await asyncio.wait_for(asyncio.shield(result),
                                          self.options.flow_timeout_s)
        except AmiError as exc:
            log.warning("callback task %d: %s", callback.id, exc)
            return AttemptResult.FAILED
        except TimeoutError:
            log.warning("callback task %d: no result from the callback script", callback.id)
            return AttemptResult.FAILED
        finally:
            self.board.forget(callback.id)

    def close(self) -> None:
        """Stop the worker threads once their attempts end."""
        self._pool.shutdown(wait=False, cancel_futures=True)
