"""The one grammar of an agent's dial string, shared by ``acd check`` and every driver.

A dial string is what the engine hands Asterisk to ring an agent or a customer: the value of
``ACD_TARGET`` in ``Dial(${ACD_TARGET},...)`` (FastAGI), the ``endpoint`` of an ARI originate,
the ``Channel`` of an AMI originate. Config validation and run time ask the same question
here, so a roster that ``acd check`` accepts is dialled at run time, and one that would fail
every offer is refused before the service starts.

Accepted, one resource per string (the technologies Asterisk's channel drivers name, matched
without regard to case as Asterisk does):

- ``PJSIP/[user@]endpoint[/sip:uri]``: ``PJSIP/1001``, ``PJSIP/1001@kyiv``,
  ``PJSIP/kyiv/sip:1001@10.0.0.5:5060`` (URI parameters such as ``;transport=tcp`` too);
- ``SIP/[exten@]peer[:port][/exten]``: ``SIP/1001``, ``SIP/trunk/79161234567``;
- ``IAX2/[user[:secret]@]peer[:port][/exten[@context]]``: ``IAX2/kyiv/1001``;
- ``Local/exten[@context][/options]``: ``Local/1001@agents``, ``Local/1001@agents/n``.

Refused: anything else, and in particular every character that could turn one dial string
into more than one or into a dialplan expression once substituted: ``&`` (a second
destination), ``,`` ``|`` (Dial()'s argument separators, old and new), ``(`` ``)`` (option
arguments), ``^`` (escapes in some options), ``$`` (``${...}`` and ``$[...]``), quotes,
backslashes, white space and control characters; and anything longer than
:data:`MAX_LENGTH`. The grammar is a whitelist, so the list above is what the tests check,
not what the code enumerates.
"""

from __future__ import annotations

import re
from typing import Final

#: Longest dial string accepted (a PJSIP URI with an IPv6 host and a parameter fits).
MAX_LENGTH: Final = 128

#: Characters whose presence makes a string unsafe to substitute into ``Dial()`` (for messages
#: and tests; the grammar itself is a whitelist that admits none of them).
INJECTION_CHARACTERS: Final = frozenset("&,|()^$\"'`\\{}<>!")

# Pieces. A user or extension may hold dial digits (``*#+``); names are config section names.
_USER = r"[A-Za-z0-9_.+*#-]{1,64}"
_NAME = r"[A-Za-z0-9_.-]{1,64}"
_SECRET = r"[A-Za-z0-9_.-]{1,64}"
_HOST = r"(?:[A-Za-z0-9_.-]{1,64}|\[[0-9A-Fa-f:.]{2,45}\])"
_PORT = r"(?::[0-9]{1,5})?"
_URI_PARAMS = r"(?:;[A-Za-z0-9_.-]{1,32}(?:=[A-Za-z0-9_.-]{1,64})?){0,8}"
_SIP_URI = rf"sips?:(?:{_USER}(?::{_SECRET})?@)?{_HOST}{_PORT}{_URI_PARAMS}"

#: Technology (lower case) -> the resource after ``Tech/`` that its channel driver accepts.
RESOURCES: Final[dict[str, str]] = {
    "pjsip": rf"(?:{_USER}@)?{_NAME}(?:/{_SIP_URI})?",
    "sip": rf"(?:{_USER}@)?{_HOST}{_PORT}(?:/{_USER})?",
    "iax2": rf"(?:{_USER}(?::{_SECRET})?@)?{_HOST}{_PORT}(?:/{_USER}(?:@{_NAME})?)?",
    "local": rf"{_USER}(?:@{_NAME})?(?:/[njmb]{{1,4}})?",
}
#: How each technology's resource is written, for messages.
FORMS: Final[dict[str, str]] = {
    "pjsip": "PJSIP/[user@]endpoint[/sip:uri]",
    "sip": "SIP/[exten@]peer[:port][/exten]",
    "iax2": "IAX2/[user[:secret]@]peer[:port][/exten[@context]]",
    "local": "Local/exten[@context][/n]",
}
_TECH_NAMES: Final = ("PJSIP", "SIP", "IAX2", "Local")

_COMPILED: Final = {tech: re.compile(resource, re.ASCII) for tech, resource in RESOURCES.items()}
#: The whole grammar as one pattern (technology matched without regard to ASCII case).
DIAL_STRING: Final = re.compile(
    "|".join(rf"(?i:{tech})/{resource}" for tech, resource in RESOURCES.items()), re.ASCII)


def dial_string_problem(value: str) -> str | None:
    """Why ``value`` is not a dial string the engine may hand Asterisk, or None if it is."""
    if len(value) > MAX_LENGTH:
        return f"longer than {MAX_LENGTH} characters"
    for ch in value:
        if ch in INJECTION_CHARACTERS or not ch.isprintable() or ch.isspace():
            return (f"{ch!r} is not allowed in a dial string (one destination, no Dial() "
                    "separators, expressions, quotes, spaces or control characters)")
    tech, slash, resource = value.partition("/")
    if not slash:
        return "not Technology/resource (such as PJSIP/1001 or Local/1001@agents)"
    pattern = _COMPILED.get(tech.lower()) if tech.isascii() else None
    if pattern is None:
        return f"unknown technology {tech!r}; use one of {', '.join(_TECH_NAMES)}"
    if pattern.fullmatch(resource) is None:
        return f"not a {tech} dial string of the form {FORMS[tech.lower()]}"
    return None


def is_dial_string(value: str) -> bool:
    """Whether ``value`` is one dial string of the grammar (see the module docstring)."""
    return len(value) <= MAX_LENGTH and DIAL_STRING.fullmatch(value) is not None


#: An agent id a driver may put into a channel variable next to the dial string.
_AGENT_ID: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)


def offer_dialable(agent_id: str, endpoint: str) -> bool:
    """Whether a driver may dial an offer: ``endpoint`` is one dial string of the grammar and
    ``agent_id`` a plain id (the call machine's ``CallPolicy.dialable`` for every medium)."""
    return is_dial_string(endpoint) and _AGENT_ID.fullmatch(agent_id) is not None
