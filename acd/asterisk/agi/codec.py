"""Sans-I/O FastAGI codec: bytes from Asterisk in, events out; no sockets, no clock.

The shape follows h11: `AgiParser` turns the byte stream Asterisk writes into events
(`Environment`, `Reply`, `HangupNotice`, `ConnectionClosed`), `AgiConnection` adds the one rule
of the conversation (one command in flight, every reply answers it). Every buffer is capped, so
a hostile or broken peer costs at most a few kilobytes before `RemoteProtocolError` is raised.
The wire format is the one recorded from Asterisk 22 in ``tests/recordings/asterisk/agi-*.jsonl``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType


class AgiProtocolError(Exception):
    """The AGI conversation cannot continue: one side broke the protocol."""


class LocalProtocolError(AgiProtocolError):
    """We were about to break the protocol (bad command, wrong moment); nothing was sent."""


class RemoteProtocolError(AgiProtocolError):
    """The peer (Asterisk, or whoever connected) sent bytes that are not AGI."""


@dataclass(frozen=True)
class Limits:
    """Caps on what the peer may make us buffer; exceeding one is a `RemoteProtocolError`."""

    max_line_bytes: int = 8192
    max_header_lines: int = 256
    max_header_bytes: int = 32768
    max_reply_lines: int = 512
    max_reply_bytes: int = 65536


#: The caps used when none are given.
DEFAULT_LIMITS = Limits()

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sends when a call reaches the FastAGI server."""

    raw: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        """Value of ``agi_<name>`` (or of ``name`` itself if it already starts with ``agi_``)."""
        key = name if name.startswith("agi_") else f"agi_{name}"
        return self.raw.get(key, default)

    @property
    def request(self) -> str:
        """The full AGI URL, e.g. ``agi://127.0.0.1:4573/route?x=1``."""
        return self.get("request")

    @property
    def network_script(self) -> str:
        """The script part of the URL as Asterisk sent it (may carry a ``?query``)."""
        return self.get("network_script")

    @property
    def script(self) -> str:
        """The script name the server dispatches on: the URL path without ``?query``."""
        return self.network_script.partition("?")[0].strip("/")

    @property
    def channel(self) -> str:
        """The Asterisk channel name, e.g. ``PJSIP/trunk-00000012``."""
        return self.get("channel")

    @property
    def uniqueid(self) -> str:
        """The channel's unique id; stable for the call's life in this Asterisk."""
        return self.get("uniqueid")

    @property
    def callerid(self) -> str:
        """Caller number as Asterisk sent it (``unknown`` when absent); untrusted."""
        return self.get("callerid")

    @property
    def calleridname(self) -> str:
        """Caller name as Asterisk sent it; untrusted bytes from the far end."""
        return self.get("calleridname")

    @property
    def dnid(self) -> str:
        """Dialled number (``unknown`` when absent)."""
        return self.get("dnid")

    @property
    def context(self) -> str:
        """Dialplan context the AGI was called from."""
        return self.get("context")

    @property
    def extension(self) -> str:
        """Dialplan extension the AGI was called from."""
        return self.get("extension")

    @property
    def language(self) -> str:
        """Channel language (``CHANNEL(language)``) at the time of the call."""
        return self.get("language")

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1``, ``agi_arg_2``, ... in numeric order."""
        numbered = []
        for key, value in self.raw.items():
            if key.startswith("agi_arg_") and key[8:].isdigit():
                numbered.append((int(key[8:]), value))
        return tuple(value for _, value in sorted(numbered))


@dataclass(frozen=True)
class Environment:
    """Event: the header block has been read completely."""

    env: AgiEnvironment


@dataclass(frozen=True)
class Reply:
    """Event: Asterisk's answer to the command in flight.

    ``result`` is the integer after ``result=`` (None when it is empty or not a number, as
    in ``200 result= (timeout)``); ``result_text`` is that field verbatim (GET DATA returns
    digit strings such as ``0#`` there). ``data`` is the text in parentheses for 200 replies,
    and the message (all lines, for ``520-``) for 5xx replies.
    """

    code: int
    result: int | None
    result_text: str
    data: str | None
    endpos: int | None
    raw: bytes
    attributes: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def ok(self) -> bool:
        """True for a 200 reply (the command ran; check ``result`` for its outcome)."""
        return self.code == 200


@dataclass(frozen=True)
class HangupNotice:
    """Event: the out-of-band ``HANGUP`` line; the caller is gone, AGI continues in dead mode."""


@dataclass(frozen=True)
class ConnectionClosed:
    """Event: the peer closed the connection at a clean line boundary."""


class NeedData(Enum):
    """Sentinel type: no complete event is buffered yet."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA

Event = Environment | Reply | HangupNotice | ConnectionClosed

_HEADER_RE = re.compile(r"(agi_[A-Za-z0-9_]+):(.*)")
_STATUS_RE = re.compile(r"(\d{3})([ -])(.*)")
_RESULT_RE = re.compile(r"result=(\S*)(.*)")
_TAIL_RE = re.compile(r"(?: \((.*)\))?((?: [A-Za-z_][A-Za-z0-9_]*=\S*)*) *")
_ATTR_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)")
_INT_RE = re.compile(r"-?\d{1,18}")
_END_OF_USAGE = "520 End of proper usage."


