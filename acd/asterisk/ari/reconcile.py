"""What Asterisk holds right now, and what the engine makes of it after a drop or a restart.

After a websocket drop the engine still knows its calls and compares them with a
:class:`Snapshot` (``GET /applications/{app}``, ``/channels``, ``/bridges``). After a cold start
it knows nothing, so :func:`plan_adoption` sorts what Asterisk holds into callers to re-queue,
callers to run through the IVR again, conversations to watch until they end, and leftovers
(agent legs, bridges) to remove. Nothing here does I/O except :func:`take_snapshot`.

What a cold start cannot recover: a caller's place inside the IVR (the flow starts again),
an offer that was ringing (the agent leg is hung up and the caller re-queued), and the router's
view of conversations in progress (they are watched and cleaned up, but not counted as talk).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from acd.asterisk.ari.calls import HOLD_PREFIX, LEG_PREFIX, TALK_PREFIX, QueueSlot, retry
from acd.asterisk.ari.client import AriClient
from acd.asterisk.ari.models import Application, Bridge, Channel


@dataclass(frozen=True)
class Snapshot:
    """Channels and bridges Asterisk has, and which channels are in our Stasis application."""

    in_stasis: frozenset[str]
    channels: Mapping[str, Channel]
    bridges: Mapping[str, Bridge]

    @classmethod
    def of(
        cls, app: Application, channels: Iterable[Channel], bridges: Iterable[Bridge]
    ) -> Snapshot:
        """Build from the three ARI listings."""
        return cls(
            frozenset(app.channel_ids),
            {c.id: c for c in channels},
            {b.id: b for b in bridges},
        )

    def bridge_of(self, channel_id: str) -> Bridge | None:
        """The bridge a channel is in, if any."""
        for bridge in self.bridges.values():
            if channel_id in bridge.channels:
                return bridge
        return None


async def take_snapshot(client: AriClient) -> Snapshot:
    """Read the application, every channel and every bridge (retrying transient failures)."""
    app = await retry(client.get_application)
    channels = await retry(client.list_channels)
    bridges = await retry(client.list_bridges)
    return Snapshot.of(app, channels, bridges)


def is_our_bridge(bridge_id: str) -> bool:
    """True for bridges the engine created (holding or conversation)."""
    return bridge_id.startswith((HOLD_PREFIX, TALK_PREFIX))


def is_agent_leg(channel_id: str) -> bool:
    """True for the agent legs the engine originated (the ``;1`` side of a Local pair too)."""
    return channel_id.startswith(LEG_PREFIX) and ";" not in channel_id


def is_agent_leg_half(channel_id: str) -> bool:
    """True for the hidden ``;2`` half of an agent leg on a Local channel (never ours to touch)."""
    return channel_id.startswith(LEG_PREFIX) and ";" in channel_id


def epoch_of(creationtime: str) -> float | None:
    """ARI's ``2026-11-26T12:00:00.123+0000`` as epoch seconds, or None when unreadable."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(creationtime, fmt).timestamp()
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Requeue:
    """A caller that was waiting: back into the router with its original arrival time."""

    channel: Channel
    slot: QueueSlot
    arrived_epoch: float
    hold_bridge: str | None


@dataclass(frozen=True)
class Talk:
    """A conversation in progress: watched until either side hangs up, then cleaned up."""

    caller: Channel
    agent_leg: str
    bridge: str


@dataclass
class AdoptionPlan:
    """What to do with everything a restarted engine finds in Asterisk."""

    requeue: list[Requeue] = field(default_factory=list)
    restart_ivr: list[Channel] = field(default_factory=list)
    talks: list[Talk] = field(default_factory=list)
    hangup_legs: list[str] = field(default_factory=list)
    destroy_bridges: list[str] = field(default_factory=list)


def plan_adoption(snapshot: Snapshot, queued: Mapping[str, str | None]) -> AdoptionPlan:
    """Sort a cold start's findings; `queued` maps caller channel ids to their ACD_QUEUED value.

    Re-queued callers come out in their original arrival order, as the router requires.
    """
    plan = AdoptionPlan()
    kept_bridges: set[str] = set()
    talking_legs: set[str] = set()
    for channel_id in sorted(snapshot.in_stasis):
        channel = snapshot.channels.get(channel_id)
        if channel is None or is_agent_leg(channel_id) or is_agent_leg_half(channel_id):
            continue
        bridge = snapshot.bridge_of(channel_id)
        if bridge is not None and bridge.id.startswith(TALK_PREFIX):
            legs = [c for c in bridge.channels if is_agent_leg(c) and c in snapshot.channels]
            if legs:
                plan.talks.append(Talk(channel, legs[0], bridge.id))
                kept_bridges.add(bridge.id)
                talking_legs.add(legs[0])
                continue
        slot = QueueSlot.decode(queued.get(channel_id) or "")
        if slot is None:
            plan.restart_ivr.append(channel)
            continue
        hold = bridge.id if bridge is not None and bridge.id.startswith(HOLD_PREFIX) else None
        if hold is not None:
            kept_bridges.add(hold)
        epoch = slot.queued_at_epoch or epoch_of(channel.creationtime) or 0.0
        plan.requeue.append(Requeue(channel, slot, epoch, hold))
    plan.requeue.sort(key=lambda r: (r.arrived_epoch, r.channel.id))
    plan.hangup_legs = sorted(
        c for c in snapshot.channels if is_agent_leg(c) and c not in talking_legs
    )
    plan.destroy_bridges = sorted(
        b for b in snapshot.bridges if is_our_bridge(b) and b not in kept_bridges
    )
    return plan
