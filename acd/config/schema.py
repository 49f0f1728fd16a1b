"""The center configuration's schema: strict pydantic models, unknown keys rejected.

The YAML describes the center the way planners do (groups with counts, skill levels, languages,
site, newcomer share); :mod:`acd.config.roster` expands the groups into individual agents
deterministically. Cross-references (a queue's skill exists, a country's language exists, ...)
are checked in :mod:`acd.config.validate`, which reports every problem at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# One definition of each routing choice: the router's own; the YAML names its values.
from acd.core.policy import AgentSelection, CallSelection, NewcomerPolicy

Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
Seconds = Annotated[float, Field(ge=0, le=7 * 86400)]
Level = Annotated[int, Field(ge=1, le=10)]
Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]
#: A TCP port (0: any free one), for the service's listeners and the servers it talks to.
Port = Annotated[int, Field(ge=0, le=65535)]


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceLevel(Strict):
    """Answered within ``threshold_s`` seconds for at least ``target`` of offered calls."""

    threshold_s: Annotated[float, Field(gt=0, le=3600)] = 20.0
    target: Annotated[float, Field(gt=0, le=1)] = 0.85


class Center(Strict):
    """Center-wide identity and targets."""

    name: str
    default_language: Name
    default_queue: Name
    service_level: ServiceLevel = ServiceLevel()
    answer_rate_target: Annotated[float, Field(gt=0, le=1)] = 0.96
    #: Least mean offered calls per replication for a queue, language, country or site to get
    #: its own verdict in ``acd sim run`` (fewer calls give too wide a CI to judge).
    verdict_min_offered: Annotated[float, Field(ge=0, le=1_000_000)] = 30.0
    #: Abandons shorter than this are "short abandons" (excluded by ``sl_excl_short``).
    short_abandon_s: Seconds = 5.0


class Site(Strict):
    """A physical contact-center site."""

    name: str
    timezone: str
    #: ISO country whose public holidays the site keeps (business hours in the IVR).
    country: Name | None = None


class Language(Strict):
    """A language agents can speak and callers can be served in."""

    name: str


class Country(Strict):
    """A caller country: its native language, acceptable fallbacks and its home site."""

    name: str
    language: Name
    #: Languages a caller from this country accepts when no native speaker is free, in order.
    fallback_languages: list[Name] = []
    home_site: Name


class Skill(Strict):
    """A routing skill."""

    name: str


class Routing(Strict):
    """A queue's initial routing rule, before any expansion step."""

    agent_selection: AgentSelection = AgentSelection.longest_idle
    call_selection: CallSelection = CallSelection.fifo
    min_level: Level = 1
    #: ``home``: only the caller country's home site; ``all``: both sites from the start.
    sites: Literal["home", "all"] = "home"
    newcomers: NewcomerPolicy = NewcomerPolicy.exclude
    #: Prefer agents at the caller's home site when several sites are allowed.
    site_affinity: bool = True


class ExpansionStep(Strict):
    """After ``after_s`` seconds in queue, relax eligibility or act. A call keeps its place."""

    after_s: Seconds
    min_level: Level | None = None
    add_sites: Literal["all"] | None = None
    accept_fallback_languages: bool = False
    include_newcomers: bool = False
    offer_callback: bool = False
    #: ``voicemail``, ``callback`` or the name of another queue.
    overflow: Name | None = None

    @model_validator(mode="after")
    def _does_something(self) -> ExpansionStep:
        if not (self.min_level or self.add_sites or self.accept_fallback_languages
                or self.include_newcomers or self.offer_callback or self.overflow):
            raise ValueError("an expansion step must relax something or act")
        return self


class Queue(Strict):
    """A queue: one skill, its targets, its timers and its expansion steps."""

    skill: Name
    priority: Annotated[int, Field(ge=0, le=100)] = 0
    service_level: ServiceLevel | None = None
    wrap_up_s: Seconds = 30.0
    ring_timeout_s: Annotated[float, Field(gt=0, le=300)] = 15.0
    max_length: Annotated[int, Field(ge=1, le=100_000)] = 500
    max_wait_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0
    #: Handle time (talk + wrap-up) assumed for wait estimates until calls have been measured.
    aht_hint_s: Annotated[float, Field(gt=0, le=86400)] = 300.0
    #: Where calls go when the queue is full or the maximum wait is reached.
    overflow: Name = "voicemail"
    routing: Routing = Routing()
    expansion: list[ExpansionStep] = []

    @model_validator(mode="after")
    def _steps_in_order(self) -> Queue:
        times = [s.after_s for s in self.expansion]
        if times != sorted(times):
            raise ValueError(f"expansion steps must be in increasing after_s order, got {times}")
        return self


class LanguageBlock(Strict):
    """``count`` agents of a group who speak ``languages`` (overrides the group's languages)."""

    count: Annotated[int, Field(ge=1)]
    languages: list[Name] = Field(min_length=1)


class AgentGroup(Strict):
    """A group of agents as planners describe it; expanded into individual agents."""

    site: Name
    supervisor: str
    count: Annotated[int, Field(ge=1, le=10_000)]
    #: Base proficiency per skill; individual levels vary deterministically by ``level_spread``.
    skills: dict[Name, Level] = Field(min_length=1)
    level_spread: Annotated[int, Field(ge=0, le=4)] = 1
    languages: list[Name] = Field(min_length=1)
    language_mix: list[LanguageBlock] = []
    countries: list[Name] | None = None
    #: Share of the group who are newcomers (routed differently while they learn).
    newcomer_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    #: Newcomers' levels are this much lower than tenured agents' (never below 1).
    newcomer_level_drop: Annotated[int, Field(ge=0, le=9)] = 2
    id_prefix: Name | None = None
    #: Asterisk endpoint template; ``{id}`` and ``{ext}`` are substituted.
    endpoint: str = "PJSIP/{ext}"
    first_extension: Annotated[int, Field(ge=1, le=99_999_999)]

    @model_validator(mode="after")
    def _mix_adds_up(self) -> AgentGroup:
        if self.language_mix and sum(b.count for b in self.language_mix) != self.count:
            got = sum(b.count for b in self.language_mix)
            raise ValueError(f"language_mix counts add up to {got}, not the group count "
                             f"{self.count}")
        return self


class Rona(Strict):
    """Ring-no-answer handling."""

    pause_reason: Name = "rona"
    #: Put the agent back to ready after this long; ``null`` leaves it to the agent.
    auto_ready_after_s: Seconds | None = None


class CenterConfig(Strict):
    """The whole center: sites, languages, countries, skills, queues and agent groups."""

    version: Literal[1] = 1
    center: Center
    sites: dict[Name, Site] = Field(min_length=1)
    languages: dict[Name, Language] = Field(min_length=1)
    countries: dict[Name, Country] = Field(min_length=1)
    skills: dict[Name, Skill] = Field(min_length=1)
    queues: dict[Name, Queue] = Field(min_length=1)
    agent_groups: dict[Name, AgentGroup] = Field(min_length=1)
    pause_reasons: list[Name] = ["break", "lunch", "training", "meeting", "coaching", "rona"]
    rona: Rona = Rona()

    def sl_for(self, queue: str) -> ServiceLevel:
        """The service-level definition that applies to ``queue``."""
        return self.queues[queue].service_level or self.center.service_level
