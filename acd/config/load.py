"""Load and validate the center configuration, reporting every problem at once.

Errors name the file, the YAML path, the line and the bad value; the CLI prints them and exits
with status 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, TypeVar, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from acd.config import yamlsafe
from acd.config.messages import EMPTY_FILE, closest, shown, unknown, wrong_kind
from acd.config.roster import expand_group, expand_roster
from acd.config.schema import CenterConfig, NewcomerPolicy
from acd.core.dialstring import dial_string_problem
from acd.core.model import AgentProfile
from acd.errors import ConfigError, Problem, format_path

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]
#: Where a YAML path of a document is reported: (file, path as written, line or None).
Locate = Callable[[Loc], tuple[str, str, int | None]]

#: Overflow targets that leave the ACD (anything else must be a queue name).
OUT_TARGETS = ("voicemail", "callback")


@dataclass(frozen=True)
class LoadedCenter:
    """A validated center: its config, the expanded roster and coverage warnings."""

    path: str
    config: CenterConfig
    agents: list[AgentProfile]
    warnings: list[str] = field(default_factory=list)


def load_center(path: str | Path) -> LoadedCenter:
    """Read, validate and expand a center config file; raise ConfigError listing every problem."""
    file = str(path)
    data, text = yamlsafe.read_yaml(path)
    return center_from_data(data, file, text)


def center_from_data(data: object, file: str, text: str | None = None,
                     locate: Locate | None = None) -> LoadedCenter:
    """Validate already-parsed YAML data (``text`` lets errors carry line numbers).

    ``locate`` maps a YAML path of the merged data to the file, path and line to blame (a
    scenario's ``center_overrides`` blame the scenario file); by default ``file`` and ``text``.
    """

    def line(loc: Loc) -> int | None:
        return yamlsafe.line_of(text, loc) if text is not None else None

    where = locate or in_file(file, line)

    def problem(loc: Loc, value: object, msg: str) -> Problem:
        at_file, path, at_line = where(loc)
        return Problem(at_file, path, shown(value), msg, at_line)

    if not isinstance(data, dict):
        raise ConfigError([problem((), EMPTY_FILE if data is None else type(data).__name__,
                                   "the center config must be a mapping")])
    config = _validate(CenterConfig, data, file, where)
    problems = [problem(loc, value, msg) for loc, value, msg in _cross_check(config)]
    if problems:
        raise ConfigError(problems)
    agents = expand_roster(config)
    dup = _duplicates([a.id for a in agents])
    ext = _duplicates([a.extension for a in agents])
    problems = [problem(("agent_groups",), d, "agent id produced by two groups; set id_prefix")
                for d in dup]
    problems += [problem(("agent_groups",), e, "extension used by two agents; change "
                         "first_extension") for e in ext]
    cover_problems, warnings = _coverage(config, agents)
    problems += [problem(loc, value, msg) for loc, value, msg in cover_problems]
    if problems:
        raise ConfigError(problems)
    if config.rona.auto_ready_after_s is None:
        warnings.append(RONA_PAUSED_FOREVER)
    return LoadedCenter(file, config, agents, warnings)


def in_file(file: str, line: Callable[[Loc], int | None]) -> Locate:
    """The plain :data:`Locate`: every path is in ``file``, ``line`` finds its line."""
    return lambda loc: (file, format_path(loc), line(loc))


def validate_strict(model: type[M], data: dict[str, object], file: str,
                    line: Callable[[Loc], int | None]) -> M:
    """``data`` validated as ``model``; ConfigError with every problem (``line`` finds lines).

    JSON mode with strict=True: no silent coercion (``count: true`` is not 1 agent, ``"46"``
    is not 46), while enum values are still written as plain strings.
    """
    return _validate(model, data, file, in_file(file, line))


def _validate(model: type[M], data: dict[str, object], file: str, where: Locate) -> M:
    try:
        return model.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        raise ConfigError(schema_problems(model, data, file, exc, where)) from None


def schema_problems(model: type[BaseModel], data: object, file: str, exc: ValidationError,
                    where: Locate) -> list[Problem]:
    """Pydantic's errors as problems a user can act on, one line each.

    An unknown key names the closest valid key, a missing key is named (not its whole parent
    mapping), long values are summarised, and a file of another kind (a scenario given as a
    center config) is one problem saying so.
    """
    kind = _KIND_OF_MODEL.get(model.__name__)
    other = wrong_kind(data, kind) if kind is not None else None
    if other is not None:
        return [Problem(file, "<root>", None, other, 1)]
    errors = exc.errors()
    # A required key given misspelt is reported once, as the misspelling.
    meant: set[Loc] = set()
    for e in errors:
        if e["type"] == "extra_forbidden" and e["loc"]:
            guess = closest(e["loc"][-1], _keys_at(model, e["loc"][:-1]) or [])
            if guess is not None:
                meant.add((*e["loc"][:-1], guess))
    problems = []
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "missing" and loc in meant:
            continue
        at_file, path, at_line = where(loc)
        value: object = shown(err.get("input"))
        if err["type"] == "extra_forbidden" and loc:
            valid = _keys_at(model, loc[:-1])
            msg = unknown("key", loc[-1], valid) if valid is not None \
                else f"unknown key {str(loc[-1])!r}"
        elif err["type"] == "missing" and loc:
            msg, value = f"missing required key {str(loc[-1])!r}", None
        else:
            msg = yaml_words(err["msg"])
        problems.append(Problem(at_file, path, value, msg, at_line))
    return problems


#: The kind of file each top-level model reads, for "this looks like a scenario" messages.
_KIND_OF_MODEL = {"CenterConfig": "center config", "ScenarioFile": "scenario",
                  "ServiceFile": "service settings file"}


def _unwrap(tp: object) -> object:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, UnionType):
            inner = [a for a in get_args(tp) if a is not type(None)]
            if len(inner) != 1:
                return tp
            tp = inner[0]
        else:
            return tp


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """The keys the mapping at ``loc`` may have under ``model`` (None: not a model there)."""
    tp: object = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field_info = tp.model_fields.get(str(part))
            if field_info is None:
                return None
            tp = field_info.annotation
        elif get_origin(tp) is dict and isinstance(part, str):
            tp = get_args(tp)[1]
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def yaml_words(message: str) -> str:
    """Pydantic's JSON vocabulary in the words of the YAML file the user wrote."""
    message = message.removeprefix("Value error, ")
    return (message.replace("an object", "a mapping").replace("a valid dictionary", "a mapping")
            .replace("a valid array", "a list").replace("Object", "Mapping"))


def _duplicates(items: list[str]) -> list[str]:
    seen: set[str] = set()
    dup = []
    for i in items:
        if i in seen:
            dup.append(i)
        seen.add(i)
    return dup


Finding = tuple[tuple[str | int, ...], object, str]


def _one_of(kind: str, names: Iterable[str], word: object) -> str:
    """``unknown <kind>; valid: a, b`` and, for a likely typo of ``word``, the name meant."""
    return unknown(kind, word, list(names), list_all=True)


def _cross_check(cfg: CenterConfig) -> Iterator[Finding]:
    """References between sections: every name used is defined."""
    langs, sites, skills, queues, countries = (cfg.languages, cfg.sites, cfg.skills, cfg.queues,
                                               cfg.countries)
    if cfg.center.default_language not in langs:
        yield (("center", "default_language"), cfg.center.default_language,
               _one_of("language", langs, cfg.center.default_language))
    if cfg.center.default_queue not in queues:
        yield (("center", "default_queue"), cfg.center.default_queue,
               _one_of("queue", queues, cfg.center.default_queue))
    for name, site in sites.items():
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield (("sites", name, "timezone"), site.timezone, "unknown IANA time zone")
    for name, c in countries.items():
        if c.language not in langs:
            yield (("countries", name, "language"), c.language,
                   _one_of("language", langs, c.language))
        for i, fb in enumerate(c.fallback_languages):
            if fb not in langs:
                yield (("countries", name, "fallback_languages", i), fb,
                       _one_of("language", langs, fb))
        if c.home_site not in sites:
            yield (("countries", name, "home_site"), c.home_site,
                   _one_of("site", sites, c.home_site))
    targets = set(queues) | set(OUT_TARGETS)
    for name, q in queues.items():
        if q.skill not in skills:
            yield (("queues", name, "skill"), q.skill, _one_of("skill", skills, q.skill))
        if q.overflow not in targets or q.overflow == name:
            yield (("queues", name, "overflow"), q.overflow,
                   _one_of("overflow target (voicemail, callback or another queue)",
                           targets - {name}, q.overflow))
        for i, step in enumerate(q.expansion):
            if step.overflow is not None and (step.overflow not in targets
                                              or step.overflow == name):
                yield (("queues", name, "expansion", i, "overflow"), step.overflow,
                       _one_of("overflow target", targets - {name}, step.overflow))
    for name, g in cfg.agent_groups.items():
        if g.site not in sites:
            yield (("agent_groups", name, "site"), g.site, _one_of("site", sites, g.site))
        for skill in g.skills:
            if skill not in skills:
                yield (("agent_groups", name, "skills", skill), skill,
                       _one_of("skill", skills, skill))
        for i, lang in enumerate(g.languages):
            if lang not in langs:
                yield (("agent_groups", name, "languages", i), lang,
                       _one_of("language", langs, lang))
        for b, block in enumerate(g.language_mix):
            for i, lang in enumerate(block.languages):
                if lang not in langs:
                    yield (("agent_groups", name, "language_mix", b, "languages", i), lang,
                           _one_of("language", langs, lang))
        for i, country in enumerate(g.countries or ()):
            if country not in countries:
                yield (("agent_groups", name, "countries", i), country,
                       _one_of("country", countries, country))
        try:
            g.endpoint.format(id="x", ext="1")
        except (KeyError, IndexError, ValueError):
            yield (("agent_groups", name, "endpoint"), g.endpoint,
                   "endpoint template may only use {id} and {ext}")
        else:
            # The very grammar the drivers check before dialling: what passes here is dialled.
            for agent in expand_group(name, g):
                why = dial_string_problem(agent.endpoint)
                if why is not None:
                    yield (("agent_groups", name, "endpoint"), g.endpoint,
                           f"gives {agent.endpoint!r} for {agent.id}, which Asterisk cannot "
                           f"dial: {why}")
                    break
    if cfg.rona.pause_reason not in cfg.pause_reasons:
        yield (("rona", "pause_reason"), cfg.rona.pause_reason, _one_of(
            "pause reason", cfg.pause_reasons, cfg.rona.pause_reason))


#: Warned when a center leaves ring-no-answer pauses to the agent (``acd check``, ``sim run``).
RONA_PAUSED_FOREVER = ("rona.auto_ready_after_s is not set: an agent who lets an offer ring out "
                       "stays paused (rona) until they make themselves ready, possibly for the "
                       "rest of the shift; set it (e.g. 30) to bring them back automatically")


def _coverage(cfg: CenterConfig, agents: list[AgentProfile]) -> tuple[list[Finding], list[str]]:
    """Every queue x country demand has an agent who can take it, or an explicit overflow."""
    problems: list[Finding] = []
    warnings: list[str] = []
    for qname, q in cfg.queues.items():
        steps = q.expansion
        lowest = min([q.routing.min_level] + [s.min_level for s in steps if s.min_level])
        all_sites = q.routing.sites == "all" or any(s.add_sites for s in steps)
        fallback = any(s.accept_fallback_languages for s in steps)
        newcomers = q.routing.newcomers is not NewcomerPolicy.exclude or any(
            s.include_newcomers for s in steps)
        explicit_overflow = any(s.overflow for s in steps)
        for cname, c in cfg.countries.items():
            langs = {c.language} | (set(c.fallback_languages) if fallback else set())

            def can_take(a: AgentProfile, languages: set[str], skill: str = q.skill,
                         lowest: int = lowest, all_sites: bool = all_sites,
                         home: str = c.home_site, country: str = cname,
                         newcomers: bool = newcomers) -> bool:
                return (a.skills.get(skill, 0) >= lowest
                        and bool(languages.intersection(a.languages))
                        and (all_sites or a.site == home)
                        and (a.countries is None or country in a.countries)
                        and (newcomers or not a.newcomer))

            if not any(can_take(a, langs) for a in agents):
                if not explicit_overflow:
                    problems.append((("queues", qname), f"{cname}/{c.language}",
                                     "no agent can take this queue's calls from this country "
                                     "and the queue has no overflow step"))
                else:
                    warnings.append(f"queue {qname}: no agent for {cname} ({c.language}); "
                                    "calls will overflow")
            elif not any(can_take(a, {c.language}) for a in agents):
                warnings.append(f"queue {qname}: {cname} callers are served only in "
                                f"{', '.join(sorted(langs - {c.language}))}, not {c.language}")
    return problems, warnings
