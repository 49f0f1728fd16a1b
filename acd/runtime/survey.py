"""The post-call survey's answer, as both telephony shells read it from the survey flow.

The survey flow (``config/ivr/survey.yaml``) sets the flow variable ``survey_score`` to the
digit the caller chose; anything but 1 to 5 (no answer, a hang-up) is no score.
"""

from __future__ import annotations

from ivr.actions import Outcome

#: The flow variable holding the caller's answer.
SCORE_VARIABLE = "survey_score"


def survey_score(outcome: Outcome) -> int | None:
    """The score 1..5 the caller gave in a survey flow's run, or None."""
    raw = outcome.variables.get(SCORE_VARIABLE, "")
    return int(raw) if raw in ("1", "2", "3", "4", "5") else None
