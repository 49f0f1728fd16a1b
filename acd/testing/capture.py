"""Collect what a router service hands out during a block, as structlog's ``capture_logs`` does.

::

    with capture_outputs(service) as outputs:
        service.call_arrived(owner, "c1", "tech", "ru", "RU")
    assert [type(o).__name__ for o in outputs] == ["CallQueued", ...]

Every output (commands and events) the service fans out inside the ``with`` block is appended,
in order, to the list; outside the block nothing more is added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from acd.core.model import Output

__all__ = ["Observable", "capture_outputs"]


class Observable(Protocol):
    """What :func:`capture_outputs` needs: a ``RouterService``'s observer registration."""

    def observe(self, observer: Callable[[Output, float], None]) -> None:
        """Call ``observer(output, wall_time)`` for every output."""

    def unobserve(self, observer: Callable[[Output, float], None]) -> None:
        """Stop calling ``observer``."""


@contextmanager
def capture_outputs(service: Observable) -> Iterator[list[Output]]:
    """The outputs ``service`` hands to its observers while the block runs, in order."""
    outputs: list[Output] = []

    def keep(output: Output, _wall: float) -> None:
        outputs.append(output)

    service.observe(keep)
    try:
        yield outputs
    finally:
        service.unobserve(keep)
