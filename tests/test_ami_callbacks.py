"""AMI callbacks: pyst2's Manager against a fake AMI server, and the AGI ``callback`` script."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from acd.asterisk.agi.route import CallPath
from acd.asterisk.agi.server import FastAgiServer
from acd.asterisk.ami import (
    AmiCallbacks,
    AmiError,
    AmiOptions,
    AmiTarget,
    OriginateRequest,
    originate_blocking,
)
from acd.callbacks.dialler import AttemptBoard, AttemptResult, CallbackDialer, DialPolicy
from acd.config.load import load_center
from acd.core.model import CallState
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from acd.runtime.records import CallbackStore, open_database
from acd.runtime.router_service import RouterService
from acd.testing.fake_agi import FakeAsterisk, FakeCall, environment_block
from ivr.actions import CallbackTask

ROOT = Path(__file__).resolve().parents[1]
UA_NUMBER = "+380441234567"
CENTER_NUMBER = "+74950000000"
USER, SECRET = "acd", "ami-secret"
HOSTILE = 'Olga\r\nAction: Hangup\r\nChannel: PJSIP/1001"; Set(X=1)'

Message = list[tuple[str, str]]
# pyst2 calls threading's deprecated camelCase names; acd.asterisk.ami silences them in production.
pytestmark = pytest.mark.filterwarnings(r"ignore::DeprecationWarning:asterisk\.manager")


@dataclass
class FakeAmi:
    """A tiny AMI server on loopback: banner, Login, Originate (scripted), Logoff."""

    answer: bool = True
    accept_login: bool = True
    silent: bool = False
    on_originate: Callable[[dict[str, str]], None] | None = None
    actions: list[Message] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def named(self, action: str) -> list[dict[str, str]]:
        """Every received action called ``action``, headers as a dict (last value wins)."""
        return [dict(m) for m in self.actions if dict(m).get("Action") == action]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.silent:
                await reader.read()  # never greet; wait for the client to give up
                return
            writer.write(b"Asterisk Call Manager/9.0.0\r\n")
            while True:
                message = await self._read_message(reader)
                if message is None:
                    return
                self.actions.append(message)
                headers = dict(message)
                reply = self._reply(headers)
                writer.write(reply.encode())
                await writer.drain()
                if headers.get("Action") == "Logoff":
                    return
        finally:
            writer.close()

    async def _read_message(self, reader: asyncio.StreamReader) -> Message | None:
        message: Message = []
        while True:
            line = await reader.readline()
            if not line:
                return None
            self.raw.append(line)
            if line == b"\r\n":
                if message:
                    return message
                continue
            key, _, value = line.decode().rstrip("\r\n").partition(": ")
            message.append((key, value))

    def _reply(self, headers: dict[str, str]) -> str:
        action_id = headers.get("ActionID", "")
        action = headers.get("Action")
        if action == "Login":
            ok = self.accept_login and headers.get("Username") == USER \
                and headers.get("Secret") == SECRET
            text = ("Response: Success\r\nMessage: Authentication accepted" if ok
                    else "Response: Error\r\nMessage: Authentication failed")
        elif action == "Originate":
            if self.answer and self.on_originate is not None:
                self.on_originate(headers)
            text = ("Response: Success\r\nMessage: Originate successfully queued" if self.answer
                    else "Response: Error\r\nMessage: Originate failed")
        elif action == "Logoff":
            text = "Response: Goodbye\r\nMessage: Thanks for all the fish."
        else:
            text = "Response: Error\r\nMessage: Invalid/unknown command"
        return f"{text}\r\nActionID: {action_id}\r\n\r\n"


@pytest.fixture
async def ami() -> AsyncIterator[FakeAmi]:
    server = FakeAmi()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def store(tmp_path: Path) -> CallbackStore:
    return CallbackStore(open_database(tmp_path / "acd.sqlite3"))


@pytest.fixture(scope="module")
def base_setup() -> IvrSetup:
    return load_ivr(load_center(ROOT / "config" / "center.yaml"), ROOT / "config" / "ivr")


def target(server: FakeAmi, secret: str = SECRET) -> AmiTarget:
    return AmiTarget("127.0.0.1", server.port, USER, secret, connect_timeout_s=1.0)


def hostile_task(number: str = UA_NUMBER) -> CallbackTask:
    """A task whose free-text fields carry AMI and dialplan syntax."""
    return CallbackTask("tech", "uk", "UA", number, 0, "voicemail", HOSTILE, HOSTILE)


def dialer(store: CallbackStore, outbound: AmiCallbacks, **policy: float) -> CallbackDialer:
    return CallbackDialer(store, outbound, DialPolicy(max_ewt_s=None, **policy))  # type: ignore[arg-type]


async def settle(d: CallbackDialer) -> list[AttemptResult]:
    return list(await asyncio.wait_for(asyncio.gather(*d.in_flight.values()), 10.0))


async def test_originate_sends_only_config_and_the_task_id(
        ami: FakeAmi, store: CallbackStore) -> None:
    """Login (events off), Originate with trunk, context, caller id and task id, then Logoff."""
    ami.answer = False
    task_id = store.insert(hostile_task())
    outbound = AmiCallbacks(target(ami), AttemptBoard(),
                            AmiOptions(caller_id=CENTER_NUMBER, ring_timeout_s=20.0))
    d = dialer(store, outbound)
    assert d.start_due() == [task_id]
    assert await settle(d) == [AttemptResult.NO_ANSWER]
    outbound.close()
    # The worker logs off after reporting the result (when pyst2 still has the connection).
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(_until(lambda: len(ami.actions) >= 3), 2.0)
    assert [dict(m)["Action"] for m in ami.actions][:2] == ["Login", "Originate"]
    assert [dict(m)["Action"] for m in ami.actions][2:] in ([], ["Logoff"])
    login = ami.named("Login")[0]
    assert login["Username"] == USER and login["Events"] == "off"
    originate = ami.named("Originate")[0]
    assert originate["Channel"] == f"PJSIP/{UA_NUMBER}@trunk"
    assert originate["Context"] == "acd-callback-out"
    assert originate["Exten"] == "s" and originate["Priority"] == "1"
    assert originate["Timeout"] == "20000"
    assert originate["CallerID"] == CENTER_NUMBER
    assert "Async" not in originate
    variables = [v for k, v in ami.actions[1] if k == "Variable"]
    assert variables == [f"ACD_CALLBACK_TASK={task_id}"]
    wire = b"".join(ami.raw)
    assert b"Olga" not in wire and b"Hangup" not in wire and b"Set(" not in wire
    stored = store.get(task_id)
    assert stored is not None and stored.status == "open" and stored.last_result == "no_answer"


def test_a_failed_logoff_keeps_the_originate_result() -> None:
    """pyst2 raising on its closed socket file while logging off does not turn the result
    of an Originate already answered into a failure."""

    class _Reply:
        def __init__(self, response: str) -> None:
            self.response = response

        def get_header(self, name: str) -> str:
            return self.response

    class ClosingManager:
        def __init__(self, timeout: float) -> None:
            self.timeout = timeout

        def connect(self, host: str, port: int) -> None:
            pass

        def send_action(self, action: dict[str, str]) -> _Reply:
            return _Reply("Success")

        def originate(self, *args: object, **kwargs: object) -> _Reply:
            return _Reply("Error")

        def close(self) -> None:
            raise ValueError("I/O operation on closed file.")

    request = OriginateRequest("PJSIP/+380501234567@trunk", "acd-callback-out", 1, 20.0, None)
    where = AmiTarget("127.0.0.1", 5038, USER, SECRET, connect_timeout_s=1.0)
    assert originate_blocking(where, request, ClosingManager) is False  # type: ignore[arg-type]


async def test_undiallable_number_never_reaches_the_manager(
        ami: FakeAmi, store: CallbackStore) -> None:
    """A number with AMI syntax in it fails the task at once; nothing is sent to AMI."""
    task_id = store.insert(hostile_task("+7916\r\nAction: Originate"))
    outbound = AmiCallbacks(target(ami), AttemptBoard())
    d = dialer(store, outbound)
    assert d.start_due() == []
    outbound.close()
    assert ami.actions == []
    stored = store.get(task_id)
    assert stored is not None and stored.status == "failed" and stored.last_result == "invalid"


async def test_refused_login_is_a_failed_attempt(ami: FakeAmi, store: CallbackStore) -> None:
    """A wrong secret fails the attempt (retried later) and no Originate is sent."""
    task_id = store.insert(hostile_task())
    outbound = AmiCallbacks(target(ami, secret="wrong"), AttemptBoard())
    d = dialer(store, outbound)
    d.start_due()
    assert await settle(d) == [AttemptResult.FAILED]
    outbound.close()
    assert ami.named("Originate") == []
    stored = store.get(task_id)
    assert stored is not None and stored.status == "open" and stored.last_result == "failed"


async def test_silent_manager_cannot_hold_a_thread() -> None:
    """A Manager that never greets fails the originate within its deadline."""
    server = FakeAmi(silent=True)
    await server.start()
    try:
        t0 = time.monotonic()
        request = OriginateRequest(f"PJSIP/{UA_NUMBER}@trunk", "acd-callback-out", 1, 0.5)
        with pytest.raises(AmiError, match="greeting"):
            await asyncio.to_thread(originate_blocking,
                                    AmiTarget("127.0.0.1", server.port, USER, SECRET, 0.5),
                                    request)
        assert time.monotonic() - t0 < 5.0
    finally:
        await server.stop()


# ------------------------------------------------------------------ AMI + the callback script


@dataclass
class AgiRig:
    service: RouterService
    path: CallPath
    server: FastAgiServer
    fake: FakeAsterisk


@pytest.fixture
async def agi(base_setup: IvrSetup) -> AsyncIterator[AgiRig]:
    service = RouterService(base_setup.center)
    path = CallPath(service, base_setup)
    server = FastAgiServer(path.handler_for, port=0, header_timeout=2.0)
    await server.start()
    yield AgiRig(service, path, server, FakeAsterisk(server.port))
    await server.close(grace=0.5)
    service.close()


async def customer_presses(call: FakeCall, digit: str, until: str) -> list[str]:
    """Answer the callback flow's commands (digit for the greeting) until ``until``."""
    seen: list[str] = []
    while True:
        command = await call.read_command(5.0)
        assert command is not None, f"closed before {until!r}: {seen}"
        seen.append(command)
        if command.startswith(until):
            return seen
        if command.startswith("GET DATA"):
            await call.reply(f"200 result={digit}")
        else:
            await call.reply("200 result=0 endpos=8000")


