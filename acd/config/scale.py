"""A center ``factor`` times the size of a loaded one, for scaling benchmarks and simulations.

Same sites, languages, countries, skills, queues and routing; every agent group (and each of
its language blocks) is ``factor`` times larger, so the roster keeps its structure: the same
share of newcomers, the same spread of proficiency and the same language mix per group. Each
queue's ``max_length`` grows by the same factor (up to the schema's 100,000): the bound is a
number of calls sized for the staff, and ten times the agents hold ten times the calls.
Extensions are renumbered so they stay unique: each group's ``first_extension`` is multiplied
by the smallest power of ten at least ``factor`` (1001 becomes 10010 at 10x), which keeps
disjoint extension ranges disjoint.

The scaled config goes through the same validation and roster expansion as a file would.
"""

from __future__ import annotations

from acd.config.load import LoadedCenter, center_from_data

#: The schema's bound on a queue's ``max_length``.
MAX_QUEUE_LENGTH = 100_000


def extension_multiplier(factor: int) -> int:
    """The smallest power of ten at least ``factor`` (1 for ``factor`` 1)."""
    m = 1
    while m < factor:
        m *= 10
    return m


def scaled_center(center: LoadedCenter, factor: int) -> LoadedCenter:
    """``center`` with every agent group ``factor`` times larger, validated and expanded.

    ``factor`` 1 gives an equal center. Raises ValueError for a factor below 1 and
    :class:`~acd.errors.ConfigError` if the scaled config breaks a schema bound (a group of
    more than 10,000 agents, an extension beyond 99,999,999).
    """
    if factor < 1:
        raise ValueError(f"scale factor must be at least 1, got {factor}")
    data = center.config.model_dump(mode="json")
    mult = extension_multiplier(factor)
    for group in data["agent_groups"].values():
        group["count"] *= factor
        group["first_extension"] *= mult
        for block in group["language_mix"]:
            block["count"] *= factor
    for queue in data["queues"].values():
        queue["max_length"] = min(MAX_QUEUE_LENGTH, queue["max_length"] * factor)
    return center_from_data(data, center.path)
