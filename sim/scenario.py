"""A simulation scenario: which center and traffic, when, who works which shift, how people act.

Planners change staffing and routing here, not in the production config: ``center_overrides``
is deep-merged into the center YAML before validation, and ``staffing`` describes shifts per
site in local time. Paths are relative to the scenario file.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from acd.config import yamlsafe
from acd.config.load import LoadedCenter, Locate, center_from_data, in_file, schema_problems
from acd.config.messages import EMPTY_FILE, shown, unknown, wrong_kind
from acd.errors import ConfigError, Problem, format_path

Clock = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Probability = Annotated[float, Field(ge=0, le=1)]
#: How long a simulated agent stays paused after a ring-no-answer when the center does not say.
DEFAULT_RONA_RETURN_S = 60.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DistSpec(_Strict):
    """A duration distribution: ``{dist: lognormal, mean: 30, cv: 0.4}`` and the like."""

    dist: Literal["constant", "exponential", "lognormal", "gamma"]
    value: Annotated[float, Field(ge=0)] | None = None
    mean: Annotated[float, Field(gt=0)] | None = None
    cv: Annotated[float, Field(gt=0, le=10)] | None = None

    def check(self) -> DistSpec:
        """Raise ValueError when the fields do not fit the distribution."""
        if self.dist == "constant" and self.value is None:
            raise ValueError("constant needs value")
        if self.dist != "constant" and self.mean is None:
            raise ValueError(f"{self.dist} needs mean")
        if self.dist in ("lognormal", "gamma") and self.cv is None:
            raise ValueError(f"{self.dist} needs cv")
        return self


class Behaviour(_Strict):
    """How callers and agents behave beyond what the traffic file says."""

    #: Time an agent takes to answer a ringing offer.
    answer_delay: DistSpec = DistSpec(dist="constant", value=3.0)
    #: Share of offers that ring out unanswered (ring-no-answer).
    rona_probability: Probability = 0.01
    #: A simulated agent paused by a ring-no-answer makes itself ready again after this long
    #: when the center has no ``rona.auto_ready_after_s`` (people come back; a paused agent
    #: would otherwise sit out the shift). ``null`` leaves them paused, as the config says.
    rona_return_s: Annotated[float, Field(gt=0, le=86400)] | None = DEFAULT_RONA_RETURN_S
    #: Share of callers who take a callback when offered one.
    callback_accept_probability: Probability = 0.3
    #: Time in the IVR before the call reaches the queue (when no IVR flow is simulated).
    ivr_time: DistSpec = DistSpec(dist="lognormal", mean=35.0, cv=0.35)
    #: Share of callers who hang up in the IVR.
    ivr_abandon_probability: Probability = 0.02
    #: A call flow (path relative to the scenario file) every arrival walks instead of
    #: ``ivr_time`` / ``ivr_abandon_probability``: time in IVR, abandons, voicemail, callbacks.
    ivr_flow: str | None = None
    #: Replays (``--replay``, ``--queue-log``) use the log's own timing: no answer delay and no
    #: ring-no-answer unless this is true (the log's waits already hold its rings).
    replay_agent_behaviour: bool = False
    #: Talk and wrap-up of a call answered by a newcomer (``newcomer`` in the roster) take this
    #: many times the caller's drawn durations: the draw stays the caller's, the factor is the
    #: agent's. 1.0 (the default) makes newcomers as fast as experts; 1.3 is a common planning
    #: figure for agents in their first months.
    newcomer_handle_factor: Annotated[float, Field(gt=0, le=10)] = 1.0
    #: Share of callers who abandon in the queue and call again after ``redial_delay_s``; a
    #: redial is a new call in the same queue, language and country, counted as a repeat
    #: (first-call resolution). 0.0 (the default): nobody calls again.
    redial_probability: Probability = 0.0
    #: Time from an abandon until the redial reaches the queue again.
    redial_delay_s: DistSpec = DistSpec(dist="exponential", mean=600.0)
    #: An accepted callback (in the queue or the IVR) or a voicemail becomes outbound agent
    #: work this long after it was left: from then on the next ready agent of its queue and
    #: language who has no inbound call to take makes the call. ``null`` (the default): no
    #: agent work follows.
    callback_work_delay_s: DistSpec | None = None
    #: The outbound call's talk time (the queue's wrap-up follows it).
    callback_work_talk_s: DistSpec = DistSpec(dist="lognormal", mean=180.0, cv=0.5)


class Shift(_Strict):
    """A shift pattern: starts at ``start`` local time, lasts ``hours``; ``share`` of a group."""

    start: Clock
    hours: Annotated[float, Field(gt=0, le=16)]
    share: Annotated[float, Field(gt=0, le=1)]


class Break(_Strict):
    """A break ``after_h`` hours into a shift, ``minutes`` long, with a pause ``reason``."""

    after_h: Annotated[float, Field(ge=0, le=16)]
    minutes: Annotated[float, Field(gt=0, le=120)]
    reason: str = "break"


class Staffing(_Strict):
    """Who is logged in when: shift patterns per site (local time), days off, breaks, absence."""

    shifts: dict[str, list[Shift]]
    #: Per-group shift patterns that replace their site's.
    group_shifts: dict[str, list[Shift]] = {}
    work_days_per_week: Annotated[int, Field(ge=1, le=7)] = 5
    #: Share of agent-days lost to sickness and leave (drawn per replication).
    absence_rate: Probability = 0.0
    breaks: list[Break] = []
    #: Breaks are staggered across a group by up to this many minutes either way.
    break_stagger_minutes: Annotated[float, Field(ge=0, le=120)] = 20.0


class Outage(_Strict):
    """A site's agents unavailable from ``from`` until ``until``: ISO 8601 times with a UTC
    offset, or clock times in the site's time zone (``from: "10:00"`` is the first 10:00 at or
    after the run's start there, ``until`` the first of its clock time after ``from``, so
    ``22:00`` to ``02:00`` spans midnight)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    site: str
    from_: Annotated[str, Field(alias="from")]
    until: str


