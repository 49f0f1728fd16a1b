"""What every traffic source produces: arrivals for the simulator and, from logs, staffing."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import numpy as np

#: Native language of each reference country; the language a caller gets when nothing else says.
NATIVE_LANGUAGE: dict[str, str] = {
    "RU": "ru", "UA": "uk", "BY": "be", "KZ": "kk", "UZ": "uz", "KG": "ky",
    "TJ": "tg", "AZ": "az", "AM": "hy", "GE": "ka", "MD": "ro", "LV": "lv",
}


@dataclass(frozen=True, slots=True)
class Arrival:
    """One offered call: when it arrives (seconds from the run's start), where it goes, how.

    ``talk_s`` is the handle time if answered; ``patience_s`` is how long the caller waits before
    abandoning (``inf`` = never); ``wrap_s`` of ``None`` means the queue's default wrap-up.

    Replayed calls also say what their log observed: ``ivr_s`` the time in the IVR before the
    queue (``None``: the simulator draws it from the scenario; a replay enters at ``t``),
    ``wait_s`` the wait in queue until the call was answered, abandoned or let go (``None``:
    unknown), and ``talk_known`` whether ``talk_s`` was observed (an abandoned call's is not).
    """

    t: float
    queue: str
    language: str
    country: str
    caller_number: str | None
    priority: int
    talk_s: float
    patience_s: float = math.inf
    wrap_s: float | None = None
    customer_id: str | None = None
    ivr_s: float | None = None
    wait_s: float | None = None
    talk_known: bool = True


StaffingKind = Literal["login", "logout", "pause", "unpause", "queues"]


@dataclass(frozen=True, slots=True)
class StaffingEvent:
    """A change in an agent's availability rebuilt from a log, at ``t`` seconds from the start.

    ``queues`` lists the (mapped) queues the agent is a member of after the event; ``reason`` is
    the pause reason when the log gives one.
    """

    t: float
    agent: str
    kind: StaffingKind
    reason: str | None = None
    queues: tuple[str, ...] = ()


class TrafficSource(Protocol):
    """Anything that yields time-ordered arrivals for ``[start, start + days)``."""

    def arrivals(
        self, start: datetime, days: float, rng: np.random.Generator, scale: float = 1.0
    ) -> Iterator[Arrival]:
        """Arrivals in the window, ``t`` in seconds from ``start``, sorted by ``t``."""
        ...
