"""Helpers for routing-core tests: small centers built as data, and random drives of a switchboard.

``center_data`` builds a small center as a plain dict (one agent per group, so agent ids are
readable) and ``build`` validates it through ``center_from_data``. The checking switchboard
itself ships in :mod:`acd.testing.switchboard`; ``drive`` feeds one seeded random traffic and
agent activity, and ``settle`` ends a run.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from acd.config.load import LoadedCenter, center_from_data, load_center
from acd.config.policy import center_policy
from acd.config.schema import AgentSelection, CallSelection, CenterConfig, NewcomerPolicy
from acd.core.model import (
    AgentNotLoggedIn,
    AgentProfile,
    AgentState,
    CallState,
    Output,
)
from acd.core.router import Router
from acd.testing.switchboard import ModelError, Switchboard

REPO = Path(__file__).resolve().parents[1]
REFERENCE_CENTER = REPO / "config" / "center.yaml"
#: The router's pseudo country for callers whose country is unknown.
OTHER = "other"

#: Countries a small center may use: native language, fallback languages, home site.
COUNTRY_TABLE: dict[str, tuple[str, list[str], str]] = {
    "RU": ("ru", [], "moscow"),
    "UA": ("uk", ["ru"], "kyiv"),
    "KZ": ("kk", ["ru"], "moscow"),
    "BY": ("be", ["ru"], "kyiv"),
}
LANGUAGES = ("ru", "uk", "kk", "be")
SKILLS = ("tech", "orders", "voc")

T = TypeVar("T")


# ------------------------------------------------------------------------------ centers


def agent(name: str, *, site: str = "moscow", skills: Mapping[str, int] | None = None,
          languages: Sequence[str] = ("ru",), countries: Sequence[str] | None = None,
          newcomer: bool = False) -> dict[str, Any]:
    """One agent, described as a one-person group; its agent id is ``name``."""
    return {"name": name, "site": site, "skills": dict(skills or {"tech": 5}),
            "languages": list(languages), "countries": countries, "newcomer": newcomer}


def queue(skill: str = "tech", **fields: Any) -> dict[str, Any]:
    """A queue dict for ``skill`` with test-friendly timers; ``fields`` override anything."""
    data: dict[str, Any] = {"skill": skill, "wrap_up_s": 10, "ring_timeout_s": 15,
                            "max_wait_s": 1800, "routing": {"sites": "all"}}
    data.update(fields)
    return data


def center_data(agents: Sequence[Mapping[str, Any]], queues: Mapping[str, Any] | None = None,
                countries: Sequence[str] = ("RU",), **top: Any) -> dict[str, Any]:
    """A small two-site center as plain data: ``agents`` from :func:`agent`, one group each."""
    groups: dict[str, Any] = {}
    for i, a in enumerate(agents):
        group: dict[str, Any] = {
            "site": a["site"], "supervisor": "Test Supervisor", "count": 1,
            "skills": dict(a["skills"]), "level_spread": 0, "languages": list(a["languages"]),
            "newcomer_share": 1.0 if a["newcomer"] else 0.0, "newcomer_level_drop": 0,
            "first_extension": 100 + i}
        if a["countries"] is not None:
            group["countries"] = list(a["countries"])
        groups[a["name"]] = group
    queues = dict(queues or {"tech": queue("tech")})
    data: dict[str, Any] = {
        "version": 1,
        "center": {"name": "Test center", "default_language": "ru",
                   "default_queue": next(iter(queues))},
        "sites": {"moscow": {"name": "Moscow", "timezone": "Europe/Moscow"},
                  "kyiv": {"name": "Kyiv", "timezone": "Europe/Kyiv"}},
        "languages": {lang: {"name": lang.upper()} for lang in LANGUAGES},
        "countries": {c: {"name": c, "language": COUNTRY_TABLE[c][0],
                          "fallback_languages": COUNTRY_TABLE[c][1],
                          "home_site": COUNTRY_TABLE[c][2]} for c in countries},
        "skills": {s: {"name": s.title()} for s in SKILLS},
        "queues": queues,
        "agent_groups": groups,
    }
    data.update(top)
    return data


def build(data: Mapping[str, Any]) -> tuple[CenterConfig, list[AgentProfile]]:
    """Validate ``data`` like a config file; agents of one-person groups take the group's name."""
    loaded = center_from_data(dict(data), "test-center.yaml")
    counts = {name: g.count for name, g in loaded.config.agent_groups.items()}
    agents = [dataclasses.replace(p, id=p.group) if counts[p.group] == 1 else p
              for p in loaded.agents]
    return loaded.config, agents


