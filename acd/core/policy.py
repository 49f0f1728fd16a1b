"""The routing policy the router works from: plain values, no YAML and no validation.

:mod:`acd.config` validates the center file and builds a :class:`CenterPolicy` from it
(:func:`acd.config.policy.center_policy`); the simulator and the live service hand that to the
:class:`~acd.core.router.Router`. The core therefore knows nothing of the file's shape, and
mypyc compiles the router against these types instead of an untyped schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AgentSelection(StrEnum):
    """How the router picks one of several eligible ready agents."""

    longest_idle = "longest_idle"
    highest_proficiency = "highest_proficiency"
    least_occupied = "least_occupied"
    round_robin = "round_robin"


class NewcomerPolicy(StrEnum):
    """How newcomers share a queue's calls while they learn.

    ``exclude``: only after an expansion step includes them; ``last_resort``: only when no
    tenured eligible agent is ready; ``equal``: like everyone else.
    """

    exclude = "exclude"
    last_resort = "last_resort"
    equal = "equal"


class CallSelection(StrEnum):
    """Which waiting call a freed agent takes: ``fifo`` (priority, then longest wait) or
    ``sl_aware`` (priority, then the call closest to breaking its queue's SL threshold)."""

    fifo = "fifo"
    sl_aware = "sl_aware"


@dataclass(frozen=True)
class ExpansionStep:
    """After ``after_s`` seconds in queue, relax eligibility or act. A call keeps its place."""

    after_s: float
    min_level: int | None = None
    #: ``"all"`` opens every site to the call; None leaves its sites as they are.
    add_sites: str | None = None
    accept_fallback_languages: bool = False
    include_newcomers: bool = False
    offer_callback: bool = False
    #: ``voicemail``, ``callback`` or the name of another queue.
    overflow: str | None = None


@dataclass(frozen=True)
class QueuePolicy:
    """One queue: its skill, timers, limits, first routing rule and expansion steps."""

    skill: str
    priority: int
    wrap_up_s: float
    ring_timeout_s: float
    max_length: int
    max_wait_s: float
    #: Where calls go when the queue is full or the maximum wait is reached.
    overflow: str
    #: Handle time assumed for wait estimates until calls have been measured.
    aht_hint_s: float
    #: The service-level threshold: answered within this many seconds counts as in SL.
    sl_threshold_s: float
    min_level: int
    #: Every site from the start (else only the caller country's home site).
    all_sites: bool
    newcomers: NewcomerPolicy
    agent_selection: AgentSelection
    call_selection: CallSelection
    #: Prefer agents at the caller's home site when several sites are allowed.
    site_affinity: bool
    #: In increasing ``after_s`` order.
    expansion: tuple[ExpansionStep, ...] = ()


@dataclass(frozen=True)
class CountryPolicy:
    """A caller country: its native language, acceptable fallbacks and its home site."""

    language: str
    fallback_languages: tuple[str, ...]
    home_site: str


@dataclass(frozen=True)
class CenterPolicy:
    """Everything the router needs to know about the center, by name."""

    #: Queues in configuration order.
    queues: dict[str, QueuePolicy]
    sites: tuple[str, ...]
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    countries: dict[str, CountryPolicy]
    pause_reasons: tuple[str, ...]
    default_language: str
    default_queue: str
    #: The pause reason a ring-no-answer puts the agent in.
    rona_pause_reason: str = "rona"
    #: Put a RONA-paused agent back to ready after this long (None: the agent does it).
    rona_auto_ready_after_s: float | None = None
