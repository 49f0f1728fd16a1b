"""Typed, immutable views of the ARI resources and events the engine uses.

Shapes follow what Asterisk 22 sends (see tests/recordings/asterisk/ari-*.jsonl). Parsing is
lenient about what it does not need (extra fields, unknown event types) and strict about what it
does (an event whose channel has no id raises `MalformedEvent`, which the caller logs and skips).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Hard cap on a text event we agree to decode; larger ones are malformed by definition.
MAX_EVENT_CHARS = 1_000_000
#: Deepest nesting of arrays and objects we decode (Asterisk's events nest about 4 deep).
MAX_JSON_DEPTH = 32
#: Longest integer literal we decode (Python refuses past 4,300 digits, and ARI sends few).
MAX_INT_DIGITS = 40
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


class MalformedEvent(ValueError):
    """An ARI event that cannot be understood: not JSON, not an object, or a mistyped field."""

    def __init__(self, message: str, event_type: str | None = None) -> None:
        super().__init__(message)
        self.event_type = event_type


# ---------------------------------------------------------------- field readers


def _obj(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{where}: field {key!r} must be an object, got {_kind(value)}.")
    return value


def _opt_obj(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    return None if data.get(key) is None else _obj(data, key, where)


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = "") -> str:
    value = data.get(key, default)
    if value is None and default is not None:
        value = default
    if not isinstance(value, str):
        raise MalformedEvent(f"{where}: field {key!r} must be a string, got {_kind(value)}.")
    return value


def _opt_int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    # bool is an int in Python; a boolean cause is a protocol error, not cause 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEvent(f"{where}: field {key!r} must be an integer, got {_kind(value)}.")
    return value


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


# ---------------------------------------------------------------- resources


@dataclass(frozen=True, slots=True)
class CallerId:
    """A name and number pair as ARI reports it (caller or connected line)."""

    name: str = ""
    number: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, where: str) -> CallerId:
        """Read `{"name": ..., "number": ...}`; a missing object is an empty caller id."""
        if data is None:
            return cls()
        return cls(name=_str(data, "name", where), number=_str(data, "number", where))


@dataclass(frozen=True, slots=True)
class DialplanLocation:
    """Where a channel is in the dialplan, and which application it runs."""

    context: str = ""
    exten: str = ""
    priority: int = 0
    app_name: str = ""
    app_data: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, where: str) -> DialplanLocation:
        """Read ARI's `dialplan` object; a missing object is an empty location."""
        if data is None:
            return cls()
        return cls(
            context=_str(data, "context", where),
            exten=_str(data, "exten", where),
            priority=_opt_int(data, "priority", where) or 0,
            app_name=_str(data, "app_name", where),
            app_data=_str(data, "app_data", where),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel snapshot: a caller's or an agent's leg of a call."""

    id: str
    name: str
    state: str
    caller: CallerId = CallerId()
    connected: CallerId = CallerId()
    dialplan: DialplanLocation = DialplanLocation()
    creationtime: str = ""
    language: str = ""
    accountcode: str = ""

    @property
    def caller_name(self) -> str:
        """The caller-id name (untrusted text from the network)."""
        return self.caller.name

    @property
    def caller_number(self) -> str:
        """The caller-id number (untrusted text from the network)."""
        return self.caller.number

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "channel") -> Channel:
        """Build from ARI's Channel JSON; `id` is required, the rest defaults to empty."""
        channel_id = _str(data, "id", where, default=None)
        if not channel_id:
            raise MalformedEvent(f"{where}: field 'id' must be a non-empty string.")
        return cls(
            id=channel_id,
            name=_str(data, "name", where),
            state=_str(data, "state", where),
            caller=CallerId.from_json(_opt_obj(data, "caller", where), where + ".caller"),
            connected=CallerId.from_json(_opt_obj(data, "connected", where), where + ".connected"),
            dialplan=DialplanLocation.from_json(
                _opt_obj(data, "dialplan", where), where + ".dialplan"
            ),
            creationtime=_str(data, "creationtime", where),
            language=_str(data, "language", where),
            accountcode=_str(data, "accountcode", where),
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    """A bridge: `holding` for callers waiting with music on hold, `mixing` for a conversation."""

    id: str
    bridge_type: str = ""
    technology: str = ""
    bridge_class: str = ""
    creator: str = ""
    name: str = ""
    channels: tuple[str, ...] = ()
    creationtime: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "bridge") -> Bridge:
        """Build from ARI's Bridge JSON; `id` is required."""
        bridge_id = _str(data, "id", where, default=None)
        if not bridge_id:
            raise MalformedEvent(f"{where}: field 'id' must be a non-empty string.")
        channels = data.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise MalformedEvent(f"{where}: field 'channels' must be a list of channel ids.")
        return cls(
            id=bridge_id,
            bridge_type=_str(data, "bridge_type", where),
            technology=_str(data, "technology", where),
            bridge_class=_str(data, "bridge_class", where),
            creator=_str(data, "creator", where),
            name=_str(data, "name", where),
            channels=tuple(channels),
            creationtime=_str(data, "creationtime", where),
        )


@dataclass(frozen=True, slots=True)
class Playback:
    """A prompt being played: `queued`, `playing`, then `done` (or `failed`)."""

    id: str
    media_uri: str = ""
    target_uri: str = ""
    language: str = ""
    state: str = ""

    @property
    def channel_id(self) -> str | None:
        """The channel the prompt plays to, when the target is a channel."""
        prefix = "channel:"
        return self.target_uri[len(prefix) :] if self.target_uri.startswith(prefix) else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "playback") -> Playback:
        """Build from ARI's Playback JSON; `id` is required."""
        playback_id = _str(data, "id", where, default=None)
        if not playback_id:
            raise MalformedEvent(f"{where}: field 'id' must be a non-empty string.")
        return cls(
            id=playback_id,
            media_uri=_str(data, "media_uri", where),
            target_uri=_str(data, "target_uri", where),
            language=_str(data, "language", where),
            state=_str(data, "state", where),
        )