async def test_ami_callback_runs_the_flow_and_queues_with_priority(
        ami: FakeAmi, store: CallbackStore, agi: AgiRig) -> None:
    """Answered AMI callback: the callback script plays the flow, "1" queues at priority 20."""
    calls: list[FakeCall] = []

    def dialplan_runs_agi(headers: dict[str, str]) -> None:
        # As Asterisk would once the customer answers: [acd-callback-out] runs the AGI.
        task = headers["Variable"].partition("=")[2]

        async def start() -> None:
            call = await agi.fake.connect()
            await call.send_environment(environment_block(
                "callback", args=(task,), callerid=CENTER_NUMBER, calleridname='Olga "; Set(X=1)',
                uniqueid="1795609400.5", context="acd-callback-out"))
            calls.append(call)

        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(start()))

    loop = asyncio.get_running_loop()
    ami.on_originate = dialplan_runs_agi
    task_id = store.insert(hostile_task())
    outbound = AmiCallbacks(target(ami), agi.path.callback.board)
    d = dialer(store, outbound)
    d.start_due()
    await asyncio.wait_for(_until(lambda: bool(calls)), 5.0)
    call = calls[0]
    seen = await customer_presses(call, "1", "SET VARIABLE ACD_CALL_ID")
    assert any("acd/uk/callback_greeting" in c for c in seen)
    assert seen[-1] == "SET VARIABLE ACD_CALL_ID 1795609400.5"
    await call.reply("200 result=1")
    assert await settle(d) == [AttemptResult.QUEUED]
    held = agi.path.calls["1795609400.5"]
    assert (held.queue, held.language, held.priority, held.number) == ("tech", "uk", 20,
                                                                       UA_NUMBER)
    assert agi.service.router.call_state("1795609400.5") is CallState.QUEUED
    await call.expect("SET MUSIC ON default", "200 result=0")
    agi.service.login("kyi-tech-uk-001")
    await call.expect("SET VARIABLE ARRAY(ACD_TARGET,ACD_AGENT,ACD_RING_TIMEOUT) "
                      "PJSIP/2001,kyi-tech-uk-001,15", "200 result=1")
    stored = store.get(task_id)
    assert stored is not None and stored.status == "done"
    outbound.close()
    await call.close()