def small_router(data: Mapping[str, Any]) -> Router:
    """A router over a small center built by :func:`center_data`."""
    config, agents = build(data)
    return Router(center_policy(config), agents)


@cache
def reference_center() -> LoadedCenter:
    """The shipped reference center (config/center.yaml, 281 agents), loaded once."""
    return load_center(REFERENCE_CENTER)


def random_center_data(rng: random.Random) -> dict[str, Any]:
    """A small random-ish center: 2-3 queues with random rules, 3-6 groups of 1-4 agents.

    Every queue ends its expansion with an overflow step, so any roster passes the coverage
    check; queues may overflow into each other (the router bounds the chain).
    """
    names = rng.sample(["tech", "orders", "voc"], rng.randint(2, 3))
    countries = ["RU", "UA", "KZ"]
    queues: dict[str, Any] = {}
    for name in names:
        steps: list[dict[str, Any]] = []
        t = 0.0
        for kind in rng.sample(["min_level", "add_sites", "accept_fallback_languages",
                                "include_newcomers", "offer_callback"], rng.randint(0, 4)):
            t += rng.choice([0, 2, 5, 10])
            value: object = rng.randint(1, 3) if kind == "min_level" else (
                "all" if kind == "add_sites" else True)
            steps.append({"after_s": t, kind: value})
        targets = ["voicemail", "callback", *[n for n in names if n != name]]
        steps.append({"after_s": t + rng.choice([20, 60, 200]), "overflow": rng.choice(targets)})
        queues[name] = {
            "skill": name, "priority": rng.choice([0, 0, 1, 3]),
            "service_level": {"threshold_s": rng.choice([10, 20, 30]), "target": 0.8},
            "wrap_up_s": rng.choice([0, 5, 20]), "ring_timeout_s": rng.choice([5, 15]),
            "max_length": rng.randint(1, 6), "max_wait_s": rng.choice([30, 120, 600]),
            "overflow": rng.choice(targets),
            "routing": {
                "agent_selection": rng.choice([s.value for s in AgentSelection]),
                "call_selection": rng.choice([s.value for s in CallSelection]),
                "min_level": rng.randint(1, 5), "sites": rng.choice(["home", "all"]),
                "newcomers": rng.choice([p.value for p in NewcomerPolicy]),
                "site_affinity": rng.random() < 0.7},
            "expansion": steps}
    groups: dict[str, Any] = {}
    ext = 100
    for g in range(rng.randint(3, 6)):
        count = rng.randint(1, 4)
        group: dict[str, Any] = {
            "site": rng.choice(["moscow", "kyiv"]), "supervisor": "Test Supervisor",
            "count": count,
            "skills": {s: rng.randint(1, 9) for s in rng.sample(names, rng.randint(1, len(names)))},
            "level_spread": rng.randint(0, 2),
            "languages": rng.choice([["ru"], ["uk", "ru"], ["kk", "ru"], ["uk"], ["kk"]]),
            "newcomer_share": rng.choice([0.0, 0.3, 0.5]), "first_extension": ext}
        if rng.random() < 0.25:
            group["countries"] = rng.sample(countries, rng.randint(1, 2))
        groups[f"g{g}"] = group
        ext += count
    return {
        "version": 1,
        "center": {"name": "Random center", "default_language": "ru", "default_queue": names[0]},
        "sites": {"moscow": {"name": "Moscow", "timezone": "Europe/Moscow"},
                  "kyiv": {"name": "Kyiv", "timezone": "Europe/Kyiv"}},
        "languages": {lang: {"name": lang.upper()} for lang in ("ru", "uk", "kk")},
        "countries": {c: {"name": c, "language": COUNTRY_TABLE[c][0],
                          "fallback_languages": COUNTRY_TABLE[c][1],
                          "home_site": COUNTRY_TABLE[c][2]} for c in countries},
        "skills": {s: {"name": s.title()} for s in names},
        "queues": queues,
        "agent_groups": groups,
        "rona": {"pause_reason": "rona", "auto_ready_after_s": rng.choice([None, 0, 10, 60])},
    }


# ------------------------------------------------------------------------------ outputs


def of_type(outputs: Iterable[Output], kind: type[T]) -> list[T]:
    """The outputs of one kind, in order."""
    return [o for o in outputs if isinstance(o, kind)]


