"""Replay an Asterisk ``queue_log`` end to end: its calls, and its own staffing, through the router.

:func:`load_plan` reads the log with :func:`sim.traffic.load_queue_log`, maps each member
interface (``PJSIP/1001``, ``SIP/1001``, ``Local/1001@agents``, ``Agent/1001``) to a roster agent
by endpoint, agent id or extension, and turns the staffing events into the
:class:`~sim.staffing.StaffAction` timeline the engine plays. Roster skills, not queue
membership, decide what a logged-in agent takes (the router has no per-queue membership).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from acd.config.schema import CenterConfig
from acd.core.model import AgentProfile
from acd.errors import ConfigError, Problem
from sim.scenario import Behaviour, DistSpec
from sim.staffing import Action, StaffAction
from sim.traffic import Arrival, QueueLogMapping, StaffingEvent, load_queue_log
from sim.traffic.queue_log import read_queue_log

#: Where problems in command-line options are reported from (as ``acd erlang`` does).
COMMAND_LINE = "<command line>"
_ADD = frozenset({"ADDMEMBER", "AGENTLOGIN", "AGENTCALLBACKLOGIN"})
_REMOVE = frozenset({"REMOVEMEMBER", "AGENTLOGOFF", "AGENTCALLBACKLOGOFF"})
_PAUSE = frozenset({"PAUSE", "PAUSEALL"})
_UNPAUSE = frozenset({"UNPAUSE", "UNPAUSEALL"})


@dataclass(frozen=True)
class QueueLogOptions:
    """How a queue_log's names meet the center's: queues, languages, pause reasons, defaults.

    ``queues`` maps Asterisk queue names to configured queues (a configured name maps to
    itself); ``None`` defaults come from the center. ``logged_in_at_start`` logs in, at the
    log's first second, every member that acts before any ADDMEMBER (it was already there).
    """

    queues: Mapping[str, str] = field(default_factory=dict)
    queue_language: Mapping[str, str] = field(default_factory=dict)
    default_language: str | None = None
    default_country: str | None = None
    default_pause_reason: str = "break"
    pause_reasons: Mapping[str, str] = field(default_factory=dict)
    logged_in_at_start: bool = True


@dataclass(frozen=True)
class QueueLogPlan:
    """What one queue_log replays: arrivals and staffing from its first line, and what was lost.

    ``unmatched`` counts the staffing events of members that match no roster agent (dropped);
    ``present_at_start`` lists members logged in at t = 0 because they acted before being added.
    """

    file: str
    start: datetime
    horizon_s: float
    arrivals: tuple[Arrival, ...]
    timeline: tuple[StaffAction, ...]
    agents: Mapping[str, str]
    unmatched: Mapping[str, int]
    unmatched_lines: Mapping[str, int]
    present_at_start: tuple[str, ...]
    pause_defaulted: Mapping[str, int]
    dropped_actions: int
    incomplete: int
    unknown_events: Mapping[str, int]

    def strict_problems(self) -> list[Problem]:
        """One problem per unmatched member, naming the file, its first line and the member."""
        return [Problem(self.file, "agent", member,
                        f"queue_log member matches no roster agent by endpoint, extension or id "
                        f"({count} staffing event(s) dropped)", self.unmatched_lines.get(member))
                for member, count in sorted(self.unmatched.items())]


def parse_queue_map(text: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Queues and per-queue languages from ``support_tech=tech,support_tech_uk=tech:uk``."""
    queues: dict[str, str] = {}
    languages: dict[str, str] = {}
    problems = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, target = (part.strip() for part in item.partition("="))
        queue, _, language = (part.strip() for part in target.partition(":"))
        if not sep or not name or not queue or (":" in target and not language):
            problems.append(Problem(COMMAND_LINE, "--queue-map", item.strip(),
                                    "give asterisk_queue=queue or asterisk_queue=queue:language"))
            continue
        queues[name] = queue
        if language:
            languages[name] = language
    if problems:
        raise ConfigError(problems)
    return queues, languages


def member_key(member: str) -> str:
    """The part of a member interface that names the agent: ``Local/1001@agents/n`` -> 1001."""
    _tech, sep, rest = member.strip().partition("/")
    rest = rest if sep else member.strip()
    return rest.split("@", 1)[0].split("/", 1)[0]


class MemberMatcher:
    """Finds the roster agent behind a queue_log member: endpoint, then agent id, then extension."""

    def __init__(self, agents: Iterable[AgentProfile]) -> None:
        self._by_endpoint: dict[str, str] = {}
        self._by_id: dict[str, str] = {}
        self._by_extension: dict[str, str] = {}
        for a in agents:
            self._by_endpoint.setdefault(a.endpoint.casefold(), a.id)
            self._by_id[a.id.casefold()] = a.id
            self._by_extension.setdefault(a.extension, a.id)

    def match(self, member: str) -> str | None:
        """The roster agent id of ``member``, or None when nothing in the roster fits."""
        text = member.strip().casefold()
        key = member_key(member).casefold()
        for index, candidate in ((self._by_endpoint, text), (self._by_id, text),
                                 (self._by_id, key), (self._by_extension, key)):
            found = index.get(candidate)
            if found is not None:
                return found
        return None


