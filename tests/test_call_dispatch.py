"""The call machine's direct dispatch of the answered call's moves agrees with its table."""

from __future__ import annotations

import pytest

from acd.core import call as call_module
from acd.core.call import (
    TRANSITIONS,
    AgentGone,
    Answered,
    CallMachine,
    CallPolicy,
    Connect,
    Dial,
    DialFailed,
    Finished,
    Phase,
    Queued,
    ReportAnswered,
    ReportFailed,
    ReportHangup,
)
from acd.core.model import Offer

#: The (phase, event type) pairs CallMachine.handle dispatches without the table.
DIRECT = {
    (Phase.QUEUED, Offer): "_queued_offer",
    (Phase.RINGING, Answered): "_ringing_answered",
    (Phase.TALKING, AgentGone): "_talk_ended",
    (Phase.NEW, Queued): "_new_queued",
}


@pytest.mark.parametrize(("pair", "name"), list(DIRECT.items()))
def test_direct_moves_are_the_tables_own(pair: tuple[Phase, type], name: str) -> None:
    """Each move handle() takes without the table is the handler the table lists for it."""
    assert TRANSITIONS[pair] is getattr(call_module, name)


def test_an_answered_call_runs_through_the_direct_moves() -> None:
    """Queued, offered, answered and ended, a call gives the table's actions in order."""
    m = CallMachine("c1", "sales", "en", "GB", 0, "+441", None, 60.0,
                    CallPolicy(hold_while_ringing=True))
    assert m.handle(Queued()) == []
    assert m.phase is Phase.QUEUED
    dial = m.handle(Offer("c1", "a1", "SIP/a1", 14.5))
    assert dial[-1] == Dial("a1", "SIP/a1", 15) and m.phase is Phase.RINGING
    answered = m.handle(Answered("a1"))
    assert answered[0] == ReportAnswered("a1") and answered[-1] == Connect("a1")
    assert m.phase is Phase.TALKING
    ended = m.handle(AgentGone())
    assert isinstance(ended[0], ReportHangup) and ended[-1] == Finished("answered")
    assert m.phase is Phase.ENDED


def test_a_move_outside_the_direct_ones_still_uses_the_table() -> None:
    """A failed dial while ringing goes through the table: reported, and the call waits."""
    m = CallMachine("c1", "sales", "en", "GB", 0, None, None, 60.0, CallPolicy())
    m.handle(Queued())
    m.handle(Offer("c1", "a1", "SIP/a1", 10.0))
    assert (Phase.RINGING, DialFailed) not in DIRECT
    assert m.handle(DialFailed("a1", "busy")) == [ReportFailed("a1", "busy")]
    assert m.phase is Phase.QUEUED