async def test_callback_script_refuses_tasks_nobody_dials(agi: AgiRig) -> None:
    """``callback,<id>`` for a task the dialler is not waiting for only hangs up."""
    for args in (("42",), ("1;DROP",), ()):
        result = await agi.fake.call("callback", args=args,
                                     reply=lambda c: "200 result=1")
        assert result.commands == ["SET VARIABLE ACD_RESULT hangup"]
    assert agi.path.callback.refused == 3
    assert agi.service.router.calls_in_router == 0


async def _until(check: Callable[[], bool]) -> None:
    while not check():
        await asyncio.sleep(0.005)


async def test_build_dialer_wires_ami_to_the_callback_script(
        tmp_path: Path, store: CallbackStore, agi: AgiRig) -> None:
    """``callbacks.via: ami`` builds an AMI dialler reporting through the path's board."""
    from acd.service.dialler import build_dialer
    from acd.service.settings import load_settings

    file = tmp_path / "service.yaml"
    file.write_text(f"center: {ROOT / 'config' / 'center.yaml'}\nflows: {ROOT / 'config' / 'ivr'}\n"
                    "callbacks: {enabled: true, via: ami, concurrency: 3}\n")
    settings = load_settings(file, {"ACD_AMI_USER": USER, "ACD_AMI_SECRET": SECRET})
    built = build_dialer(settings, store, agi.service, agi.path.setup, call_path=agi.path)
    assert built is not None and isinstance(built.outbound, AmiCallbacks)
    assert built.outbound.board is agi.path.callback.board
    assert built.policy.concurrency == 3
    built.outbound.close()
    no_secret = load_settings(file, {})
    assert build_dialer(no_secret, store, agi.service, agi.path.setup,
                        call_path=agi.path) is None
