"""A fake Asterisk that connects to a FastAGI server: replays recorded calls or scripted ones.

Two ways to use it. Replay a recording verbatim (``FakeAsterisk(port).replay(path)``): the
fake sends every ``<`` line Asterisk sent, asserts each command the server sends equals the
recorded ``>`` line (or matches a regex put in its place), and finally asserts the server
closed the socket, which real Asterisk never does for it. Or script a call
(``await fake.call("route", callerid=..., reply=fn)``): ``fn`` answers each command.
For step-by-step control, ``await fake.connect(...)`` returns a `FakeCall`.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from acd.testing.app_args import array_writes

ReplyFunction = Callable[[str], "str | Sequence[str]"]


@dataclass(frozen=True)
class TranscriptRow:
    """One row of an ``agi-*.jsonl`` recording: who sent what, when."""

    t: float
    direction: str
    text: str | re.Pattern[str]


def load_transcript(path: Path | str) -> list[TranscriptRow]:
    """Read an ``agi-*.jsonl`` file (one ``[seconds, direction, text]`` array per line)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            t, direction, text = json.loads(line)
            rows.append(TranscriptRow(float(t), str(direction), str(text)))
    return rows


def environment_block(
    script: str = "route",
    *,
    callerid: str = "+79161234567",
    calleridname: str = "unknown",
    args: Iterable[str] = (),
    uniqueid: str = "1795609297.11",
    channel: str | None = None,
    language: str = "ru",
    context: str = "acd",
    extension: str = "s",
    dnid: str = "unknown",
    extra: Mapping[str, str] | None = None,
    host: str = "127.0.0.1:4573",
) -> bytes:
    """The header block Asterisk 22 sends, in its order; values go out unescaped, as it does."""
    pairs = [
        ("network", "yes"),
        ("network_script", script),
        ("request", f"agi://{host}/{script}"),
        ("channel", channel or f"PJSIP/trunk-{uniqueid.replace('.', '')[-8:]}"),
        ("language", language),
        ("type", "PJSIP"),
        ("uniqueid", uniqueid),
        ("version", "22.11.0"),
        ("callerid", callerid),
        ("calleridname", calleridname),
        ("callingpres", "0"),
        ("callingani2", "0"),
        ("callington", "0"),
        ("callingtns", "0"),
        ("dnid", dnid),
        ("rdnis", "unknown"),
        ("context", context),
        ("extension", extension),
        ("priority", "1"),
        ("enhanced", "0.0"),
        ("accountcode", ""),
        ("threadid", "140080727742144"),
    ]
    pairs += [(f"arg_{n}", value) for n, value in enumerate(args, start=1)]
    pairs += list((extra or {}).items())
    text = "".join(f"agi_{key}: {value}\n" for key, value in pairs) + "\n"
    return text.encode("utf-8")


def default_reply(command: str) -> str:
    """A plausible answer to any command: success, and "unset" for GET VARIABLE."""
    return "200 result=0"


@dataclass
class CallResult:
    """What happened on one scripted call."""

    commands: list[str] = field(default_factory=list)
    closed_by_server: bool = False
    time_to_first_command: float | None = None


class FakeCall:
    """One FastAGI connection from the fake Asterisk's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.commands: list[str] = []
        self.connected_at = time.perf_counter()
        self.first_command_at: float | None = None

    async def send(self, data: bytes) -> None:
        """Write raw bytes to the server."""
        self.writer.write(data)
        await self.writer.drain()

    async def send_environment(self, block: bytes | None = None) -> None:
        """Send the header block (``block`` verbatim, or a default `environment_block`)."""
        await self.send(block if block is not None else environment_block())

    async def reply(self, *lines: str) -> None:
        """Send reply lines (each gets its ``\\n``), e.g. ``"HANGUP", "200 result=1 (x)"``."""
        await self.send("".join(f"{line}\n" for line in lines).encode("utf-8"))

    async def hangup(self) -> None:
        """Send the out-of-band ``HANGUP`` line, as Asterisk does when the caller hangs up."""
        await self.send(b"HANGUP\n")

    async def read_command(self, timeout: float = 5.0) -> str | None:
        """The next command line the server sent (without ``\\n``); None if it closed."""
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        if not line:
            return None
        if not line.endswith(b"\n"):
            raise AssertionError(f"The server closed in the middle of a command: {line!r}")
        if self.first_command_at is None:
            self.first_command_at = time.perf_counter()
        command = line[:-1].decode("utf-8")
        self.commands.append(command)
        return command

    async def expect(
        self, expected: str | re.Pattern[str], *reply_lines: str, timeout: float = 5.0
    ) -> str:
        """Assert the next command equals (or fully matches) ``expected``, then reply."""
        command = await self.read_command(timeout)
        if command is None:
            raise AssertionError(f"The server closed instead of sending {expected!r}.")
        matched = (
            expected.fullmatch(command) is not None
            if isinstance(expected, re.Pattern)
            else command == expected
        )
        if not matched:
            raise AssertionError(f"Expected command {expected!r}, the server sent {command!r}.")
        if reply_lines:
            await self.reply(*reply_lines)
        return command

    async def wait_closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the socket within ``timeout`` without another command."""
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(65536)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if data:
            raise AssertionError(f"Expected the server to close, it sent {data!r}.")
        return True

    async def close(self) -> None:
        """Close our side (as Asterisk never does on its own; used for EOF tests)."""
        self.writer.close()
        try:
            async with asyncio.timeout(1.0):
                await self.writer.wait_closed()
        except (TimeoutError, ConnectionError):
            pass