def replay_behaviour(behaviour: Behaviour) -> Behaviour:
    """The scenario's behaviour for a replay: the log's own timing, nothing synthetic added.

    No drawn IVR time or IVR hang-ups (a call enters the queue at its logged time, after the IVR
    time its log records, if any: queue_log's ENTERQUEUE is written after the IVR), and unless
    ``replay_agent_behaviour`` asks for them no answer delay and no ring-no-answer (the log's
    waits already hold its rings and its RONAs).
    """
    update: dict[str, object] = {"ivr_time": DistSpec(dist="constant", value=0.0),
                                 "ivr_abandon_probability": 0.0, "ivr_flow": None}
    if not behaviour.replay_agent_behaviour:
        update.update({"answer_delay": DistSpec(dist="constant", value=0.0),
                       "rona_probability": 0.0})
    return behaviour.model_copy(update=update)


def _check_options(options: QueueLogOptions, config: CenterConfig) -> None:
    problems = []
    reasons = sorted(config.pause_reasons)
    for name, queue in options.queues.items():
        if queue not in config.queues:
            problems.append(Problem(COMMAND_LINE, f"--queue-map {name}", queue,
                                    f"unknown queue; valid: {', '.join(sorted(config.queues))}"))
    for name, language in options.queue_language.items():
        if language not in config.languages:
            problems.append(Problem(COMMAND_LINE, f"--queue-map {name}", language,
                                    f"unknown language; valid: {', '.join(config.languages)}"))
    checks: list[tuple[str, str | None, Sequence[str]]] = [
        ("--default-language", options.default_language, list(config.languages)),
        ("--default-country", options.default_country, list(config.countries)),
        ("--pause-default", options.default_pause_reason, reasons),
        *((f"pause_reasons.{k}", r, reasons) for k, r in options.pause_reasons.items())]
    for option, value, valid in checks:
        if value is not None and value not in valid:
            problems.append(Problem(COMMAND_LINE, option, value,
                                    f"not configured; valid: {', '.join(valid)}"))
    if problems:
        raise ConfigError(problems)


def _mapping(options: QueueLogOptions, config: CenterConfig) -> QueueLogMapping:
    language = options.default_language or config.center.default_language
    country = options.default_country or next(
        (c for c, spec in config.countries.items() if spec.language == language),
        next(iter(config.countries)))
    return QueueLogMapping(dict(options.queues), dict(options.queue_language), country, language,
                           {c: spec.language for c, spec in config.countries.items()})


@dataclass
class _Presence:
    """What a member did before its first ADDMEMBER, read straight from the log's lines."""

    line: int
    paused: bool | None = None
    pause_reason: str | None = None
    unpaused_at: float = 0.0
    left_at: float | None = None


def _scan_members(path: str | Path) -> tuple[dict[str, _Presence], dict[str, int]]:
    """Members acting before they are added (present at start), and every member's first line.

    The file has already been validated by :func:`load_queue_log`, so lines are trusted here.
    """
    rows = []
    start = math.inf  # the log's first second, over every line as the parser counts it
    for line, raw in enumerate(read_queue_log(path).splitlines(), start=1):
        fields = raw.split("|")
        if len(fields) < 5:
            continue
        epoch = float(fields[0])
        start = min(start, epoch)
        if fields[3] not in ("", "NONE"):
            rows.append((epoch, line, fields[3], fields[4], fields[5:]))
    rows.sort(key=lambda r: (r[0], r[1]))
    present: dict[str, _Presence] = {}
    added: set[str] = set()
    first_line: dict[str, int] = {}
    for epoch, line, member, event, data in rows:
        first_line.setdefault(member, line)
        if member in added:
            continue
        if event in _ADD:
            added.add(member)
            continue
        seen = present.setdefault(member, _Presence(line))
        reason = data[0] if data and data[0] else None
        if event in _PAUSE and seen.paused is None:
            seen.paused = False
        elif event in _UNPAUSE and seen.paused is None:
            # Unpaused before any pause: the member was paused when the log began.
            seen.paused, seen.pause_reason, seen.unpaused_at = True, reason, epoch - start
        elif event in _REMOVE:
            seen.left_at = epoch - start
    return present, first_line


class _Timeline:
    """Builds a clean action sequence per roster agent, dropping moves its state cannot make."""

    def __init__(self) -> None:
        self.actions: list[StaffAction] = []
        self.state: dict[str, str] = {}
        self.dropped = 0

    def add(self, t: float, action: Action, agent: str, reason: str | None = None) -> None:
        """Append ``action`` when legal in the agent's current state, else count it dropped."""
        state = self.state.get(agent, "out")
        after = {("login", "out"): "ready", ("logout", "ready"): "out",
                 ("logout", "paused"): "out", ("pause", "ready"): "paused",
                 ("ready", "paused"): "ready"}.get((action, state))
        if after is None:
            self.dropped += 1
            return
        self.state[agent] = after
        self.actions.append(StaffAction(t, action, agent, reason))


