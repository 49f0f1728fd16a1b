"""The sans-I/O FastAGI codec: parsing Asterisk's bytes, encoding commands, reading results."""

from __future__ import annotations

import pytest

from acd.asterisk.agi import commands as cmd
from acd.asterisk.agi.codec import (
    NEED_DATA,
    AgiConnection,
    AgiParser,
    ConnectionClosed,
    Environment,
    Event,
    HangupNotice,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
)
from acd.asterisk.agi.commands import encode_command, quote_argument, split_command
from acd.testing.fake_agi import environment_block

HEADER = environment_block("route", callerid="+380441234567", args=["tech", "uk"])


def parse(data: bytes, *, eof: bool = False, limits: Limits | None = None) -> list[Event]:
    parser = AgiParser(limits or Limits())
    parser.feed(data)
    if eof:
        parser.feed_eof()
    return list(parser.events())


def replies(data: bytes) -> list[Event]:
    return parse(HEADER + data)[1:]


def only_reply(line: bytes) -> Reply:
    events = replies(line)
    assert len(events) == 1 and isinstance(events[0], Reply)
    return events[0]


# --- environment -------------------------------------------------------------------------


def test_environment_accessors_read_the_header_block() -> None:
    """The typed accessors return the agi_* values, the script without query, args in order."""
    block = environment_block(
        "route?lang=uk", callerid="+380441234567", calleridname="Олена", args=["tech", "uk"]
    )
    (event,) = parse(block)
    assert isinstance(event, Environment)
    env = event.env
    assert env.script == "route"
    assert env.network_script == "route?lang=uk"
    assert env.request == "agi://127.0.0.1:4573/route?lang=uk"
    assert env.callerid == "+380441234567"
    assert env.calleridname == "Олена"
    assert env.args == ("tech", "uk")
    assert env.language == "ru"
    assert env.get("accountcode") == ""
    assert env.raw["agi_network"] == "yes"


def test_args_are_ordered_numerically_not_lexically() -> None:
    """agi_arg_10 comes after agi_arg_9, not after agi_arg_1."""
    block = environment_block("route", args=[str(n) for n in range(1, 12)])
    (event,) = parse(block)
    assert isinstance(event, Environment)
    assert event.env.args == tuple(str(n) for n in range(1, 12))


def test_invalid_utf8_in_caller_name_is_replaced_not_fatal() -> None:
    """Raw bytes from the far end decode with U+FFFD instead of failing the call."""
    block = b"agi_network_script: route\nagi_calleridname: \xff\xfeBob\n\n"
    (event,) = parse(block)
    assert isinstance(event, Environment)
    assert event.env.calleridname == "\ufffd\ufffdBob"


def test_crlf_line_endings_are_tolerated() -> None:
    """A peer that ends lines with CRLF still parses, without the CR in values."""
    (event, reply) = parse(b"agi_network_script: route\r\n\r\n200 result=1 (x)\r\n")
    assert isinstance(event, Environment) and event.env.script == "route"
    assert isinstance(reply, Reply) and reply.data == "x"


def test_a_4_kib_caller_name_is_accepted() -> None:
    """Long but bounded values pass: the cap is on lines, not on normal content."""
    (event,) = parse(environment_block("route", calleridname="x" * 4096))
    assert isinstance(event, Environment) and len(event.env.calleridname) == 4096


# --- replies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "result", "result_text", "data", "endpos"),
    [
        (b"200 result=0\n", 0, "0", None, None),
        (b'200 result=1 (he said "hi")\n', 1, "1", 'he said "hi"', None),
        (b"200 result= (timeout)\n", None, "", "timeout", None),
        (b"200 result=-1 endpos=12000\n", -1, "-1", None, 12000),
        (b"200 result=1 (a (b) c)\n", 1, "1", "a (b) c", None),
        (b"200 result=1 ()\n", 1, "1", "", None),
        (b"200 result=0#\n", None, "0#", None, None),
        (b"200 result=1 (timeout) endpos=880\n", 1, "1", "timeout", 880),
    ],
)
def test_200_replies_parse_result_data_and_endpos(
    line: bytes, result: int | None, result_text: str, data: str | None, endpos: int | None
) -> None:
    """Every 200 shape res_agi writes yields the right result, data and endpos."""
    reply = only_reply(line)
    assert (reply.code, reply.result, reply.result_text) == (200, result, result_text)
    assert (reply.data, reply.endpos, reply.raw) == (data, endpos, line)


def test_speech_reply_with_free_text_keeps_the_attributes() -> None:
    """SPEECH RECOGNIZE's trailing free text does not break parsing of data and attributes."""
    reply = only_reply(b"200 result=1 (speech) endpos=10 results=1 text0=hello world\n")
    assert reply.data == "speech" and reply.endpos == 10
    assert reply.attributes["results"] == "1"


