"""Encoding AGI commands exactly as Asterisk's res_agi parses them, and reading their results.

Asterisk splits a command line on spaces and tabs; a double quote toggles quoting and a
backslash makes the next character literal (``parse_args`` in res_agi.c, mirrored by
`split_command`). Arguments made only of plain characters go bare, everything else is quoted
with ``\\`` and ``"`` escaped: quoting is always correct, bare words keep the wire readable.
CR, LF and NUL can never be sent (they would end or truncate the command).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from acd.asterisk import variables
from acd.asterisk.agi.codec import LocalProtocolError, RemoteProtocolError, Reply

#: res_agi reads a command into a 2048-byte buffer with fgets: longer lines are split in two.
MAX_COMMAND_BYTES = 2046
#: res_agi keeps at most 127 words (MAX_ARGS 128 minus the terminator) and drops the rest.
MAX_WORDS = 127
#: GET DATA collects at most this many digits: DTMF input is always bounded.
MAX_DIGITS = 64

#: Commands res_agi still runs on a hung-up channel (its command table's "dead" flag);
#: anything else gets ``511 Command Not Permitted on a dead channel``.
DEAD_CHANNEL_VERBS = frozenset(
    {
        "ASYNCAGI BREAK",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "NOOP",
        "SET VARIABLE",
        "VERBOSE",
        "SPEECH DESTROY",
        "SPEECH UNLOAD GRAMMAR",
    }
)

_VERB_RE = re.compile(r"[A-Z]+(?: [A-Z]+)*")
_BARE_RE = re.compile(r"[A-Za-z0-9_./()+*#=:,-]+")
_FORBIDDEN = ("\r", "\n", "\0")
_VARIABLE_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_READABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_,.-]*\))?")
_ESCAPE_DIGITS_RE = re.compile(r"[0-9*#]*")
_DTMF = "0123456789*#ABCD"


def quote_argument(arg: str) -> str:
    """One argument as it goes on the wire: bare if plain, else quoted with escapes."""
    for char in _FORBIDDEN:
        if char in arg:
            raise LocalProtocolError(
                f"An AGI argument may not contain CR, LF or NUL; got {arg[:80]!r}."
            )
    if _BARE_RE.fullmatch(arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def clean_text(text: str, max_chars: int = 256) -> str:
    """Untrusted text (a caller name) made fit for an argument: control characters become
    spaces, and it is cut to ``max_chars``; quoting then makes it one safe argument."""
    cut = text[:max_chars]
    return "".join(char if char.isprintable() or char == " " else " " for char in cut)


def encode_command(verb: str, *args: str | int) -> bytes:
    """The bytes of one command line, e.g. ``encode_command("SET VARIABLE", "X", "a b")``."""
    if not _VERB_RE.fullmatch(verb):
        raise LocalProtocolError(
            f"An AGI verb is upper-case words separated by single spaces; got {verb!r}."
        )
    if verb.startswith("FAILURE"):
        # res_agi treats any line starting with "failure" as the script giving up.
        raise LocalProtocolError("A command starting with FAILURE would end the AGI at once.")
    words = [verb]
    for arg in args:
        if isinstance(arg, bool) or not isinstance(arg, str | int):
            raise LocalProtocolError(f"AGI arguments are str or int; got {arg!r}.")
        words.append(quote_argument(str(arg)))
    if len(words) + verb.count(" ") > MAX_WORDS:
        raise LocalProtocolError(f"An AGI command may have at most {MAX_WORDS} words.")
    try:
        line = " ".join(words).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"An AGI argument is not encodable as UTF-8: {exc}.") from None
    if len(line) > MAX_COMMAND_BYTES:
        raise LocalProtocolError(
            f"An AGI command may be at most {MAX_COMMAND_BYTES} bytes; this one is {len(line)}: "
            f"{line[:60]!r}..."
        )
    return line + b"\n"


def split_command(line: str) -> list[str]:
    """Split a command line into words the way res_agi's ``parse_args`` does."""
    words: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    in_word = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            in_word = True
        elif char in " \t" and not quoted and not escaped:
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        elif char == "\\" and not escaped:
            escaped = True
            continue
        else:
            current.append(char)
            in_word = True
        escaped = False
    if in_word:
        words.append("".join(current))
    return words