def _when(text: str, tz: str, after: datetime, strictly: bool) -> datetime:
    """An outage time: a clock time ``HH:MM`` in ``tz`` (its first occurrence at or after
    ``after``, or strictly after it), or an ISO time with a UTC offset. Raises ValueError."""
    if re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", text):
        zone = ZoneInfo(tz)
        local = after.astimezone(zone)
        when = datetime.combine(local.date(), time.fromisoformat(text), zone)
        if when < local or (strictly and when == local):
            when = datetime.combine(local.date() + timedelta(days=1), time.fromisoformat(text),
                                    zone)
        return when
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("give a clock time HH:MM (in the site's time zone) or an ISO 8601 "
                         "time with a UTC offset") from None
    if when.tzinfo is None:
        raise ValueError("an ISO time needs a UTC offset such as +03:00")
    return when


def outage_window(outage: Outage, tz: str, start: datetime) -> tuple[datetime, datetime]:
    """When ``outage`` begins and ends in a run from ``start`` (checked by
    :func:`load_scenario`)."""
    begin = _when(outage.from_, tz, start, strictly=False)
    return begin, _when(outage.until, tz, begin, strictly=True)


class ScenarioFile(_Strict):
    """The scenario YAML."""

    version: Literal[1] = 1
    name: str = "scenario"
    center: str
    traffic: str
    start: datetime
    days: Annotated[float, Field(gt=0, le=400)] = 1.0
    interval_minutes: Literal[15, 30, 60] = 30
    volume_scale: Annotated[float, Field(gt=0, le=100)] = 1.0
    center_overrides: dict[str, Any] = {}
    behaviour: Behaviour = Behaviour()
    staffing: Staffing
    #: Sites taken down for a while (their agents unavailable), e.g. to size the other's cover.
    outages: list[Outage] = []


@dataclass(frozen=True)
class Scenario:
    """A loaded scenario: the validated file, its center (with overrides) and resolved paths."""

    path: str
    spec: ScenarioFile
    center: LoadedCenter
    traffic_path: Path


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base``: mappings recursively, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for k, v in override.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