def _id_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedEvent(f"{where}: field {key!r} must be a list of strings.")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Application:
    """What Asterisk holds for a Stasis application: the basis of reconciling after a drop."""

    name: str
    channel_ids: tuple[str, ...] = ()
    bridge_ids: tuple[str, ...] = ()
    endpoint_ids: tuple[str, ...] = ()
    device_names: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "application") -> Application:
        """Build from ARI's Application JSON."""
        return cls(
            name=_str(data, "name", where),
            channel_ids=_id_list(data, "channel_ids", where),
            bridge_ids=_id_list(data, "bridge_ids", where),
            endpoint_ids=_id_list(data, "endpoint_ids", where),
            device_names=_id_list(data, "device_names", where),
        )


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True, kw_only=True)
class AriEvent:
    """Fields every ARI event carries."""

    type: str
    timestamp: str = ""
    application: str = ""
    asterisk_id: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(AriEvent):
    """A channel entered the application (a caller from the dialplan, or an answered agent leg)."""

    channel: Channel
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(AriEvent):
    """A channel left the application (hung up or continued in the dialplan)."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(AriEvent):
    """A channel's state changed (Ring, Ringing, Up, ...)."""

    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(AriEvent):
    """The caller pressed a key."""

    channel: Channel
    digit: str
    duration_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(AriEvent):
    """Someone asked for the channel to hang up; `soft` when the request came from software."""

    channel: Channel
    cause: int | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(AriEvent):
    """The channel is gone; cause 19 ("User alerting, no answer") is ring-no-answer."""

    channel: Channel
    cause: int = 0
    cause_txt: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(AriEvent):
    """A channel variable (or a global one, when `channel` is None) was set."""

    variable: str
    value: str = ""
    channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(AriEvent):
    """A prompt started playing."""

    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(AriEvent):
    """A prompt finished, or was stopped."""

    playback: Playback


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(AriEvent):
    """A channel joined a bridge; `bridge.channels` lists everyone in it afterwards."""

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(AriEvent):
    """A channel left a bridge (removed, or hung up while in it)."""

    bridge: Bridge
    channel: Channel


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(AriEvent):
    """A bridge the application was watching was destroyed."""

    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(AriEvent):
    """Progress of a dial to `peer`: "" at start, then RINGING, ANSWER, BUSY, NOANSWER, ..."""

    peer: Channel
    dialstatus: str = ""
    dialstring: str = ""
    forward: str = ""
    caller: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AriEvent):
    """Any event type the engine does not model, kept whole (read-only) for logging."""

    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True, kw_only=True)