def one(outputs: Iterable[Output], kind: type[T]) -> T:
    """The single output of ``kind``; fails if there is none or more than one."""
    found = of_type(outputs, kind)
    assert len(found) == 1, f"expected one {kind.__name__}, got {found}"
    return found[0]


# ------------------------------------------------------------------------------ driver


#: Relative weights of the driver's actions.
ACTION_WEIGHTS = {"arrive": 25, "answer": 15, "no_answer": 4, "abandon": 5, "talk_end": 11,
                  "callback": 2, "agent": 10, "to_deadline": 13, "advance_by": 12, "late": 3}


def drive(sb: Switchboard, rng: random.Random, steps: int, *, unknown: bool = True) -> None:
    """Feed ``sb`` ``steps`` seeded random actions, checking the invariants after each."""
    cfg = sb.config
    queues = [*cfg.queues, *(["billing"] if unknown else [])]
    languages = [*cfg.languages, *(["xx"] if unknown else [])]
    countries = [*cfg.countries, *(["ZZ", OTHER] if unknown else [])]
    reasons = [r for r in cfg.pause_reasons if r != cfg.rona.pause_reason]
    agent_ids = list(sb.agents)
    n = 0
    for _ in range(steps):
        queued, ringing = sb.calls_in(CallState.QUEUED), sb.calls_in(CallState.RINGING)
        talking = sb.calls_in(CallState.TALKING)
        enabled = {"answer": bool(ringing), "no_answer": bool(ringing),
                   "abandon": bool(queued or ringing), "talk_end": bool(talking),
                   "callback": bool(queued)}
        names = [a for a in ACTION_WEIGHTS if enabled.get(a, True)]
        action = rng.choices(names, [ACTION_WEIGHTS[a] for a in names])[0]
        if action == "arrive":
            n += 1
            sb.arrive(f"c{n}", rng.choice(queues), rng.choice(languages), rng.choice(countries),
                      rng.choice([0, 0, 0, 1, 2]))
        elif action == "answer":
            sb.answer(rng.choice(ringing))
        elif action == "no_answer":
            sb.no_answer(rng.choice(ringing), rng.choice(["no_answer", "busy"]))
        elif action == "abandon":
            sb.hangup(rng.choice(queued + ringing))
        elif action == "talk_end":
            sb.hangup(rng.choice(talking))
        elif action == "callback":
            sb.accept_callback(rng.choice(queued))
        elif action == "agent":
            agent_id = rng.choice(agent_ids)
            if sb.agents[agent_id].state is AgentState.LOGGED_OUT:
                sb.login(agent_id, rng.choice([None, None, None, *reasons]))
            else:
                kind = rng.choice(["logout", "pause", "ready", "ready"])
                # With timers due, the wrap-up a pending logout waits for may end first.
                wrap_up_may_end = sb.timers_due() and sb.agents[agent_id].logout_pending
                try:
                    if kind == "logout":
                        sb.logout(agent_id)
                    elif kind == "pause":
                        sb.pause(agent_id, rng.choice(reasons))
                    else:
                        sb.make_ready(agent_id)
                except AgentNotLoggedIn:
                    if not wrap_up_may_end or sb.agents[agent_id].state is not \
                            AgentState.LOGGED_OUT:
                        raise
        elif action == "to_deadline":
            sb.advance_to_deadline()
        elif action == "advance_by":
            sb.advance(sb.now + rng.choice([0.5, 2.0, 5.0, 10.0, 30.0, 120.0]))
        else:
            sb.set_clock(sb.now + rng.choice([1.0, 16.0, 60.0]))
        sb.check()


def settle(sb: Switchboard, max_rounds: int = 10_000) -> None:
    """End the run: hang up every live call, then advance until the router has no deadline."""
    for call_id in list(sb.calls):
        if call_id in sb.calls:
            sb.hangup(call_id)
            sb.check()
    for _ in range(max_rounds):
        if sb.router.next_deadline() is None:
            break
        sb.advance_to_deadline()
        sb.check()
    if sb.router.next_deadline() is not None or sb.router.calls_in_router:
        raise ModelError("the router did not settle after every call hung up")
    if len(sb.ended) != sb.arrivals:  # ``ended`` is keyed by call: a second end already failed
        raise ModelError(f"{sb.arrivals} arrivals but {len(sb.ended)} calls ended")
