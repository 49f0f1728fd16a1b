"""Property tests: the parser only ever raises AgiProtocolError, and quoting round-trips."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.asterisk.agi.codec import (
    DEFAULT_LIMITS,
    NEED_DATA,
    AgiConnection,
    AgiParser,
    AgiProtocolError,
    ConnectionClosed,
    Environment,
    Event,
    HangupNotice,
    Limits,
    LocalProtocolError,
    Reply,
)
from acd.asterisk.agi.commands import MAX_COMMAND_BYTES, encode_command, split_command
from acd.testing.fake_agi import load_transcript

RECORDINGS = Path(__file__).resolve().parent / "recordings" / "asterisk"
STREAMS = [
    b"".join(str(row.text).encode("utf-8") for row in load_transcript(p) if row.direction == "<")
    for p in sorted(RECORDINGS.glob("agi-*.jsonl"))
]
SMALL = Limits(max_line_bytes=256, max_header_lines=16, max_header_bytes=2048)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_all(chunks: list[bytes], limits: Limits = DEFAULT_LIMITS) -> list[Event]:
    """Feed chunks then EOF, collecting events; only AgiProtocolError may escape."""
    parser = AgiParser(limits)
    events: list[Event] = []
    for chunk in [*chunks, b""]:
        parser.feed(chunk)
        while (event := parser.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """Split ``data`` at ``cuts``; no empty pieces, since b"" means end of stream."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    return [piece for piece in pieces if piece]


@FUZZ
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_raise_only_protocol_errors(chunks: list[bytes]) -> None:
    """Arbitrary bytes in arbitrary chunks either parse or raise an AgiProtocolError."""
    try:
        events = parse_all(chunks, SMALL)
    except AgiProtocolError:
        return
    assert all(isinstance(e, Environment | Reply | HangupNotice | ConnectionClosed) for e in events)


@FUZZ
@given(
    st.sampled_from(STREAMS),
    st.lists(
        st.tuples(
            st.sampled_from(["flip", "insert", "delete", "dup"]),
            st.integers(min_value=0),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_mutated_recordings_raise_only_protocol_errors(
    stream: bytes, mutations: list[tuple[str, int, bytes]], cuts: list[int]
) -> None:
    """Recorded streams with bytes flipped, inserted, deleted or lines duplicated never crash."""
    data = bytearray(stream)
    for kind, position, payload in mutations:
        at = position % (len(data) + 1)
        if kind == "flip" and at < len(data):
            data[at] ^= payload[0] or 1
        elif kind == "insert":
            data[at:at] = payload
        elif kind == "delete":
            del data[at : at + len(payload)]
        else:
            end = data.find(b"\n", at)
            if end >= 0:
                data[at:at] = data[at : end + 1]
    with contextlib.suppress(AgiProtocolError):
        parse_all(split_at(bytes(data), cuts), SMALL)


@FUZZ
@given(st.sampled_from(STREAMS), st.lists(st.integers(min_value=0), max_size=30))
def test_chunking_never_changes_the_events(stream: bytes, cuts: list[int]) -> None:
    """However TCP splits a recorded stream, the events are the same as in one piece."""
    assert parse_all(split_at(stream, cuts)) == parse_all([stream])


REPLY_LINES = st.sampled_from(
    [
        b"200 result=0\n",
        b"200 result=1 (x y)\n",
        b"200 result= (timeout)\n",
        b"200 result=-1 endpos=5\n",
        b"510 Invalid or unknown command\n",
        b"511 Command Not Permitted on a dead channel\n",
        b"520-Invalid command syntax.  Proper usage follows:\nUsage\n520 End of proper usage.\n",
        b"HANGUP\n",
    ]
)


@FUZZ
@given(st.lists(REPLY_LINES, max_size=20), st.lists(st.integers(min_value=0), max_size=10))
def test_connection_keeps_one_command_in_flight(lines: list[bytes], cuts: list[int]) -> None:
    """Sending a command per reply keeps the connection in step; extra replies are refused."""
    conn = AgiConnection()
    conn.receive_data(STREAMS[0].split(b"\n\n", 1)[0] + b"\n\n")
    assert isinstance(conn.next_event(), Environment)
    expected_replies = sum(1 for line in lines if line != b"HANGUP\n")
    got = 0
    for chunk in split_at(b"".join(lines), cuts):
        conn.receive_data(chunk)
        while True:
            if conn.pending_command is None and got < expected_replies:
                conn.send_command(b"NOOP\n")
            event = conn.next_event()
            if event is NEED_DATA:
                break
            got += isinstance(event, Reply)
    assert got == expected_replies
    assert conn.hung_up == any(line.startswith((b"HANGUP", b"511")) for line in lines)


ARG_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"), max_size=40
)


@FUZZ
@given(st.lists(ARG_TEXT, max_size=12))
def test_encode_then_split_round_trips(args: list[str]) -> None:
    """Whatever the arguments, Asterisk's parser gets back exactly the words we meant."""
    line = encode_command("EXEC", *args)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and b"\x00" not in line
    assert len(line) <= MAX_COMMAND_BYTES + 1
    assert split_command(line[:-1].decode("utf-8")) == ["EXEC", *args]


@FUZZ
@given(st.text(max_size=60))
def test_encoding_refuses_or_round_trips_any_text(text: str) -> None:
    """Any text is either refused as LocalProtocolError or travels as one exact argument."""
    try:
        line = encode_command("SET VARIABLE", "ACD_NOTE", text)
    except LocalProtocolError:
        assert any(c in text for c in "\r\n\x00") or any(
            "\ud800" <= c <= "\udfff" for c in text
        )
        return
    assert split_command(line[:-1].decode("utf-8")) == ["SET", "VARIABLE", "ACD_NOTE", text]