def verb_of(command: bytes | str) -> str:
    """The verb words of a command line, upper-cased, e.g. ``GET VARIABLE``."""
    text = command.decode("utf-8", errors="replace") if isinstance(command, bytes) else command
    words = split_command(text.rstrip("\n"))
    for size in (3, 2, 1):
        candidate = " ".join(words[:size]).upper()
        if candidate in _KNOWN_VERBS:
            return candidate
    return words[0].upper() if words else ""


def allowed_on_dead_channel(command: bytes | str) -> bool:
    """Whether Asterisk still runs this command after the caller hung up (else it sends 511)."""
    return verb_of(command) in DEAD_CHANNEL_VERBS


def _variable_name(name: str, *, readable: bool = False) -> str:
    pattern = _READABLE_RE if readable else _VARIABLE_NAME_RE
    if not pattern.fullmatch(name):
        kind = "a variable or function such as CALLERID(num)" if readable else "a variable"
        raise LocalProtocolError(
            f"{name[:80]!r} is not {kind} name: use letters, digits and '_', not starting "
            "with a digit."
        )
    return name


def _escape_digits(digits: str) -> str:
    if not _ESCAPE_DIGITS_RE.fullmatch(digits):
        raise LocalProtocolError(f"Escape digits are 0-9, * and #; got {digits!r}.")
    return digits


