"""Every conversation recorded from Asterisk 22.11, replayed against the codec and the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from acd.asterisk.agi import commands as cmd
from acd.asterisk.agi.codec import (
    NEED_DATA,
    AgiConnection,
    ConnectionClosed,
    Environment,
    Event,
    HangupNotice,
    Reply,
)
from acd.asterisk.agi.commands import encode_command, split_command, verb_of
from acd.asterisk.agi.server import AgiSession, FastAgiServer, Handler
from acd.testing.fake_agi import FakeAsterisk, TranscriptRow, load_transcript

RECORDINGS = Path(__file__).resolve().parent / "recordings" / "asterisk"
AGI_FILES = sorted(RECORDINGS.glob("agi-*.jsonl"))

#: Every command line in the recordings, built with the helper the engine would use.
RECORDED_COMMANDS: dict[str, bytes] = {
    "GET VARIABLE CALLERID(num)": cmd.get_variable("CALLERID(num)"),
    "GET VARIABLE CHANNEL(language)": cmd.get_variable("CHANNEL(language)"),
    "SET MUSIC ON default": cmd.set_music(True),
    'STREAM FILE beep ""': cmd.stream_file("beep"),
    'SET VARIABLE ACD_TARGET "Local/1001@agents"': cmd.set_variable(
        "ACD_TARGET", "Local/1001@agents"
    ),
    'SET VARIABLE ACD_NOTE "he said \\"hi\\""': cmd.set_variable("ACD_NOTE", 'he said "hi"'),
    "BOGUS COMMAND": encode_command("BOGUS COMMAND"),
    "GET VARIABLE ACD_NOTE": cmd.get_variable("ACD_NOTE"),
    "GET VARIABLE NOSUCHVAR": cmd.get_variable("NOSUCHVAR"),
    "SET MUSIC OFF": cmd.set_music(False),
    "ANSWER": cmd.answer(),
    "GET DATA beep 4000 1": cmd.get_data("beep", 4000, 1),
    "WAIT FOR DIGIT 3000": cmd.wait_for_digit(3000),
    "GET DATA beep 3000 4": cmd.get_data("beep", 3000, 4),
    "GET DATA silence/1 1000 2": cmd.get_data("silence/1", 1000, 2),
    'STREAM FILE tt-monkeys ""': cmd.stream_file("tt-monkeys"),
    "SET VARIABLE ACD_X 1": cmd.set_variable("ACD_X", "1"),
    "NOOP": cmd.noop(),
    "EXEC Playback beep": cmd.exec_application("Playback", "beep"),
    'STREAM FILE no-such-file ""': cmd.stream_file("no-such-file"),
    'SAY DIGITS 12 ""': cmd.say_digits("12"),
    "CHANNEL STATUS": cmd.channel_status(),
    "DATABASE PUT acd k1 v1": cmd.database_put("acd", "k1", "v1"),
    "DATABASE GET acd k1": cmd.database_get("acd", "k1"),
}


def rows_of(path: Path, direction: str) -> list[str]:
    return [str(row.text) for row in load_transcript(path) if row.direction == direction]


def test_all_five_agi_recordings_are_present() -> None:
    """The ground truth is in the repo; a missing file would silently shrink these tests."""
    assert [p.name for p in AGI_FILES] == [
        "agi-basic.jsonl",
        "agi-dtmf.jsonl",
        "agi-hangup-during-command.jsonl",
        "agi-hangup-while-holding.jsonl",
        "agi-misc-commands.jsonl",
    ]


@pytest.mark.parametrize("path", AGI_FILES, ids=lambda p: p.stem)
def test_helpers_encode_every_recorded_command_byte_for_byte(path: Path) -> None:
    """Each '>' line is exactly what our helper produces, plus the newline."""
    for line in rows_of(path, ">"):
        assert line in RECORDED_COMMANDS, f"no helper mapped for recorded command {line!r}"
        assert RECORDED_COMMANDS[line] == line.encode("utf-8") + b"\n"


@pytest.mark.parametrize("path", AGI_FILES, ids=lambda p: p.stem)
def test_generic_encoding_round_trips_every_recorded_command(path: Path) -> None:
    """Splitting a recorded line as Asterisk does and re-encoding it gives the same bytes."""
    for line in rows_of(path, ">"):
        words = split_command(line)
        verb = verb_of(line) if line != "BOGUS COMMAND" else "BOGUS COMMAND"
        args = words[verb.count(" ") + 1 :]
        assert encode_command(verb, *args) == line.encode("utf-8") + b"\n"


def drive(rows: list[TranscriptRow]) -> tuple[AgiConnection, list[Event]]:
    """Feed the '<' bytes to a connection, sending each '>' command when the recording did."""
    conn = AgiConnection()
    events: list[Event] = []

    def drain() -> None:
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return

    for row in rows:
        if row.direction == "<":
            conn.receive_data(str(row.text).encode("utf-8"))
        elif row.direction == ">":
            drain()
            conn.send_command(RECORDED_COMMANDS[str(row.text)])
    drain()
    conn.receive_data(b"")
    drain()
    return conn, events


@pytest.mark.parametrize("path", AGI_FILES, ids=lambda p: p.stem)
def test_codec_parses_every_recorded_stream(path: Path) -> None:
    """Environment first, one reply per command, HANGUP lines as notices, clean EOF last."""
    rows = load_transcript(path)
    conn, events = drive(rows)
    assert isinstance(events[0], Environment)
    assert isinstance(events[-1], ConnectionClosed)
    replies = [e for e in events if isinstance(e, Reply)]
    assert len(replies) == len(rows_of(path, ">"))
    assert [r.raw for r in replies] == [
        line.encode("utf-8")
        for line in rows_of(path, "<")
        if line[:3].isdigit()
    ]
    hangups = [e for e in events if isinstance(e, HangupNotice)]
    assert len(hangups) == rows_of(path, "<").count("HANGUP\n")
    assert conn.hung_up == bool(hangups)
    assert conn.pending_command is None


def test_recorded_basic_call_environment_and_values() -> None:
    """The basic recording's header (Cyrillic name, two args) and replies read as expected."""
    _, events = drive(load_transcript(RECORDINGS / "agi-basic.jsonl"))
    env = events[0]
    assert isinstance(env, Environment)
    assert env.env.calleridname == "Иван"
    assert env.env.args == ("arg one", "arg=2")
    assert env.env.script == "basic"
    values = [cmd.variable_value(e) for e in events if isinstance(e, Reply) and e.code == 200]
    assert values[:2] == ["+79161234567", "en"]
    assert 'he said "hi"' in values
    codes = [e.code for e in events if isinstance(e, Reply)]
    assert codes.count(510) == 1


