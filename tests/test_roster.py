"""Expanding agent groups into agents: deterministic, bounded levels, language mix, newcomers."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from configkit import REFERENCE, REPO, reference_data

from acd.config.load import LoadedCenter, center_from_data, load_center
from acd.config.roster import expand_group, expand_roster
from acd.config.schema import AgentGroup
from acd.core.model import AgentProfile


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    """The reference center, loaded once for the module."""
    return load_center(REFERENCE)


def _group(**overrides: object) -> AgentGroup:
    base: dict[str, object] = {"site": "moscow", "supervisor": "S", "count": 20,
                               "skills": {"tech": 5}, "languages": ["ru"],
                               "first_extension": 5001}
    base.update(overrides)
    return AgentGroup.model_validate(base)


_DIGEST_SCRIPT = """
import hashlib, json, sys
from acd.config.load import load_center
agents = load_center(sys.argv[1]).agents
rows = [[a.id, a.site, a.group, sorted(a.skills.items()), list(a.languages),
         sorted(a.countries) if a.countries is not None else None, a.newcomer, a.extension,
         a.endpoint] for a in agents]
print(hashlib.sha256(json.dumps(rows).encode()).hexdigest())
"""


def _digest(agents: list[AgentProfile]) -> str:
    rows = [[a.id, a.site, a.group, sorted(a.skills.items()), list(a.languages),
             sorted(a.countries) if a.countries is not None else None, a.newcomer, a.extension,
             a.endpoint] for a in agents]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_two_loads_give_identical_rosters(center: LoadedCenter) -> None:
    """Loading the reference center twice gives the same agents in the same order."""
    again = load_center(REFERENCE)
    assert again.agents == center.agents
    assert [a.id for a in again.agents] == [a.id for a in center.agents]


def test_roster_identical_across_processes_and_hash_seeds(center: LoadedCenter) -> None:
    """The roster does not depend on the interpreter's hash seed (set/dict iteration order)."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT, str(REFERENCE)],
                             cwd=REPO, env=env, capture_output=True, text=True, check=True,
                             timeout=60)
        digests.add(out.stdout.strip())
    assert digests == {_digest(center.agents)}


def test_roster_follows_group_order_and_count(center: LoadedCenter) -> None:
    """Agents come group by group in config order, each group with its configured count."""
    groups = center.config.agent_groups
    order = list(dict.fromkeys(a.group for a in center.agents))
    assert order == list(groups)
    counts = Counter(a.group for a in center.agents)
    assert counts == {name: g.count for name, g in groups.items()}
    assert sum(counts.values()) == 281


def test_ids_and_extensions_follow_prefix_and_first_extension(center: LoadedCenter) -> None:
    """Agent n of a group is ``<group>-00n`` on extension first_extension + n - 1."""
    for name, group in center.config.agent_groups.items():
        members = [a for a in center.agents if a.group == name]
        for n, agent in enumerate(members, start=1):
            assert agent.id == f"{name}-{n:03d}"
            assert agent.extension == str(group.first_extension + n - 1)
            assert agent.endpoint == f"PJSIP/{agent.extension}"
            assert agent.site == group.site


def test_levels_stay_within_1_and_10(center: LoadedCenter) -> None:
    """Every agent's proficiency is an integer in 1..10 for exactly the group's skills."""
    groups = center.config.agent_groups
    for agent in center.agents:
        assert set(agent.skills) == set(groups[agent.group].skills)
        for level in agent.skills.values():
            assert isinstance(level, int)
            assert 1 <= level <= 10


def test_levels_spread_around_the_base(center: LoadedCenter) -> None:
    """Tenured agents' levels stay within level_spread of the base and actually vary."""
    for name, group in center.config.agent_groups.items():
        tenured = [a for a in center.agents if a.group == name and not a.newcomer]
        for skill, base in group.skills.items():
            levels = {a.skills[skill] for a in tenured}
            assert levels <= set(range(base - group.level_spread, base + group.level_spread + 1))
            if group.level_spread and len(tenured) > 2 * group.level_spread:
                assert len(levels) == 2 * group.level_spread + 1, (name, skill)


def test_levels_clamped_at_both_ends() -> None:
    """A base of 10 with a wide spread never exceeds 10; a big newcomer drop never goes below 1."""
    high = expand_group("high", _group(skills={"tech": 10}, level_spread=4))
    assert max(a.skills["tech"] for a in high) == 10
    assert min(a.skills["tech"] for a in high) == 6
    low = expand_group("low", _group(skills={"tech": 1}, level_spread=4, newcomer_share=1.0,
                                     newcomer_level_drop=9))
    assert {a.skills["tech"] for a in low} == {1}