def test_error_replies_510_and_511() -> None:
    """510 and 511 carry their message; 511 is what a dead channel answers."""
    assert only_reply(b"510 Invalid or unknown command\n").data == "Invalid or unknown command"
    dead = only_reply(b"511 Command Not Permitted on a dead channel or intercept routine\n")
    assert dead.code == 511 and not dead.ok


def test_multiline_520_is_one_reply_with_the_usage_text() -> None:
    """The 520- usage block, whatever its lines look like, ends at '520 End of proper usage.'."""
    data = (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        b" Usage: DATABASE GET <family> <key>\n"
        b"Example return code: 200 result=1 (testvariable)\n"
        b"\n"
        b"520 End of proper usage.\n"
        b"200 result=0\n"
    )
    first, second = replies(data)
    assert isinstance(first, Reply) and first.code == 520
    assert first.data is not None and "200 result=1 (testvariable)" in first.data
    assert first.raw == data[: data.index(b"200 result=0\n")]
    assert isinstance(second, Reply) and second.result == 0


def test_520_end_marker_glued_to_the_last_usage_line_still_ends_the_reply() -> None:
    """res_agi prints the usage with %s; without a final newline the marker is glued on."""
    first, second = replies(
        b"520-Invalid command syntax.  Proper usage follows:\nUsage: X520 End of proper usage.\n"
        b"200 result=1\n"
    )
    assert isinstance(first, Reply) and first.code == 520
    assert isinstance(second, Reply) and second.result == 1


def test_single_line_520_when_usage_is_not_available() -> None:
    """'520 Invalid command syntax.  Proper usage not available.' is a complete reply."""
    reply = only_reply(b"520 Invalid command syntax.  Proper usage not available.\n")
    assert reply.code == 520


def test_hangup_line_before_a_reply_is_its_own_event() -> None:
    """The out-of-band HANGUP precedes the reply it interrupted, as recorded."""
    events = replies(b"HANGUP\n200 result=1 (+77011234567)\n")
    assert isinstance(events[0], HangupNotice)
    assert isinstance(events[1], Reply) and events[1].data == "+77011234567"


def test_partial_line_needs_more_data() -> None:
    """Half a reply produces no event until its newline arrives."""
    parser = AgiParser()
    parser.feed(HEADER + b"200 res")
    assert isinstance(parser.next_event(), Environment)
    assert parser.next_event() is NEED_DATA
    parser.feed(b"ult=0\n")
    event = parser.next_event()
    assert isinstance(event, Reply) and event.result == 0


# --- hostile input -----------------------------------------------------------------------


def test_garbage_line_raises_with_the_line_and_poisons_the_parser() -> None:
    """A line that is not AGI raises RemoteProtocolError naming it, now and on every retry."""
    parser = AgiParser()
    parser.feed(HEADER + b"HTTP/1.1 200 OK\n200 result=0\n")
    assert isinstance(parser.next_event(), Environment)
    with pytest.raises(RemoteProtocolError, match=r"HTTP/1\.1 200 OK"):
        parser.next_event()
    with pytest.raises(RemoteProtocolError):
        parser.next_event()


def test_garbage_after_hangup_raises() -> None:
    """HANGUP followed by junk is still junk."""
    parser = AgiParser()
    parser.feed(HEADER + b"HANGUP\n\x00\x01garbage\n")
    assert isinstance(parser.next_event(), Environment)
    assert isinstance(parser.next_event(), HangupNotice)
    with pytest.raises(RemoteProtocolError, match="garbage"):
        parser.next_event()


def test_64_kib_line_raises_before_it_is_buffered_whole() -> None:
    """A line longer than the cap raises as soon as the cap is passed, newline or not."""
    parser = AgiParser(Limits(max_line_bytes=8192))
    parser.feed(b"agi_calleridname: ")
    with pytest.raises(RemoteProtocolError, match="8192"):
        for _ in range(8):
            parser.feed(b"x" * 8192)
            parser.next_event()


def test_too_many_header_lines_raise() -> None:
    """An environment block with more lines than the cap is refused."""
    block = b"".join(b"agi_x%d: y\n" % n for n in range(300)) + b"\n"
    with pytest.raises(RemoteProtocolError, match="256"):
        parse(block)


def test_header_bytes_cap_is_enforced() -> None:
    """Many long-but-legal lines still hit the total header cap."""
    block = b"".join(b"agi_x%d: %s\n" % (n, b"y" * 4000) for n in range(20)) + b"\n"
    with pytest.raises(RemoteProtocolError, match="larger than"):
        parse(block, limits=Limits(max_header_bytes=32768))


