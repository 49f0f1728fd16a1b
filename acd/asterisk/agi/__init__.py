"""FastAGI: a sans-I/O codec (`codec`, `commands`) and an asyncio server (`server`); the load
generator that drives it in benchmarks is :mod:`acd.testing.loadgen`."""

from acd.asterisk.agi.codec import (
    DEFAULT_LIMITS,
    NEED_DATA,
    AgiConnection,
    AgiEnvironment,
    AgiParser,
    AgiProtocolError,
    ConnectionClosed,
    Environment,
    HangupNotice,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Reply,
)
from acd.asterisk.agi.commands import encode_command, quote_argument, split_command
from acd.asterisk.agi.server import (
    AgiSession,
    CommandTimeout,
    FastAgiServer,
    Handler,
    SessionClosed,
)

__all__ = [
    "DEFAULT_LIMITS",
    "NEED_DATA",
    "AgiConnection",
    "AgiEnvironment",
    "AgiParser",
    "AgiProtocolError",
    "AgiSession",
    "CommandTimeout",
    "ConnectionClosed",
    "Environment",
    "FastAgiServer",
    "Handler",
    "HangupNotice",
    "Limits",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Reply",
    "SessionClosed",
    "encode_command",
    "quote_argument",
    "split_command",
]