class WebsocketConnected(AriEvent):
    """Synthetic: the event websocket is open for the first time (the client made this one up)."""

    type: str = "WebsocketConnected"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebsocketReconnected(AriEvent):
    """Synthetic: the websocket came back after a drop; events in between are lost, so reconcile."""

    type: str = "WebsocketReconnected"
    attempts: int = 1
    downtime_s: float = 0.0


Event = (
    StasisStart
    | StasisEnd
    | ChannelStateChange
    | ChannelDtmfReceived
    | ChannelHangupRequest
    | ChannelDestroyed
    | ChannelVarset
    | PlaybackStarted
    | PlaybackFinished
    | ChannelEnteredBridge
    | ChannelLeftBridge
    | BridgeDestroyed
    | Dial
    | UnknownEvent
    | WebsocketConnected
    | WebsocketReconnected
)


def _common(data: Mapping[str, Any], kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": _str(data, "timestamp", kind),
        "application": _str(data, "application", kind),
        "asterisk_id": _str(data, "asterisk_id", kind),
    }


def _channel(data: Mapping[str, Any], kind: str, key: str = "channel") -> Channel:
    return Channel.from_json(_obj(data, key, kind), f"{kind}.{key}")


def _parse_stasis_start(d: Mapping[str, Any], kind: str) -> Event:
    args = d.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise MalformedEvent(f"{kind}: field 'args' must be a list of strings.", kind)
    replace = _opt_obj(d, "replace_channel", kind)
    return StasisStart(
        **_common(d, kind),
        channel=_channel(d, kind),
        args=tuple(args),
        replace_channel=None if replace is None else Channel.from_json(replace, kind),
    )


def _parse_dtmf(d: Mapping[str, Any], kind: str) -> Event:
    digit = _str(d, "digit", kind, default=None)
    if len(digit) != 1:
        raise MalformedEvent(f"{kind}: field 'digit' must be one character, got {digit!r}.", kind)
    return ChannelDtmfReceived(
        **_common(d, kind),
        channel=_channel(d, kind),
        digit=digit,
        duration_ms=_opt_int(d, "duration_ms", kind) or 0,
    )


def _parse_hangup_request(d: Mapping[str, Any], kind: str) -> Event:
    soft = d.get("soft", False)
    if not isinstance(soft, bool):
        raise MalformedEvent(f"{kind}: field 'soft' must be a boolean, got {_kind(soft)}.", kind)
    return ChannelHangupRequest(
        **_common(d, kind), channel=_channel(d, kind), cause=_opt_int(d, "cause", kind), soft=soft
    )


def _parse_destroyed(d: Mapping[str, Any], kind: str) -> Event:
    return ChannelDestroyed(
        **_common(d, kind),
        channel=_channel(d, kind),
        cause=_opt_int(d, "cause", kind) or 0,
        cause_txt=_str(d, "cause_txt", kind),
    )


def _parse_varset(d: Mapping[str, Any], kind: str) -> Event:
    chan = _opt_obj(d, "channel", kind)
    return ChannelVarset(
        **_common(d, kind),
        variable=_str(d, "variable", kind, default=None),
        value=_str(d, "value", kind),
        channel=None if chan is None else Channel.from_json(chan, f"{kind}.channel"),
    )


def _parse_dial(d: Mapping[str, Any], kind: str) -> Event:
    caller = _opt_obj(d, "caller", kind)
    return Dial(
        **_common(d, kind),
        peer=_channel(d, kind, "peer"),
        dialstatus=_str(d, "dialstatus", kind),
        dialstring=_str(d, "dialstring", kind),
        forward=_str(d, "forward", kind),
        caller=None if caller is None else Channel.from_json(caller, f"{kind}.caller"),
    )


def _playback_event(cls: type[PlaybackStarted] | type[PlaybackFinished]) -> Any:
    def parse(d: Mapping[str, Any], kind: str) -> Event:
        return cls(**_common(d, kind), playback=Playback.from_json(_obj(d, "playback", kind)))

    return parse