def test_header_line_without_agi_prefix_is_garbage() -> None:
    """A header line that is not 'agi_name: value' (e.g. a split caller name) is refused."""
    with pytest.raises(RemoteProtocolError, match="evil"):
        parse(b"agi_calleridname: Bob\nevil\n\n")


def test_eof_mid_header_raises_and_clean_eof_is_an_event() -> None:
    """EOF inside the header is an error; EOF at a line boundary after it is ConnectionClosed."""
    with pytest.raises(RemoteProtocolError, match="environment"):
        parse(b"agi_network: yes\nagi_network_script: route\n", eof=True)
    with pytest.raises(RemoteProtocolError, match="middle of a line"):
        parse(HEADER + b"200 resu", eof=True)
    assert parse(b"", eof=True) == [ConnectionClosed()]
    assert parse(HEADER + b"200 result=0\n", eof=True)[-1] == ConnectionClosed()


def test_eof_inside_multiline_reply_raises() -> None:
    """A 520- block cut off by EOF is a protocol error, not a half reply."""
    with pytest.raises(RemoteProtocolError, match="multi-line"):
        parse(HEADER + b"520-Invalid command syntax.\nUsage\n", eof=True)


# --- the connection rule -----------------------------------------------------------------


def test_reply_without_a_command_in_flight_is_a_remote_error() -> None:
    """Asterisk never answers what was not asked; an unsolicited reply is refused."""
    conn = AgiConnection()
    conn.receive_data(HEADER + b"200 result=0\n")
    assert isinstance(conn.next_event(), Environment)
    with pytest.raises(RemoteProtocolError, match="no command was in flight"):
        conn.next_event()


def test_one_command_in_flight_and_none_before_the_environment() -> None:
    """Sending before the header or while a reply is pending is our mistake."""
    conn = AgiConnection()
    with pytest.raises(LocalProtocolError, match="environment"):
        conn.send_command(cmd.answer())
    conn.receive_data(HEADER)
    conn.next_event()
    conn.send_command(cmd.answer())
    with pytest.raises(LocalProtocolError, match="in flight"):
        conn.send_command(cmd.noop())


def test_hangup_and_511_set_hung_up() -> None:
    """Both the HANGUP line and a 511 reply mark the channel dead."""
    for data in (b"HANGUP\n", b"511 Command Not Permitted on a dead channel\n"):
        conn = AgiConnection()
        conn.receive_data(HEADER)
        conn.next_event()
        conn.send_command(cmd.stream_file("beep"))
        conn.receive_data(data)
        conn.next_event()
        assert conn.hung_up


# --- encoding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arg", "wire"),
    [
        ("beep", "beep"),
        ("", '""'),
        ("silence/1", "silence/1"),
        ("CALLERID(num)", "CALLERID(num)"),
        ("Local/1001@agents", '"Local/1001@agents"'),
        ('he said "hi"', '"he said \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("Иван", '"Иван"'),
        ("tab\there", '"tab\there"'),
    ],
)
def test_quote_argument(arg: str, wire: str) -> None:
    """Plain words go bare; anything else is quoted with backslash and quote escaped."""
    assert quote_argument(arg) == wire
    assert split_command(f"X {wire}") == ["X", arg]


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\0b"])
def test_cr_lf_nul_are_refused(bad: str) -> None:
    """CR, LF and NUL would end or truncate the command line; they never reach the wire."""
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        cmd.set_variable("ACD_NOTE", bad)


def test_over_long_commands_and_too_many_words_are_refused() -> None:
    """res_agi would split a line over 2046 bytes and drop words past 127: refuse both."""
    encode_command("VERBOSE", "x" * 2030)
    with pytest.raises(LocalProtocolError, match="2046 bytes"):
        encode_command("VERBOSE", "x" * 2046)
    with pytest.raises(LocalProtocolError, match="127 words"):
        encode_command("EXEC", *["a"] * 127)


@pytest.mark.parametrize("name", ["1ABC", "A B", "X-Y", "A(b)", "", "ACD_NOTE\n"])
def test_set_variable_refuses_bad_names(name: str) -> None:
    """SET VARIABLE names match [A-Za-z_][A-Za-z0-9_]*; untrusted text is never a name."""
    with pytest.raises(LocalProtocolError, match="not a variable"):
        cmd.set_variable(name, "v")


def test_bad_verbs_and_failure_prefix_are_refused() -> None:
    """Verbs are upper-case words; a line starting with FAILURE would end the AGI."""
    for verb in ("answer", "GET  DATA", "GET\tDATA", ""):
        with pytest.raises(LocalProtocolError, match="verb"):
            encode_command(verb)
    with pytest.raises(LocalProtocolError, match="FAILURE"):
        encode_command("FAILURE")