def load_scenario(path: str | Path, **changes: Any) -> Scenario:
    """Load a scenario file (``changes`` override top-level fields, e.g. ``days=2``)."""
    file = str(path)
    data, text = yamlsafe.read_yaml(path)

    def line(loc: tuple[str | int, ...]) -> int | None:
        return yamlsafe.line_of(text, loc)

    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "<root>", EMPTY_FILE if data is None
                                   else type(data).__name__, "a scenario must be a mapping with "
                                   "center, traffic, start and staffing", 1)])
    other = wrong_kind(data, "scenario")  # before command-line values add scenario keys
    if other is not None:
        raise ConfigError([Problem(file, "<root>", None, other, 1)])
    data.update({k: v for k, v in changes.items() if v is not None})
    try:
        spec = ScenarioFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(schema_problems(ScenarioFile, data, file, exc, in_file(file, line))) \
            from None
    for key in ("answer_delay", "ivr_time", "redial_delay_s", "callback_work_delay_s",
                "callback_work_talk_s"):
        try:
            if getattr(spec.behaviour, key) is not None:
                getattr(spec.behaviour, key).check()
        except ValueError as exc:
            loc: tuple[str | int, ...] = ("behaviour", key)
            given = (data.get("behaviour") or {}).get(key)
            raise ConfigError([Problem(file, format_path(loc), shown(given), str(exc),
                                       line(loc))]) from None
    base = Path(path).resolve().parent
    center_path = (base / spec.center).resolve()
    traffic_path = (base / spec.traffic).resolve()
    for key, what, target in (("center", "center config", center_path),
                              ("traffic", "traffic file", traffic_path)):
        if not target.is_file():
            why = "is not a file" if target.exists() else "does not exist"
            raise ConfigError([Problem(file, key, getattr(spec, key), f"the {what} {target} "
                                       f"{why} (paths are relative to the scenario file)",
                                       line((key,)))])
    center_data, center_text = yamlsafe.read_yaml(center_path)
    if not isinstance(center_data, dict):  # empty or not a mapping: overrides cannot fix it
        center_from_data(center_data, str(center_path), center_text)
    merged = deep_merge(center_data, spec.center_overrides)
    locate = _overrides_locate(str(center_path), center_text, file, text,
                               spec.center_overrides)
    center = center_from_data(merged, str(center_path), center_text, locate)
    problems = []
    sites = set(center.config.sites)
    groups = center.config.agent_groups
    for site in spec.staffing.shifts:
        if site not in sites:
            loc = ("staffing", "shifts", site)
            problems.append(Problem(file, format_path(loc), site,
                                    unknown("site", site, sites, list_all=True), line(loc)))
    for site in sorted(sites - set(spec.staffing.shifts)):
        missing = sorted(g for g, grp in groups.items()
                         if grp.site == site and g not in spec.staffing.group_shifts)
        if missing:
            loc = ("staffing", "shifts")
            problems.append(Problem(file, format_path(loc), site,
                                    f"site has agent groups ({', '.join(missing)}) but no shift "
                                    "pattern", line(loc)))
    for group in spec.staffing.group_shifts:
        if group not in groups:
            loc = ("staffing", "group_shifts", group)
            problems.append(Problem(file, format_path(loc), group,
                                    unknown("agent group", group, groups, list_all=True),
                                    line(loc)))
    reasons = set(center.config.pause_reasons)
    for i, br in enumerate(spec.staffing.breaks):
        if br.reason not in reasons:
            loc = ("staffing", "breaks", i, "reason")
            problems.append(Problem(file, format_path(loc), br.reason,
                                    unknown("pause reason", br.reason, reasons,
                                            list_all=True), line(loc)))
    # Breaks that overlap would end the longer one early (its ready comes mid-break).
    busy_until = -math.inf
    breaks = spec.staffing.breaks
    for begin, i in sorted((br.after_h * 60, i) for i, br in enumerate(breaks)):
        if begin < busy_until - 1e-6:  # minutes; the tolerance lets breaks touch
            loc = ("staffing", "breaks", i)
            problems.append(Problem(file, format_path(loc), breaks[i].after_h,
                                    "break overlaps an earlier break; breaks may touch, "
                                    "not overlap", line(loc)))
        busy_until = max(busy_until, begin + breaks[i].minutes)
    if spec.start.tzinfo is None:
        problems.append(Problem(file, "start", str(spec.start),
                                "start needs a UTC offset, e.g. 2026-03-02T00:00:00+03:00",
                                line(("start",))))
    else:
        problems += _outage_problems(spec, center, file, line)
    if problems:
        raise ConfigError(problems)
    if spec.behaviour.ivr_flow:
        spec = _with_flow(spec, base, file, text, center)
    return Scenario(file, spec, center, traffic_path)