def _bridge_event(cls: type[ChannelEnteredBridge] | type[ChannelLeftBridge]) -> Any:
    def parse(d: Mapping[str, Any], kind: str) -> Event:
        bridge = Bridge.from_json(_obj(d, "bridge", kind), f"{kind}.bridge")
        return cls(**_common(d, kind), bridge=bridge, channel=_channel(d, kind))

    return parse


def _channel_event(cls: type[StasisEnd] | type[ChannelStateChange]) -> Any:
    def parse(d: Mapping[str, Any], kind: str) -> Event:
        return cls(**_common(d, kind), channel=_channel(d, kind))

    return parse


def _parse_bridge_destroyed(d: Mapping[str, Any], kind: str) -> Event:
    return BridgeDestroyed(**_common(d, kind), bridge=Bridge.from_json(_obj(d, "bridge", kind)))


_PARSERS: dict[str, Any] = {
    "StasisStart": _parse_stasis_start,
    "StasisEnd": _channel_event(StasisEnd),
    "ChannelStateChange": _channel_event(ChannelStateChange),
    "ChannelDtmfReceived": _parse_dtmf,
    "ChannelHangupRequest": _parse_hangup_request,
    "ChannelDestroyed": _parse_destroyed,
    "ChannelVarset": _parse_varset,
    "PlaybackStarted": _playback_event(PlaybackStarted),
    "PlaybackFinished": _playback_event(PlaybackFinished),
    "ChannelEnteredBridge": _bridge_event(ChannelEnteredBridge),
    "ChannelLeftBridge": _bridge_event(ChannelLeftBridge),
    "BridgeDestroyed": _parse_bridge_destroyed,
    "Dial": _parse_dial,
}

#: Event types that parse to their own class (everything else becomes `UnknownEvent`).
MODELLED_EVENT_TYPES = frozenset(_PARSERS)


def parse_event(data: Mapping[str, Any]) -> Event:
    """Turn one decoded ARI event into its model; unknown types become `UnknownEvent`.

    Raises `MalformedEvent` when the event has no string `type` or a modelled field is wrong.
    """
    if not isinstance(data, Mapping):
        raise MalformedEvent(f"An ARI event must be a JSON object, got {_kind(data)}.")
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise MalformedEvent(f"An ARI event needs a string 'type', got {_kind(kind)}.")
    parser = _PARSERS.get(kind)
    if parser is None:
        return UnknownEvent(**_common(data, kind), raw=MappingProxyType(dict(data)))
    try:
        event: Event = parser(data, kind)
    except MalformedEvent as exc:
        exc.event_type = kind
        raise
    return event


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text (brackets in strings skipped)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return 0  # too few brackets to go too deep: skip the scan
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRINGS.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(literal)} digits")
    return int(literal)


def loads_bounded(text: str, what: str = "ARI event", max_chars: int = MAX_EVENT_CHARS) -> Any:
    """Decode JSON from Asterisk with its size, depth and integer length bounded.

    Raises `MalformedEvent` for anything it will not decode, whatever the reason (bad JSON,
    too long, too deep, an integer too long), so a hostile message is one skipped message.
    """
    if len(text) > max_chars:
        raise MalformedEvent(f"{what} of {len(text)} characters exceeds {max_chars}.")
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise MalformedEvent(f"{what} nests {depth} deep, more than {MAX_JSON_DEPTH}.")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise MalformedEvent(f"{what} is not valid JSON: {exc.msg} at {exc.pos}.") from None
    except (ValueError, RecursionError) as exc:  # an integer too long, or deeper than counted
        raise MalformedEvent(f"{what} is not acceptable JSON: {exc}.") from None


def describe(event: Event | None) -> str:
    """A short text naming an event and the channel, bridge or playback it is about."""
    if event is None:
        return "(none yet)"
    for key in ("channel", "peer", "bridge", "playback"):
        thing = getattr(event, key, None)
        if thing is not None:
            return f"{event.type} {key}={getattr(thing, 'id', '?')}"
    return event.type


def parse_event_text(text: str) -> Event:
    """Decode a websocket text message and parse it; any failure raises `MalformedEvent`."""
    return parse_event(loads_bounded(text))