def test_dtmf_collection_is_bounded() -> None:
    """GET DATA refuses an unbounded or silly max_digits; escape digits are DTMF only."""
    with pytest.raises(LocalProtocolError, match="max_digits"):
        cmd.get_data("beep", 3000, 0)
    with pytest.raises(LocalProtocolError, match="max_digits"):
        cmd.get_data("beep", 3000, 1000)
    with pytest.raises(LocalProtocolError, match="Escape digits"):
        cmd.stream_file("beep", "1 2")
    with pytest.raises(LocalProtocolError, match="non-negative"):
        cmd.wait_for_digit(-5)


def test_helpers_produce_the_expected_lines() -> None:
    """The helpers for the commands the engine uses produce these exact lines."""
    assert cmd.answer() == b"ANSWER\n"
    assert cmd.hangup() == b"HANGUP\n"
    assert cmd.verbose("queued in tech", 2) == b'VERBOSE "queued in tech" 2\n'
    assert cmd.get_full_variable("${CALLERID(num)}") == b'GET FULL VARIABLE "${CALLERID(num)}"\n'
    assert cmd.exec_application("Dial", "PJSIP/1001,20") == b"EXEC Dial PJSIP/1001,20\n"
    assert cmd.exec_application("Answer") == b"EXEC Answer\n"
    assert cmd.wait_for_digit(3000) == b"WAIT FOR DIGIT 3000\n"


# --- results -----------------------------------------------------------------------------


def test_wait_for_digit_result_is_an_ascii_code() -> None:
    """55 is '7'; 0 is no key; -1 is failure or hangup."""
    assert cmd.digit_pressed(only_reply(b"200 result=55\n")) == "7"
    assert cmd.digit_pressed(only_reply(b"200 result=35\n")) == "#"
    assert cmd.digit_pressed(only_reply(b"200 result=0 endpos=3520\n")) == ""
    assert cmd.digit_pressed(only_reply(b"200 result=-1 endpos=12000\n")) is None
    assert cmd.digit_pressed(only_reply(b"511 Command Not Permitted\n")) is None
    with pytest.raises(RemoteProtocolError, match="DTMF"):
        cmd.digit_pressed(only_reply(b"200 result=65536\n"))


def test_get_data_result_is_the_digit_string() -> None:
    """GET DATA returns the digits themselves, leading zeros and '#' included."""
    assert cmd.digits_entered(only_reply(b"200 result=3\n")) == "3"
    assert cmd.digits_entered(only_reply(b"200 result=0123#\n")) == "0123#"
    assert cmd.digits_entered(only_reply(b"200 result= (timeout)\n")) == ""
    assert cmd.digits_entered(only_reply(b"200 result=-1\n")) is None
    with pytest.raises(RemoteProtocolError, match="not DTMF"):
        cmd.digits_entered(only_reply(b"200 result=1x\n"))


def test_variable_value_distinguishes_unset_from_empty() -> None:
    """result=0 is unset (None); result=1 () is the empty string."""
    assert cmd.variable_value(only_reply(b"200 result=0\n")) is None
    assert cmd.variable_value(only_reply(b"200 result=1 ()\n")) == ""
    assert cmd.variable_value(only_reply(b"200 result=1 (v1)\n")) == "v1"


def test_dead_channel_commands_follow_res_agi() -> None:
    """GET/SET VARIABLE, EXEC, NOOP, VERBOSE still run after hangup; STREAM FILE does not."""
    assert cmd.allowed_on_dead_channel(cmd.get_variable("CALLERID(num)"))
    assert cmd.allowed_on_dead_channel(cmd.set_variable("ACD_X", "1"))
    assert cmd.allowed_on_dead_channel(cmd.exec_application("Playback", "beep"))
    assert not cmd.allowed_on_dead_channel(cmd.stream_file("beep"))
    assert not cmd.allowed_on_dead_channel(cmd.set_music(True))
    assert not cmd.allowed_on_dead_channel(cmd.hangup())


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('a "b c" d', ["a", "b c", "d"]),
        ("x\\ y", ["x y"]),
        ('""', [""]),
        ('ab"c d"e', ["abc de"]),
        ("a  \t b", ["a", "b"]),
        ('"\\"q\\\\"', ['"q\\']),
    ],
)
def test_split_command_mirrors_res_agi_parse_args(line: str, words: list[str]) -> None:
    """Quotes toggle, backslash escapes, spaces and tabs split: as parse_args in res_agi.c."""
    assert split_command(line) == words