def _non_negative(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LocalProtocolError(f"{what} must be a non-negative integer; got {value!r}.")
    return value


def answer() -> bytes:
    """``ANSWER``: answer the channel."""
    return encode_command("ANSWER")


def hangup() -> bytes:
    """``HANGUP``: hang up the caller's channel."""
    return encode_command("HANGUP")


def noop() -> bytes:
    """``NOOP``: does nothing; a cheap liveness probe that also works on a dead channel."""
    return encode_command("NOOP")


def channel_status() -> bytes:
    """``CHANNEL STATUS``: the channel state (6 = up)."""
    return encode_command("CHANNEL STATUS")


def get_variable(name: str) -> bytes:
    """``GET VARIABLE``: read a channel variable or a simple function such as CALLERID(num)."""
    return encode_command("GET VARIABLE", _variable_name(name, readable=True))


def get_full_variable(expression: str) -> bytes:
    """``GET FULL VARIABLE``: evaluate an expression; it must never contain untrusted text."""
    return encode_command("GET FULL VARIABLE", expression)


def set_variable(name: str, value: str) -> bytes:
    """``SET VARIABLE``: set a channel variable; the value may be anything but CR, LF, NUL."""
    return encode_command("SET VARIABLE", _variable_name(name), value)


def set_variables(pairs: Sequence[tuple[str, str]]) -> bytes:
    """Set every ``(name, value)`` in one command: a plain ``SET VARIABLE`` for one pair,
    else ``SET VARIABLE ARRAY(n1,n2,...) "v1,v2,..."``.

    res_agi's SET VARIABLE hands a name ending in ``)`` to the function's writer, and
    Asterisk's ``ARRAY()`` sets each name in order (`acd.asterisk.variables`: what a value may
    hold). A bad name or value raises `LocalProtocolError` rather than set the wrong
    variables.
    """
    if not pairs:
        raise LocalProtocolError("set_variables needs at least one (name, value) pair.")
    if len(pairs) == 1:
        name, value = pairs[0]
        return encode_command("SET VARIABLE", _variable_name(name, readable=name.endswith(")")),
                              value)
    try:
        name, value = variables.array(pairs)
    except ValueError as exc:
        raise LocalProtocolError(str(exc)) from None
    return encode_command("SET VARIABLE", name, value)


#: A language Asterisk can name a sound directory after: a letter, then letters, digits, ``_``
#: or ``-`` (``ru``, ``en_GB``); never a path (``/``, ``..``) or caller text.
LANGUAGE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")


def set_language(language: str) -> bytes:
    """``SET VARIABLE CHANNEL(language) <language>``: the language Asterisk's own prompts use
    on this channel (res_agi hands a name ending in ``)`` to the function's writer)."""
    if not LANGUAGE_RE.fullmatch(language):
        raise LocalProtocolError(f"{language[:80]!r} is not a language code such as ru or "
                                 "en_GB.")
    return encode_command("SET VARIABLE", "CHANNEL(language)", language)


def stream_file(name: str, escape_digits: str = "") -> bytes:
    """``STREAM FILE``: play a prompt; a key in ``escape_digits`` interrupts it."""
    return encode_command("STREAM FILE", name, _escape_digits(escape_digits))


def get_data(prompt: str, timeout_ms: int, max_digits: int) -> bytes:
    """``GET DATA``: play ``prompt`` and collect up to ``max_digits`` DTMF digits."""
    if not 1 <= max_digits <= MAX_DIGITS:
        raise LocalProtocolError(f"max_digits must be 1..{MAX_DIGITS}; got {max_digits!r}.")
    return encode_command(
        "GET DATA", prompt, _non_negative(timeout_ms, "timeout_ms"), max_digits
    )


def wait_for_digit(timeout_ms: int) -> bytes:
    """``WAIT FOR DIGIT``: wait up to ``timeout_ms`` for one key press."""
    return encode_command("WAIT FOR DIGIT", _non_negative(timeout_ms, "timeout_ms"))


def set_music(on: bool, moh_class: str = "default") -> bytes:
    """``SET MUSIC ON <class>`` or ``SET MUSIC OFF``: music on hold for a queued caller."""
    return encode_command("SET MUSIC ON", moh_class) if on else encode_command("SET MUSIC OFF")


def exec_application(application: str, options: str = "") -> bytes:
    """``EXEC``: run a dialplan application; only one options string reaches it."""
    if not _VARIABLE_NAME_RE.fullmatch(application):
        raise LocalProtocolError(f"{application!r} is not a dialplan application name.")
    if options:
        return encode_command("EXEC", application, options)
    return encode_command("EXEC", application)


def verbose(message: str, level: int = 1) -> bytes:
    """``VERBOSE``: log ``message`` on the Asterisk console at ``level`` (1-4)."""
    if not 1 <= level <= 4:
        raise LocalProtocolError(f"VERBOSE level must be 1..4; got {level!r}.")
    return encode_command("VERBOSE", message, level)


def say_digits(digits: str, escape_digits: str = "") -> bytes:
    """``SAY DIGITS``: speak a digit string."""
    if not digits.isascii() or not digits.isdigit():
        raise LocalProtocolError(f"SAY DIGITS takes digits 0-9; got {digits[:80]!r}.")
    return encode_command("SAY DIGITS", digits, _escape_digits(escape_digits))


def database_get(family: str, key: str) -> bytes:
    """``DATABASE GET``: read an AstDB entry."""
    return encode_command("DATABASE GET", family, key)


def database_put(family: str, key: str, value: str) -> bytes:
    """``DATABASE PUT``: write an AstDB entry."""
    return encode_command("DATABASE PUT", family, key, value)


def variable_value(reply: Reply) -> str | None:
    """The value from a GET VARIABLE / GET FULL VARIABLE / DATABASE GET reply; None if unset."""
    if reply.code != 200 or reply.result != 1:
        return None
    return reply.data if reply.data is not None else ""


def digit_pressed(reply: Reply) -> str | None:
    """The key from WAIT FOR DIGIT, STREAM FILE or SAY DIGITS (result is its ASCII code).

    ``""`` means no key was pressed; None means the command failed or the caller hung up.
    """
    if reply.code != 200 or reply.result is None or reply.result < 0:
        return None
    if reply.result == 0:
        return ""
    digit = chr(reply.result) if reply.result < 128 else ""
    if digit == "" or digit not in _DTMF:
        raise RemoteProtocolError(f"Result {reply.result} is not the ASCII code of a DTMF key.")
    return digit


def digits_entered(reply: Reply) -> str | None:
    """The digit string from GET DATA (``""`` on timeout with no input); None on failure."""
    if reply.code != 200 or reply.result_text == "-1":
        return None
    if any(char not in _DTMF for char in reply.result_text):
        raise RemoteProtocolError(f"GET DATA returned {reply.result_text!r}, not DTMF digits.")
    return reply.result_text


_KNOWN_VERBS = DEAD_CHANNEL_VERBS | {
    "ANSWER",
    "CHANNEL STATUS",
    "CONTROL STREAM FILE",
    "GET DATA",
    "GET OPTION",
    "HANGUP",
    "RECORD FILE",
    "SAY ALPHA",
    "SAY DIGITS",
    "SAY NUMBER",
    "SET AUTOHANGUP",
    "SET CALLERID",
    "SET CONTEXT",
    "SET EXTENSION",
    "SET MUSIC",
    "SET PRIORITY",
    "STREAM FILE",
    "WAIT FOR DIGIT",
}
