"""The engine's own heap operations on SimPy's queue are heapq's, step for step."""

from __future__ import annotations

import heapq
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sim.engine import _heappop, _heappush, _heapreplace

# Keys as SimPy makes them: time (float, or int as SimPy allows), priority, a unique id, and
# an event that must never be compared. Few distinct times and priorities, so ties are common.
_times = st.one_of(st.sampled_from([0.0, 1.0, 1.5, 2.0, 1e-9, 3600.0]),
                   st.integers(min_value=0, max_value=3),
                   st.floats(min_value=0.0, max_value=10.0))
_ops = st.lists(st.tuples(st.sampled_from(["push", "pop", "replace"]), _times,
                          st.sampled_from([-1, 0, 1])), max_size=120)


class _Event:
    """An event no comparison may touch (ids are unique, so tuple order never reaches it)."""

    def __lt__(self, other: object) -> bool:
        raise AssertionError("an event was compared")


@given(_ops)
def test_heap_operations_match_heapq(ops: list[tuple[str, float, int]]) -> None:
    """Any run of pushes, pops and replaces leaves the same list, item for item, and returns
    the same items as heapq does on a twin list."""
    ours: list[Any] = []
    theirs: list[Any] = []
    for eid, (op, t, priority) in enumerate(ops):
        key = (t, priority, eid, _Event())
        if op == "push" or not ours:
            _heappush(ours, key)
            heapq.heappush(theirs, key)
        elif op == "pop":
            assert _heappop(ours) is heapq.heappop(theirs)
        else:
            assert _heapreplace(ours, key) is heapq.heapreplace(theirs, key)
        assert [k is j for k, j in zip(ours, theirs, strict=True)] == [True] * len(theirs)
    while theirs:
        assert _heappop(ours) is heapq.heappop(theirs)
    assert ours == []
