"""The objects of the fake Asterisk: channels, bridges and playbacks as ARI shows them, the
agent phone scripts, and Asterisk's cause and media tables (from the recordings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


class Timer(Protocol):
    """A scheduled callback that can be cancelled (an ``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Scheduler(Protocol):
    """Where the fake's time comes from (an asyncio event loop is one)."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer: ...


#: Cause texts as Asterisk prints them in ChannelDestroyed.
CAUSE_TEXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    21: "Call Rejected",
    32: "Circuit/channel congestion",
    34: "Circuit/channel congestion",
}
#: ARI hangup reasons and the Q.850 cause each produces.
REASON_CAUSE = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,
    "answered_elsewhere": 26,
}
#: DELETE /channels/{id} without a reason: Asterisk 22 reported cause 32 (recorded).
DEFAULT_API_HANGUP_CAUSE = 32
#: Media lengths in seconds (beep measured in the recording); others use `default_media_s`.
MEDIA_SECONDS = {"sound:beep": 0.44, "sound:tt-monkeys": 10.0}
DTMF_DIGITS = frozenset("0123456789*#ABCD")

@dataclass
class AgentScript:
    """How an agent's phone behaves when the engine originates to it.

    `answer_after` seconds until answer (None: never, so the ring timeout fires: RONA);
    `busy` rejects at once; `talk_time` seconds after answering the agent hangs up (None: never).
    """

    answer_after: float | None = 0.0
    busy: bool = False
    talk_time: float | None = None


@dataclass
class FakeChannel:
    """A channel: a caller, an agent leg, or the other half of a Local pair."""

    id: str
    name: str
    kind: str  # caller | caller_leg1 | agent | agent_leg2
    state: str = "Down"
    caller: tuple[str, str] = ("", "")
    connected: tuple[str, str] = ("", "")
    context: str = ""
    exten: str = ""
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    creationtime: str = ""
    language: str = "en"
    in_stasis: bool = False
    subscribed: bool = False  # originated with app=: events keep coming until destroyed
    bridge_id: str | None = None
    partner: str | None = None  # the other leg of a Local channel pair
    args: tuple[str, ...] = ()
    dialstring: str = ""
    endpoint: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    timers: list[Timer] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        """As ARI shows it."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": "",
            "caller": {"name": self.caller[0], "number": self.caller[1]},
            "connected": {"name": self.connected[0], "number": self.connected[1]},
            "accountcode": "",
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": self.creationtime,
            "language": self.language,
        }


@dataclass
class FakeBridge:
    """A holding or mixing bridge."""

    id: str
    bridge_type: str
    name: str
    creationtime: str
    channels: list[str] = field(default_factory=list)
    moh_class: str | None = None
    watched: int = 0  # addChannel subscribes the app to the bridge, removeChannel unsubscribes

    def json(self) -> dict[str, Any]:
        technology = "holding_bridge" if self.bridge_type == "holding" else "simple_bridge"
        return {
            "id": self.id,
            "technology": technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": self.creationtime,
            "video_mode": "talker",
        }


@dataclass
class FakePlayback:
    """A prompt playing on a channel."""

    id: str
    media_uri: str
    channel_id: str
    language: str
    state: str = "queued"
    timer: Timer | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media_uri,
            "target_uri": f"channel:{self.channel_id}",
            "language": self.language,
            "state": self.state,
        }


def stamp() -> str:
    """Now, as Asterisk stamps events and channels."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def parse_caller_id(text: str) -> tuple[str, str]:
    """``Olga <+380441234567>`` -> ("Olga", "+380441234567"); a bare number has no name."""
    if "<" in text and text.endswith(">"):
        name, _, number = text[:-1].partition("<")
        return name.strip().strip('"'), number.strip()
    return "", text.strip()