# --- the same calls against the real server ---------------------------------------------


class Recorder:
    """Handlers for the recorded scripts; they note what they saw for the test to check."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def handlers(self) -> dict[str, Handler]:
        return {
            "basic": self.basic,
            "dtmf": self.dtmf,
            "hangstream": self.hangstream,
            "hold": self.hold,
            "gosub": self.gosub,
        }

    async def basic(self, s: AgiSession) -> None:
        self.seen["callerid"] = await s.get_variable("CALLERID(num)")
        self.seen["language"] = await s.get_variable("CHANNEL(language)")
        await s.command(cmd.set_music(True))
        self.seen["endpos"] = (await s.command(cmd.stream_file("beep"))).endpos
        await s.set_variable("ACD_TARGET", "Local/1001@agents")
        await s.set_variable("ACD_NOTE", 'he said "hi"')
        self.seen["bogus"] = (await s.command(encode_command("BOGUS COMMAND"))).code
        self.seen["note"] = await s.get_variable("ACD_NOTE")
        self.seen["unset"] = await s.get_variable("NOSUCHVAR")
        await s.command(cmd.set_music(False))

    async def dtmf(self, s: AgiSession) -> None:
        await s.command(cmd.answer())
        self.seen["one"] = cmd.digits_entered(await s.command(cmd.get_data("beep", 4000, 1)))
        self.seen["key"] = cmd.digit_pressed(await s.command(cmd.wait_for_digit(3000)))
        self.seen["many"] = cmd.digits_entered(await s.command(cmd.get_data("beep", 3000, 4)))
        reply = await s.command(cmd.get_data("silence/1", 1000, 2))
        self.seen["timeout"] = (cmd.digits_entered(reply), reply.data)

    async def hangstream(self, s: AgiSession) -> None:
        reply = await s.command(cmd.stream_file("tt-monkeys"))
        self.seen["interrupted"] = (reply.result, reply.endpos)
        self.seen["callerid"] = await s.get_variable("CALLERID(num)")
        self.seen["hung_up"] = s.hung_up
        self.seen["dead_stream"] = (await s.command(cmd.stream_file("beep"))).code
        self.seen["dead_set"] = (await s.set_variable("ACD_X", "1")).code
        self.seen["noop"] = (await s.command(cmd.noop())).code

    async def hold(self, s: AgiSession) -> None:
        await s.command(cmd.set_music(True))
        self.seen["hangup_seen"] = await s.wait_for_hangup(timeout=5.0)
        self.seen["callerid"] = await s.get_variable("CALLERID(num)")

    async def gosub(self, s: AgiSession) -> None:
        self.seen["exec"] = (await s.command(cmd.exec_application("Playback", "beep"))).result
        missing = await s.command(cmd.stream_file("no-such-file"))
        self.seen["missing"] = (missing.result, missing.endpos)
        self.seen["say"] = (await s.command(cmd.say_digits("12"))).result
        self.seen["status"] = (await s.command(cmd.channel_status())).result
        self.seen["put"] = (await s.command(cmd.database_put("acd", "k1", "v1"))).result
        self.seen["get"] = cmd.variable_value(await s.command(cmd.database_get("acd", "k1")))


@pytest.fixture
async def recorded_server() -> AsyncIterator[tuple[FastAgiServer, Recorder]]:
    recorder = Recorder()
    server = FastAgiServer(recorder.handlers().get, port=0, header_timeout=2.0)
    await server.start()
    yield server, recorder
    await server.close(grace=1.0)


EXPECTED_SEEN: dict[str, dict[str, Any]] = {
    "agi-basic": {
        "callerid": "+79161234567",
        "language": "en",
        "endpos": 3520,
        "bogus": 510,
        "note": 'he said "hi"',
        "unset": None,
    },
    "agi-dtmf": {"one": "3", "key": "7", "many": "12", "timeout": ("", "timeout")},
    "agi-hangup-during-command": {
        "interrupted": (-1, 12000),
        "callerid": "+77011234567",
        "hung_up": True,
        "dead_stream": 511,
        "dead_set": 200,
        "noop": 200,
    },
    "agi-hangup-while-holding": {"hangup_seen": True, "callerid": "+380441234567"},
    "agi-misc-commands": {
        "exec": 0,
        "missing": (-1, 0),
        "say": 0,
        "status": 6,
        "put": 1,
        "get": "v1",
    },
}


@pytest.mark.parametrize("path", AGI_FILES, ids=lambda p: p.stem)
async def test_server_replays_every_recording_and_closes(
    path: Path, recorded_server: tuple[FastAgiServer, Recorder]
) -> None:
    """A handler issuing the recorded commands sends the exact bytes, reads the recorded
    replies correctly, and the server closes the socket (Asterisk would wait forever)."""
    server, recorder = recorded_server
    sent = await FakeAsterisk(server.port).replay(path, timeout=3.0)
    assert sent == rows_of(path, ">")
    assert recorder.seen == EXPECTED_SEEN[path.stem]
    assert server.stats.handler_errors == 0
    assert server.stats.protocol_errors == 0
