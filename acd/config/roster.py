"""Expand agent groups, described the way planners do, into individual agents.

The expansion is deterministic: the same YAML always gives the same agents, ids, levels and
extensions, so a simulation and the live service see the same roster.
"""

from __future__ import annotations

from acd.config.schema import AgentGroup, CenterConfig
from acd.core.model import AgentProfile


def _levels(group: AgentGroup, i: int, newcomer: bool) -> dict[str, int]:
    # A fixed zig-zag around the base level (0, +1, -1, +2, -2, ...) spreads proficiency the
    # way real groups look without randomness.
    spread = group.level_spread
    offsets = [0] + [s * k for k in range(1, spread + 1) for s in (1, -1)]
    off = offsets[i % len(offsets)]
    drop = group.newcomer_level_drop if newcomer else 0
    return {skill: max(1, min(10, base + off - drop)) for skill, base in group.skills.items()}


def expand_group(name: str, group: AgentGroup) -> list[AgentProfile]:
    """The agents of one group: ids ``<prefix>-001``...; newcomers spread evenly through it."""
    prefix = group.id_prefix or name
    newcomers = round(group.count * group.newcomer_share)
    blocks: list[tuple[str, ...]] = []
    for block in group.language_mix:
        blocks.extend([tuple(block.languages)] * block.count)
    if not blocks:
        blocks = [tuple(group.languages)] * group.count
    countries = frozenset(group.countries) if group.countries is not None else None
    agents = []
    for i in range(group.count):
        # Spread newcomers evenly over the group (and so over its language blocks).
        newcomer = (i + 1) * newcomers // group.count > i * newcomers // group.count
        ext = str(group.first_extension + i)
        agent_id = f"{prefix}-{i + 1:03d}"
        agents.append(AgentProfile(
            id=agent_id, site=group.site, group=name, skills=_levels(group, i, newcomer),
            languages=blocks[i], countries=countries, newcomer=newcomer, extension=ext,
            endpoint=group.endpoint.format(id=agent_id, ext=ext)))
    return agents


def expand_roster(config: CenterConfig) -> list[AgentProfile]:
    """Every agent of the center, group by group in config order."""
    agents: list[AgentProfile] = []
    for name, group in config.agent_groups.items():
        agents.extend(expand_group(name, group))
    return agents
