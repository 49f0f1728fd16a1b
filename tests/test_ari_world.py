"""The fake Asterisk's world model runs without a network or an event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acd.testing.ari_world import AriWorld
from acd.testing.fake_ari import event_types


class _Handle:
    """A timer of the manual scheduler."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _ManualScheduler:
    """Keeps every callback asked for; nothing runs unless the test runs it."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[..., object], tuple[Any, ...], _Handle]] = []

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Handle:
        handle = _Handle()
        self.pending.append((delay, callback, args, handle))
        return handle


def test_caller_enters_stasis_and_hangs_up_without_a_server() -> None:
    """A caller injected into the bare world and hung up logs the recorded event order."""
    world = AriWorld(scheduler=_ManualScheduler())
    caller = world.inject_call("+79161234567", "Ivan", ("8800100",))
    assert world.stasis_channel_ids() == [caller]
    assert world.channel_json(caller)["state"] == "Ring"
    world.hangup(caller)
    assert event_types(world.event_log) == ["StasisStart", "ChannelHangupRequest", "StasisEnd"]
    assert world.channels == {} and world.stasis_channel_ids() == []
    assert {e["application"] for e in world.event_log} == {"acd"}