def _outage_problems(spec: ScenarioFile, center: LoadedCenter, file: str,
                     line: Callable[[tuple[str | int, ...]], int | None]) -> list[Problem]:
    """Every outage names a configured site and ends after it begins."""
    problems = []
    sites = center.config.sites
    for i, o in enumerate(spec.outages):
        if o.site not in sites:
            loc: tuple[str | int, ...] = ("outages", i, "site")
            problems.append(Problem(file, format_path(loc), o.site,
                                    unknown("site", o.site, sites, list_all=True), line(loc)))
            continue
        tz = sites[o.site].timezone
        when: dict[str, datetime] = {}
        for key, text in (("from", o.from_), ("until", o.until)):
            try:
                when[key] = _when(text, tz, when.get("from", spec.start), strictly=key == "until")
            except ValueError as exc:
                loc = ("outages", i, key)
                problems.append(Problem(file, format_path(loc), text, str(exc), line(loc)))
        if len(when) == 2 and when["until"] <= when["from"]:
            loc = ("outages", i, "until")
            problems.append(Problem(file, format_path(loc), o.until,
                                    f"must be after from ({o.from_})", line(loc)))
    return problems


def _overrides_locate(center_file: str, center_text: str, file: str, text: str,
                      overrides: dict[str, Any]) -> Locate:
    """Blame a problem on the scenario's ``center_overrides`` when they set that path.

    A path the overrides set (or lie under a value they replaced) is reported in the scenario
    file at ``center_overrides.<path>`` with its line; any other path in the center file.
    """
    def locate(loc: tuple[str | int, ...]) -> tuple[str, str, int | None]:
        node: Any = overrides
        overridden = bool(loc)
        for part in loc:
            if isinstance(node, dict):
                if str(part) not in node:
                    overridden = False
                    break
                node = node[str(part)]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
            else:
                break  # a value the overrides replaced whole
        if overridden:
            where = ("center_overrides", *loc)
            return file, format_path(where), yamlsafe.line_of(text, where)
        return center_file, format_path(loc), yamlsafe.line_of(center_text, loc)
    return locate


def _with_flow(spec: ScenarioFile, base: Path, file: str, text: str,
               center: LoadedCenter) -> ScenarioFile:
    """Resolve and check ``behaviour.ivr_flow``; the spec then carries its absolute path."""
    from sim.ivrsim import load_sim_flow

    assert spec.behaviour.ivr_flow is not None
    path = (base / spec.behaviour.ivr_flow).resolve()
    if not path.is_file():
        loc = ("behaviour", "ivr_flow")
        raise ConfigError([Problem(file, format_path(loc), spec.behaviour.ivr_flow,
                                   "no such call flow file", yamlsafe.line_of(text, loc))])
    load_sim_flow(path, center.config)  # a bad flow exits 2 with its own file and line
    behaviour = spec.behaviour.model_copy(update={"ivr_flow": str(path)})
    return spec.model_copy(update={"behaviour": behaviour})


def rona_warning(scenario: Scenario) -> str | None:
    """What to tell a planner whose center leaves ring-no-answer pauses to the agent while the
    scenario lets offers ring out: the live center could leave agents paused for a shift."""
    if scenario.center.config.rona.auto_ready_after_s is not None or \
            not scenario.spec.behaviour.rona_probability:
        return None
    back = scenario.spec.behaviour.rona_return_s
    then = (f"simulated agents make themselves ready {back:g} s after it "
            "(behaviour.rona_return_s)" if back is not None else
            "simulated agents stay paused for the rest of their shift "
            "(behaviour.rona_return_s: null)")
    return (f"the center sets no rona.auto_ready_after_s, so in production an agent who lets an "
            f"offer ring out stays paused until they make themselves ready; {then}")