class FakeAsterisk:
    """Places fake calls on a FastAGI server at ``host:port``."""

    def __init__(self, port: int, host: str = "127.0.0.1", source: str | None = None) -> None:
        self.host = host
        self.port = port
        #: The address connections come from (``127.0.0.2``: a second PBX on loopback).
        self.source = source

    async def connect(self) -> FakeCall:
        """Open a connection without sending anything yet."""
        local = (self.source, 0) if self.source is not None else None
        reader, writer = await asyncio.open_connection(self.host, self.port, local_addr=local)
        return FakeCall(reader, writer)

    async def call(
        self,
        script: str = "route",
        *,
        callerid: str = "+79161234567",
        calleridname: str = "unknown",
        args: Iterable[str] = (),
        extra: Mapping[str, str] | None = None,
        reply: ReplyFunction = default_reply,
        timeout: float = 5.0,
        max_commands: int = 1000,
    ) -> CallResult:
        """Send an environment, answer every command with ``reply`` until the server closes."""
        block = environment_block(
            script, callerid=callerid, calleridname=calleridname, args=args, extra=extra
        )
        call = await self.connect()
        result = CallResult()
        try:
            await call.send_environment(block)
            for _ in range(max_commands):
                command = await call.read_command(timeout)
                if command is None:
                    result.closed_by_server = True
                    break
                answer = reply(command)
                await call.reply(*([answer] if isinstance(answer, str) else answer))
            else:
                raise AssertionError(f"The server sent more than {max_commands} commands.")
        finally:
            result.commands = call.commands
            if call.first_command_at is not None:
                result.time_to_first_command = call.first_command_at - call.connected_at
            await call.close()
        return result

    async def replay(
        self,
        transcript: Sequence[TranscriptRow] | Path | str,
        *,
        timeout: float = 5.0,
        expect_close: bool = True,
    ) -> list[str]:
        """Replay a recording; assert the server's commands and that it closes at the end."""
        rows = (
            load_transcript(transcript) if isinstance(transcript, Path | str) else transcript
        )
        call = await self.connect()
        outgoing = bytearray()
        try:
            for row in rows:
                if row.direction == "<":
                    assert isinstance(row.text, str)
                    outgoing += row.text.encode("utf-8")
                elif row.direction == ">":
                    if outgoing:
                        await call.send(bytes(outgoing))
                        outgoing.clear()
                    await call.expect(row.text, timeout=timeout)
            if outgoing:
                await call.send(bytes(outgoing))
            if expect_close and not await call.wait_closed(timeout):
                raise AssertionError(
                    f"The server did not close the socket within {timeout} s after the last "
                    "reply; real Asterisk would hold the call forever."
                )
        finally:
            await call.close()
        return call.commands


# --- what a command does to the channel's variables --------------------------------------