class _State(Enum):
    HEADER = "reading the environment block"
    REPLIES = "reading replies"
    MULTILINE = "reading a multi-line reply"
    CLOSED = "closed"
    ERROR = "failed"


class AgiParser:
    """Turns bytes from Asterisk into events; feed bytes with `feed`, pull with `next_event`."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._scanned = 0
        self._eof = False
        self._state = _State.HEADER
        self._error: RemoteProtocolError | None = None
        self._header: dict[str, str] = {}
        self._header_lines = 0
        self._header_bytes = 0
        self._multi_code = 0
        self._multi_lines: list[str] = []
        self._multi_raw = bytearray()

    @property
    def state(self) -> str:
        """What the parser is waiting for, in words (for logs and error messages)."""
        return self._state.value

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer; ``b""`` means end of stream, like h11."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("Bytes were fed after the end of stream was signalled.")
        self._buf += data

    def feed_eof(self) -> None:
        """Signal that the peer closed the connection."""
        self._eof = True

    def events(self) -> Iterator[Event]:
        """Every event that the buffered bytes complete, in order."""
        while True:
            event = self.next_event()
            if event is NEED_DATA:
                return
            yield event
            if isinstance(event, ConnectionClosed):
                return

    def next_event(self) -> Event | NeedData:
        """The next complete event, or `NEED_DATA`; raises `RemoteProtocolError` on bad input."""
        if self._error is not None:
            raise self._error
        if self._state is _State.CLOSED:
            return ConnectionClosed()
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            # Poison the parser: after garbage, no later byte can be trusted to be in sync.
            self._state = _State.ERROR
            self._error = exc
            raise

    def _next_event(self) -> Event | NeedData:
        while True:
            line = self._next_line()
            if line is None:
                return self._at_end_of_buffer()
            event = self._handle_line(line)
            if event is not None:
                return event

    def _next_line(self) -> bytes | None:
        newline = self._buf.find(b"\n", self._scanned)
        if newline < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > self.limits.max_line_bytes:
                raise RemoteProtocolError(
                    f"A line longer than {self.limits.max_line_bytes} bytes arrived while "
                    f"{self._state.value}; first bytes: {bytes(self._buf[:80])!r}."
                )
            return None
        if newline > self.limits.max_line_bytes:
            raise RemoteProtocolError(
                f"A line of {newline} bytes exceeds the {self.limits.max_line_bytes}-byte cap "
                f"while {self._state.value}; first bytes: {bytes(self._buf[:80])!r}."
            )
        line = bytes(self._buf[: newline + 1])
        del self._buf[: newline + 1]
        self._scanned = 0
        return line

    def _at_end_of_buffer(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        if self._buf:
            raise RemoteProtocolError(
                f"The connection closed in the middle of a line while {self._state.value}: "
                f"{bytes(self._buf[:80])!r}."
            )
        if self._state is _State.HEADER and self._header_lines:
            raise RemoteProtocolError(
                f"The connection closed after {self._header_lines} environment lines, before "
                "the empty line that ends the block."
            )
        if self._state is _State.MULTILINE:
            raise RemoteProtocolError(
                f"The connection closed inside a multi-line {self._multi_code} reply."
            )
        self._state = _State.CLOSED
        return ConnectionClosed()

    def _handle_line(self, raw: bytes) -> Event | None:
        text = raw.decode("utf-8", errors="replace").rstrip("\n")
        text = text[:-1] if text.endswith("\r") else text
        if self._state is _State.HEADER:
            return self._header_line(raw, text)
        if self._state is _State.MULTILINE:
            return self._multiline(raw, text)
        return self._reply_line(raw, text)

    def _header_line(self, raw: bytes, text: str) -> Event | None:
        if text == "":
            self._state = _State.REPLIES
            return Environment(AgiEnvironment(MappingProxyType(dict(self._header))))
        self._header_lines += 1
        self._header_bytes += len(raw)
        if self._header_lines > self.limits.max_header_lines:
            raise RemoteProtocolError(
                f"The environment block has more than {self.limits.max_header_lines} lines."
            )
        if self._header_bytes > self.limits.max_header_bytes:
            raise RemoteProtocolError(
                f"The environment block is larger than {self.limits.max_header_bytes} bytes."
            )
        match = _HEADER_RE.fullmatch(text)
        if match is None:
            raise RemoteProtocolError(
                f"Expected an 'agi_name: value' environment line or an empty line, got {text!r}."
            )
        value = match.group(2)
        self._header[match.group(1)] = value[1:] if value.startswith(" ") else value
        return None

    def _reply_line(self, raw: bytes, text: str) -> Event | None:
        if text == "HANGUP":
            return HangupNotice()
        match = _STATUS_RE.fullmatch(text)
        if match is None:
            raise RemoteProtocolError(
                f"Expected an AGI reply such as '200 result=0', got {text!r}."
            )
        code, sep, rest = int(match.group(1)), match.group(2), match.group(3)
        if sep == "-":
            self._state = _State.MULTILINE
            self._multi_code = code
            self._multi_lines = [rest]
            self._multi_raw = bytearray(raw)
            return None
        if code == 200:
            return _parse_200(rest, raw)
        return Reply(code, None, "", rest, None, raw)

    def _multiline(self, raw: bytes, text: str) -> Event | None:
        self._multi_raw += raw
        if len(self._multi_lines) >= self.limits.max_reply_lines:
            raise RemoteProtocolError(
                f"A multi-line {self._multi_code} reply has more than "
                f"{self.limits.max_reply_lines} lines."
            )
        if len(self._multi_raw) > self.limits.max_reply_bytes:
            raise RemoteProtocolError(
                f"A multi-line {self._multi_code} reply is larger than "
                f"{self.limits.max_reply_bytes} bytes."
            )
        end = f"{self._multi_code} "
        if self._multi_code == 520 and text.endswith(_END_OF_USAGE) and text != _END_OF_USAGE:
            # res_agi prints the usage text with "%s": when it lacks a final newline, the end
            # marker is glued to its last line.
            self._multi_lines.append(text[: -len(_END_OF_USAGE)])
            text = _END_OF_USAGE
        if not text.startswith(end):
            self._multi_lines.append(text)
            return None
        self._multi_lines.append(text[len(end) :])
        self._state = _State.REPLIES
        message = "\n".join(self._multi_lines)
        return Reply(self._multi_code, None, "", message, None, bytes(self._multi_raw))


def _parse_200(rest: str, raw: bytes) -> Reply:
    match = _RESULT_RE.fullmatch(rest)
    if match is None:
        raise RemoteProtocolError(f"A 200 reply without 'result=': {rest!r}.")
    result_text, tail = match.group(1), match.group(2)
    result = int(result_text) if _INT_RE.fullmatch(result_text) else None
    data: str | None = None
    attributes: dict[str, str] = {}
    tail_match = _TAIL_RE.fullmatch(tail)
    if tail_match is not None:
        data = tail_match.group(1)
        attributes = dict(_ATTR_RE.findall(tail_match.group(2)))
    else:
        # Free text after the attributes (SPEECH RECOGNIZE results): keep what parses.
        opening, closing = tail.find("("), tail.rfind(")")
        if 0 <= opening < closing:
            data = tail[opening + 1 : closing]
            tail = tail[closing + 1 :]
        attributes = dict(_ATTR_RE.findall(tail))
    endpos_text = attributes.get("endpos", "")
    endpos = int(endpos_text) if _INT_RE.fullmatch(endpos_text) else None
    return Reply(200, result, result_text, data, endpos, raw, MappingProxyType(attributes))


class AgiConnection:
    """One FastAGI conversation, sans I/O: the parser plus the one-command-in-flight rule.

    Call `send_command` with the bytes of a command before writing them, `receive_data` with
    what the socket returned (``b""`` at EOF), and `next_event` until it returns `NEED_DATA`.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._parser = AgiParser(limits)
        self.environment: AgiEnvironment | None = None
        self.pending_command: bytes | None = None
        self.hung_up = False
        self.closed = False

    @property
    def state(self) -> str:
        """What the connection is waiting for, in words."""
        return self._parser.state

    def send_command(self, command: bytes) -> bytes:
        """Record ``command`` (one line ending in ``\\n``) as in flight and return it to write."""
        if self.environment is None:
            raise LocalProtocolError("A command was sent before the environment block arrived.")
        if self.closed:
            raise LocalProtocolError(f"A command was sent after the peer closed: {command!r}.")
        if self.pending_command is not None:
            raise LocalProtocolError(
                f"A command was sent while {self.pending_command!r} still awaits its reply; "
                "AGI allows one command in flight."
            )
        if not command.endswith(b"\n") or b"\n" in command[:-1]:
            raise LocalProtocolError(
                f"A command must be exactly one line ending in \\n: {command!r}."
            )
        self.pending_command = command
        return command

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the socket; ``b""`` signals end of stream."""
        self._parser.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, with replies checked against the command in flight."""
        event = self._parser.next_event()
        if isinstance(event, Environment):
            self.environment = event.env
        elif isinstance(event, Reply):
            if self.pending_command is None:
                raise RemoteProtocolError(
                    f"A reply arrived while no command was in flight: {event.raw!r}."
                )
            self.pending_command = None
            if event.code == 511:
                self.hung_up = True
        elif isinstance(event, HangupNotice):
            self.hung_up = True
        elif isinstance(event, ConnectionClosed):
            self.closed = True
        return event
