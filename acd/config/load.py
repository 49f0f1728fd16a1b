"""Load and validate the center configuration, reporting every problem at once.

Errors name the file, the YAML path, the line and the bad value; the CLI prints them and exits
with status 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from acd.config import yamlsafe
from acd.config.roster import expand_roster
from acd.config.schema import CenterConfig, NewcomerPolicy
from acd.core.model import AgentProfile
from acd.errors import ConfigError, Problem, format_path

M = TypeVar("M", bound=BaseModel)

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
    data = yamlsafe.load_file(path)
    text = Path(path).read_text(encoding="utf-8")
    return center_from_data(data, file, text)


def center_from_data(data: object, file: str, text: str | None = None) -> LoadedCenter:
    """Validate already-parsed YAML data (``text`` lets errors carry line numbers)."""

    def line(loc: tuple[str | int, ...]) -> int | None:
        return yamlsafe.line_of(text, loc) if text is not None else None

    if not isinstance(data, dict):
        raise ConfigError([Problem(file, "<root>", type(data).__name__,
                                   "the center config must be a mapping", line(()))])
    config = validate_strict(CenterConfig, data, file, line)
    problems = [Problem(file, format_path(loc), value, msg, line(loc))
                for loc, value, msg in _cross_check(config)]
    if problems:
        raise ConfigError(problems)
    agents = expand_roster(config)
    dup = _duplicates([a.id for a in agents])
    ext = _duplicates([a.extension for a in agents])
    problems = [Problem(file, "agent_groups", d, "agent id produced by two groups; set id_prefix",
                        line(("agent_groups",))) for d in dup]
    problems += [Problem(file, "agent_groups", e, "extension used by two agents; change "
                         "first_extension", line(("agent_groups",))) for e in ext]
    cover_problems, warnings = _coverage(config, agents)
    problems += [Problem(file, format_path(loc), value, msg, line(loc))
                 for loc, value, msg in cover_problems]
    if problems:
        raise ConfigError(problems)
    return LoadedCenter(file, config, agents, warnings)


def validate_strict(model: type[M], data: dict[str, object], file: str,
                    line: Callable[[tuple[str | int, ...]], int | None]) -> M:
    """``data`` validated as ``model``; ConfigError with every problem (``line`` finds lines).

    JSON mode with strict=True: no silent coercion (``count: true`` is not 1 agent, ``"46"``
    is not 46), while enum values are still written as plain strings.
    """
    try:
        return model.model_validate_json(json.dumps(data, default=str), strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(file, format_path(loc), err.get("input"),
                                    yaml_words(err["msg"]), line(loc)))
        raise ConfigError(problems) from None


def yaml_words(message: str) -> str:
    """Pydantic's JSON vocabulary in the words of the YAML file the user wrote."""
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


def _one_of(kind: str, names: object) -> str:
    return f"unknown {kind}; valid: {', '.join(sorted(names))}"  # type: ignore[call-overload]


def _cross_check(cfg: CenterConfig) -> Iterator[Finding]:
    """References between sections: every name used is defined."""
    langs, sites, skills, queues, countries = (cfg.languages, cfg.sites, cfg.skills, cfg.queues,
                                               cfg.countries)
    if cfg.center.default_language not in langs:
        yield (("center", "default_language"), cfg.center.default_language,
               _one_of("language", langs))
    if cfg.center.default_queue not in queues:
        yield (("center", "default_queue"), cfg.center.default_queue, _one_of("queue", queues))
    for name, site in sites.items():
        try:
            ZoneInfo(site.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            yield (("sites", name, "timezone"), site.timezone, "unknown IANA time zone")
    for name, c in countries.items():
        if c.language not in langs:
            yield (("countries", name, "language"), c.language, _one_of("language", langs))
        for i, fb in enumerate(c.fallback_languages):
            if fb not in langs:
                yield (("countries", name, "fallback_languages", i), fb,
                       _one_of("language", langs))
        if c.home_site not in sites:
            yield (("countries", name, "home_site"), c.home_site, _one_of("site", sites))
    targets = set(queues) | set(OUT_TARGETS)
    for name, q in queues.items():
        if q.skill not in skills:
            yield (("queues", name, "skill"), q.skill, _one_of("skill", skills))
        if q.overflow not in targets or q.overflow == name:
            yield (("queues", name, "overflow"), q.overflow,
                   _one_of("overflow target (voicemail, callback or another queue)",
                           targets - {name}))
        for i, step in enumerate(q.expansion):
            if step.overflow is not None and (step.overflow not in targets
                                              or step.overflow == name):
                yield (("queues", name, "expansion", i, "overflow"), step.overflow,
                       _one_of("overflow target", targets - {name}))
    for name, g in cfg.agent_groups.items():
        if g.site not in sites:
            yield (("agent_groups", name, "site"), g.site, _one_of("site", sites))
        for skill in g.skills:
            if skill not in skills:
                yield (("agent_groups", name, "skills", skill), skill, _one_of("skill", skills))
        for i, lang in enumerate(g.languages):
            if lang not in langs:
                yield (("agent_groups", name, "languages", i), lang, _one_of("language", langs))
        for b, block in enumerate(g.language_mix):
            for i, lang in enumerate(block.languages):
                if lang not in langs:
                    yield (("agent_groups", name, "language_mix", b, "languages", i), lang,
                           _one_of("language", langs))
        for i, country in enumerate(g.countries or ()):
            if country not in countries:
                yield (("agent_groups", name, "countries", i), country,
                       _one_of("country", countries))
        try:
            g.endpoint.format(id="x", ext="1")
        except (KeyError, IndexError, ValueError):
            yield (("agent_groups", name, "endpoint"), g.endpoint,
                   "endpoint template may only use {id} and {ext}")
    if cfg.rona.pause_reason not in cfg.pause_reasons:
        yield (("rona", "pause_reason"), cfg.rona.pause_reason, _one_of("pause reason",
                                                                        cfg.pause_reasons))


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