def _agi_words(line: str) -> list[str]:
    """res_agi's ``parse_args``: words split on spaces and tabs, ``"`` toggles quoting and
    ``\\`` makes the next character literal."""
    words: list[str] = []
    word: list[str] = []
    quoted = escaped = started = False
    for char in line:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char == '"':
            quoted, started = not quoted, True
        elif char in " \t" and not quoted:
            if started:
                words.append("".join(word))
                word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def variables_set(command: str) -> dict[str, str]:
    """The channel variables (or functions, such as ``CHANNEL(language)``) a command sets in
    Asterisk 22, in order: ``SET VARIABLE <name> <value>`` sets one; a name
    ``ARRAY(n1,n2,...)`` sets each name to the value's comma-separated field (func_strings.c
    ``array()``: names beyond the values get ""). Any other command sets nothing."""
    words = _agi_words(command)
    if words[:2] != ["SET", "VARIABLE"] or len(words) != 4:
        return {}
    name, value = words[2], words[3]
    return dict(array_writes(name, value) or [(name, value)])


# --- the dialplan's side of a call, which outlives the engine ----------------------------


async def run_script(fake: FakeAsterisk, script: str, args: Sequence[str], *, uniqueid: str,
                     extension: str = "s", reply: ReplyFunction = default_reply,
                     timeout: float = 10.0) -> dict[str, str] | None:
    """Run one AGI script as the dialplan does; the variables the engine set (None when no
    engine listens: Asterisk's ``AGI()`` fails and the dialplan goes on)."""
    try:
        call = await fake.connect()
    except OSError:
        return None
    variables: dict[str, str] = {}
    try:
        await call.send_environment(environment_block(script, args=args, uniqueid=uniqueid,
                                                      extension=extension))
        while (command := await call.read_command(timeout)) is not None:
            variables.update(variables_set(command))
            answer = reply(command)
            await call.reply(*([answer] if isinstance(answer, str) else answer))
    finally:
        await call.close()
    return variables


@dataclass
class FakeChannels:
    """The channels Asterisk holds, by uniqueid; answers the engine's "does it still exist?"
    (a :class:`~acd.service.state.ChannelProbe`), or cannot be asked (``reachable`` False)."""

    live: set[str] = field(default_factory=set)
    reachable: bool = True
    asked: list[str] = field(default_factory=list)

    async def channel_exists(self, call_id: str) -> bool | None:
        """True while the channel lives; None when the Manager cannot be reached."""
        self.asked.append(call_id)
        return (call_id in self.live) if self.reachable else None


@dataclass
class DialInProgress:
    """A caller in ``[acd-dispatch]``'s ``Dial()`` (config/asterisk/extensions.conf).

    The channel lives in Asterisk, not in the engine: when the engine dies the Dial() goes on,
    and what happens next reaches whichever engine listens at the AGI address then, with the
    channel variables the engine set before (``ACD_CALL_ID``, ``ACD_AGENT``). Each method plays
    the dialplan's next steps and returns the variables the engine set.
    """

    uniqueid: str
    call_id: str
    agent: str
    channels: FakeChannels = field(default_factory=FakeChannels)

    def __post_init__(self) -> None:
        self.channels.live.add(self.uniqueid)

    async def answer(self, fake: FakeAsterisk) -> str:
        """The agent picks up: ``U(acd-answered)``; ``ok``/``refused``, or ``""`` when no
        engine answers (the dialplan then connects rather than drop the caller)."""
        result = await run_script(fake, "answered", (self.call_id, self.agent),
                                  uniqueid=self.uniqueid)
        return "" if result is None else result.get("ACD_ANSWER", "")

    async def agent_hangs_up(self, fake: FakeAsterisk) -> dict[str, str] | None:
        """Talk ends from the agent's side: ``ended,<call>,<agent>``; on ``ended`` the
        dialplan hangs up and runs ``h`` (a second ``ended``, which the engine ignores)."""
        result = await run_script(fake, "ended", (self.call_id, self.agent),
                                  uniqueid=self.uniqueid)
        if result is None or result.get("ACD_RESULT") == "ended":
            await self.caller_hangs_up(fake)
        return result

    async def no_answer(self, fake: FakeAsterisk, status: str = "NOANSWER",
                        reply: ReplyFunction = default_reply) -> dict[str, str] | None:
        """Dial() gave up: ``dialresult,<call>,<status>,<agent>``, then the engine holds the
        caller again in that session until its next decision."""
        return await run_script(fake, "dialresult", (self.call_id, status, self.agent),
                                uniqueid=self.uniqueid, reply=reply)

    async def caller_hangs_up(self, fake: FakeAsterisk) -> None:
        """The caller's channel ends: the ``h`` extension reports ``ended,<call>``."""
        self.channels.live.discard(self.uniqueid)
        await run_script(fake, "ended", (self.call_id,), uniqueid=self.uniqueid,
                         extension="h")