def test_newcomers_get_lower_levels(center: LoadedCenter) -> None:
    """A newcomer's level is the tenured pattern lowered by newcomer_level_drop, never below 1."""
    group = center.config.agent_groups["msk-tech-ru"]
    members = [a for a in center.agents if a.group == "msk-tech-ru"]
    tenured = expand_group("x", group.model_copy(update={"newcomer_share": 0.0}))
    for agent, plain in zip(members, tenured, strict=True):
        drop = group.newcomer_level_drop if agent.newcomer else 0
        for skill, level in agent.skills.items():
            assert level == max(1, plain.skills[skill] - drop)


def test_language_mix_honoured(center: LoadedCenter) -> None:
    """Each language_mix block gives exactly its count of agents its languages, in block order."""
    for name, group in center.config.agent_groups.items():
        members = [a for a in center.agents if a.group == name]
        if not group.language_mix:
            assert all(a.languages == tuple(group.languages) for a in members), name
            continue
        expected = [tuple(b.languages) for b in group.language_mix for _ in range(b.count)]
        assert [a.languages for a in members] == expected, name


def test_central_asia_language_counts(center: LoadedCenter) -> None:
    """The Central Asia group has 8 Kazakh, 7 Uzbek, 5 Kyrgyz and 4 Tajik speakers, all with ru."""
    members = [a for a in center.agents if a.group == "msk-central-asia"]
    native = Counter(a.languages[0] for a in members)
    assert native == {"kk": 8, "uz": 7, "ky": 5, "tg": 4}
    assert all("ru" in a.languages for a in members)


def test_newcomers_spread_through_each_group(center: LoadedCenter) -> None:
    """Newcomers are not bunched at one end: each half of a group with 2+ newcomers has some."""
    for name, group in center.config.agent_groups.items():
        flags = [a.newcomer for a in center.agents if a.group == name]
        if sum(flags) < 2:
            continue
        half = group.count // 2
        assert any(flags[:half]) and any(flags[half:]), name


def test_newcomers_spread_over_language_blocks(center: LoadedCenter) -> None:
    """In a language-mixed group, newcomers fall in more than one language block."""
    members = [a for a in center.agents if a.group == "msk-central-asia"]
    blocks = {a.languages for a in members if a.newcomer}
    assert len(blocks) == 2


def test_newcomer_count_is_share_of_group() -> None:
    """A group of 40 with share 0.25 has exactly 10 newcomers, evenly spaced every 4th agent."""
    agents = expand_group("g", _group(count=40, newcomer_share=0.25))
    flags = [a.newcomer for a in agents]
    assert sum(flags) == 10
    assert [i for i, f in enumerate(flags) if f] == list(range(3, 40, 4))


def test_id_prefix_and_endpoint_template() -> None:
    """id_prefix replaces the group name in ids; the endpoint template gets {id} and {ext}."""
    agents = expand_group("g", _group(count=3, id_prefix="msk", endpoint="PJSIP/{id}-{ext}",
                                      first_extension=700))
    assert [a.id for a in agents] == ["msk-001", "msk-002", "msk-003"]
    assert [a.endpoint for a in agents] == ["PJSIP/msk-001-700", "PJSIP/msk-002-701",
                                            "PJSIP/msk-003-702"]


def test_country_restriction_carried_to_agents() -> None:
    """A group's countries list becomes every agent's countries set; no list means no limit."""
    restricted = expand_group("g", _group(count=2, countries=["KZ", "UZ"]))
    assert all(a.countries == frozenset({"KZ", "UZ"}) for a in restricted)
    free = expand_group("g", _group(count=2))
    assert all(a.countries is None for a in free)


def test_changing_one_group_leaves_others_alone() -> None:
    """Growing one group changes only that group's agents, not the rest of the roster."""
    data = reference_data()
    before = center_from_data(data, "a.yaml").agents
    data["agent_groups"]["kyi-voc"]["count"] = 12
    after = center_from_data(data, "b.yaml").agents
    assert [a for a in after if a.group != "kyi-voc"] == [
        a for a in before if a.group != "kyi-voc"]
    assert len(after) == len(before) + 3


def test_expand_roster_matches_loaded_agents(center: LoadedCenter) -> None:
    """expand_roster on the validated config gives the roster load_center returned."""
    assert expand_roster(center.config) == center.agents
