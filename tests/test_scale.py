"""An N-times center keeps the reference center's structure, scaled: groups, languages, levels."""

from __future__ import annotations

from collections import Counter

import pytest
from configkit import REFERENCE

from acd.config.load import LoadedCenter, load_center
from acd.config.scale import extension_multiplier, scaled_center
from acd.core.model import AgentProfile
from acd.errors import ConfigError


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    """The reference center, loaded once for the module."""
    return load_center(REFERENCE)


def _count(agents: list[AgentProfile], *fields: str) -> Counter[tuple[object, ...]]:
    """How many agents share each combination of the profile ``fields``."""
    return Counter(tuple(getattr(a, f) for f in fields) for a in agents)


@pytest.mark.parametrize("factor", [2, 10])
def test_scaled_roster_keeps_groups_sites_and_language_mix(center: LoadedCenter,
                                                           factor: int) -> None:
    """Each group, site and language block has exactly factor times the reference's agents."""
    big = scaled_center(center, factor)
    assert len(big.agents) == factor * len(center.agents)
    for fields in (("group", "site"), ("group", "languages"), ("site", "languages", "countries")):
        want = Counter({k: n * factor for k, n in _count(center.agents, *fields).items()})
        assert _count(big.agents, *fields) == want, fields


@pytest.mark.parametrize("factor", [2, 10])
def test_scaled_roster_keeps_newcomer_share_and_levels(center: LoadedCenter,
                                                       factor: int) -> None:
    """Per group the newcomer share is the configured one and tenured agents have the same
    levels as in the reference group."""
    big = scaled_center(center, factor)
    for name, group in big.config.agent_groups.items():
        members = [a for a in big.agents if a.group == name]
        assert sum(a.newcomer for a in members) == round(group.count * group.newcomer_share)
        levels = {tuple(sorted(a.skills.items())) for a in members if not a.newcomer}
        ref = {tuple(sorted(a.skills.items()))
               for a in center.agents if a.group == name and not a.newcomer}
        assert levels == ref, name


def test_scaled_center_keeps_everything_but_the_sizes(center: LoadedCenter) -> None:
    """Sites, languages, countries, skills and queue rules are the reference's; only group
    sizes and queue bounds grow."""
    big = scaled_center(center, 10)
    for section in ("center", "sites", "languages", "countries", "skills", "pause_reasons",
                    "rona"):
        assert getattr(big.config, section) == getattr(center.config, section), section
    for name, queue in big.config.queues.items():
        ref = center.config.queues[name]
        assert queue.max_length == 10 * ref.max_length
        assert queue.model_copy(update={"max_length": ref.max_length}) == ref
    assert list(big.config.agent_groups) == list(center.config.agent_groups)
    for name, group in big.config.agent_groups.items():
        assert group.count == 10 * center.config.agent_groups[name].count


def test_scaled_ids_and_extensions_are_unique_and_dialable(center: LoadedCenter) -> None:
    """At 10x no two agents share an id or an extension, and endpoints use the new extension."""
    big = scaled_center(center, 10)
    assert len({a.id for a in big.agents}) == len(big.agents)
    assert len({a.extension for a in big.agents}) == len(big.agents)
    assert all(a.endpoint == f"PJSIP/{a.extension}" for a in big.agents)
    first = next(a for a in big.agents if a.group == "msk-tech-ru")
    assert first.extension == "10010"


def test_factor_one_is_the_same_center(center: LoadedCenter) -> None:
    """Scaling by 1 gives exactly the reference roster."""
    assert scaled_center(center, 1).agents == center.agents


def test_bad_factors_are_refused(center: LoadedCenter) -> None:
    """A factor below 1 is a ValueError; a group beyond the schema's bound is a ConfigError."""
    with pytest.raises(ValueError, match="at least 1"):
        scaled_center(center, 0)
    with pytest.raises(ConfigError):
        scaled_center(center, 1000)  # 46,000 agents in one group: over the 10,000 bound


@pytest.mark.parametrize(("factor", "mult"), [(1, 1), (2, 10), (10, 10), (11, 100), (100, 100)])
def test_extension_multiplier_is_smallest_power_of_ten_at_least_factor(factor: int,
                                                                       mult: int) -> None:
    """The extension multiplier is the smallest power of ten not below the factor."""
    assert extension_multiplier(factor) == mult
