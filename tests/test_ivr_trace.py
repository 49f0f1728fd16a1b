"""``trace``: the path a call would take, with prompts, conditions and the outcome."""

from __future__ import annotations

from datetime import datetime

from ivr.channel import digits_script
from ivr.testing import KNOWN, MAIN
from ivr.trace import trace


def test_trace_orthodox_christmas_night() -> None:
    """Jan 7 03:00: orders is closed for the RU holiday, so 2,1 leads to voicemail."""
    lines = trace(MAIN, "+79161234567", ["2", "1"], datetime(2026, 1, 7, 3, 0), KNOWN)
    text = "\n".join(lines)
    assert lines[0].startswith("flow main") and "country=RU language=ru" in lines[0]
    assert "node main_menu (Menu)" in text
    assert "play welcome [ru] acd/ru/welcome" in text
    assert "open(orders) = False [closed: public holiday in RU (Christmas Day)]" in text
    assert "create callback task: queue=orders" in text
    assert lines[-1].startswith("result: voicemail")


def test_trace_shows_wait_estimate_decision() -> None:
    """A traced long wait shows the estimate and the callback offer it triggers."""
    lines = trace(MAIN, "+77012345678", digits_script("-,1,-"), datetime(2026, 3, 4, 12, 0),
                  KNOWN, wait_s={"tech": 300})
    text = "\n".join(lines)
    assert "if wait_over(tech, 240s) = True [ewt=300s]" in text
    assert "offer callback callback_offer [kk]" in text
    assert lines[-1].startswith("result: queued queue=tech language=kk country=KZ")


def test_trace_hostile_caller() -> None:
    """A hostile caller id is traced with center defaults and never crashes."""
    lines = trace(MAIN, 'evil"\n' * 200, [], datetime(2026, 3, 4, 12, 0), KNOWN)
    assert "country=other language=ru" in lines[0] and "\n" not in lines[0]


def test_digits_script_parsing() -> None:
    """'2,-,,1' gives 2, no input, no input, 1."""
    assert digits_script("2,-,,1") == ["2", None, None, "1"]
    assert digits_script("") == []