def load_plan(path: str | Path, config: CenterConfig, agents: Sequence[AgentProfile],
              options: QueueLogOptions | None = None) -> QueueLogPlan:
    """Read a queue_log into arrivals and a staffing timeline for ``agents``; bad input raises."""
    options = options or QueueLogOptions()
    _check_options(options, config)
    replay = load_queue_log(path, _mapping(options, config), config.queues, config.languages,
                            config.countries)
    present, first_line = _scan_members(path)
    matcher = MemberMatcher(agents)
    matched: dict[str, str] = {}
    unmatched: dict[str, int] = {}
    defaulted: dict[str, int] = {}
    configured = {r.casefold(): r for r in config.pause_reasons}

    def reason_of(text: str | None) -> str:
        if text is not None and text in options.pause_reasons:
            return options.pause_reasons[text]
        found = configured.get((text or "").casefold())
        if found is None:
            key = text or "(none)"
            defaulted[key] = defaulted.get(key, 0) + 1
            return options.default_pause_reason
        return found

    def agent_of(member: str) -> str | None:
        agent = matcher.match(member)
        if agent is None:
            unmatched[member] = unmatched.get(member, 0) + 1
        else:
            matched[member] = agent
        return agent

    timeline = _Timeline()
    # Members already logged in when the log begins, then (in time order) the log's own events.
    starting = sorted(present) if options.logged_in_at_start else []
    events: list[tuple[float, int, str, str, str | None]] = []
    for member in starting:
        seen = present[member]
        events.append((0.0, 0, member, "login", None))
        if seen.paused:
            # The parser drops an unpause it saw no pause for: replay both ends here.
            events.append((0.0, 1, member, "pause", seen.pause_reason))
            events.append((seen.unpaused_at, 1, member, "unpause", None))
        if seen.left_at is not None:
            events.append((seen.left_at, 0, member, "logout", None))
    kinds: dict[str, Action] = {"login": "login", "logout": "logout", "pause": "pause",
                                "unpause": "ready"}
    for ev in replay.staffing:
        events.append(_event_row(ev))
    events.sort(key=lambda e: (e[0], e[1]))
    for t, _order, member, kind, reason in events:
        if kind not in kinds:
            continue  # membership changes: roster skills decide what the agent takes
        agent = agent_of(member)
        if agent is not None:
            action = kinds[kind]
            timeline.add(t, action, agent, reason_of(reason) if action == "pause" else None)
    calls = replay.calls
    # Label intervals in the first site's local time: planners read the report in it.
    tz = ZoneInfo(next(iter(config.sites.values())).timezone)
    start = (replay.log.origin or datetime.fromtimestamp(0, UTC)).astimezone(tz)
    last = max([c.t for c in calls] + [a.t for a in timeline.actions], default=0.0)
    return QueueLogPlan(
        file=str(path), start=start,
        horizon_s=math.floor(last) + 1.0, arrivals=calls, timeline=tuple(timeline.actions),
        agents=matched, unmatched=unmatched,
        unmatched_lines={m: first_line[m] for m in unmatched if m in first_line},
        present_at_start=tuple(starting), pause_defaulted=defaulted,
        dropped_actions=timeline.dropped, incomplete=len(replay.incomplete),
        unknown_events=dict(replay.unknown_events))


def _event_row(ev: StaffingEvent) -> tuple[float, int, str, str, str | None]:
    # Same-second order: the log's own events come after the inferred start-of-log ones.
    return ev.t, 2, ev.agent, ev.kind, ev.reason


def describe(plan: QueueLogPlan) -> list[str]:
    """Plain lines summarising a plan for the terminal: calls, agents, and what was not mapped."""
    agents = len(set(plan.agents.values()))
    lines = [f"queue_log {plan.file}: {len(plan.arrivals):,} calls, "
             f"{len(plan.timeline):,} staffing actions for {agents} roster agent(s)"
             + (f" ({len(plan.present_at_start)} already logged in at the start)"
                if plan.present_at_start else "")]
    if plan.unmatched:
        names = ", ".join(sorted(plan.unmatched)[:10])
        more = " ..." if len(plan.unmatched) > 10 else ""
        lines.append(f"warning: {len(plan.unmatched)} queue_log member(s) match no roster agent "
                     f"and are left out: {names}{more} (--strict refuses them)")
    if plan.pause_defaulted:
        reasons = ", ".join(f"{r} x{n}" for r, n in sorted(plan.pause_defaulted.items()))
        lines.append(f"note: pause reasons not configured, replayed as the default: {reasons}")
    if plan.dropped_actions:
        lines.append(f"note: {plan.dropped_actions} staffing action(s) the agent's state could "
                     f"not take (second login, unpause when ready, ...) are left out")
    if plan.incomplete:
        lines.append(f"note: {plan.incomplete} call(s) still open at the end of the log are "
                     f"left out")
    if plan.unknown_events:
        events = ", ".join(f"{e} x{n}" for e, n in sorted(plan.unknown_events.items()))
        lines.append(f"note: events not replayed: {events}")
    return lines
