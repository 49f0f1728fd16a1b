"""The FastAGI post-call survey: after the agent hangs up, the caller rates the call 1 to 5.

When the agent ends a talk (Dial's ``g`` brings the caller to ``talked``), the ``ended``
script sets ``ACD_SURVEY=1`` for a call the survey is offered to, and the dialplan goes to
``[acd-survey]``: ``AGI(agi://.../survey,<call id>)`` runs the survey flow
(``config/ivr/survey.yaml``) in the call's language and stores the digit the caller chose as
the call's ``survey_score``. Only calls the engine offered a survey to are taken, once each,
so a dialplan (or anyone reaching the port) cannot write scores on other calls.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from acd.asterisk.agi.channel import AgiChannel, Deadlines
from acd.asterisk.agi.server import AgiSession
from acd.runtime.ivrsetup import IvrSetup
from acd.runtime.records import CallRecords
from acd.runtime.survey import survey_score
from ivr.channel import run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

#: The channel variable that sends the caller to the survey.
SURVEY = "ACD_SURVEY"
#: Offers kept waiting for their survey script at most (the oldest go first).
_MAX_OFFERS = 10_000


class _CallPath(Protocol):
    """What the survey needs of the call path (:class:`acd.asterisk.agi.route.CallPath`)."""

    setup: IvrSetup
    records: CallRecords | None


class PostCallSurvey:
    """Offers the survey when an agent ends a talk, and runs it (the ``survey`` script)."""

    def __init__(self, path: _CallPath, deadlines: Deadlines, voicemail_dir: str,
                 ewt: Callable[[str, str], float]) -> None:
        self.path = path
        self.deadlines = deadlines
        self.voicemail_dir = voicemail_dir
        self.ewt = ewt
        #: The survey flow's name; None: no survey.
        self.flow: str | None = None
        #: call id -> language, for calls offered a survey and not yet surveyed.
        self.offered: OrderedDict[str, str] = OrderedDict()
        self.answered = 0

    def offer(self, call_id: str, language: str) -> bool:
        """Whether the caller of ``call_id`` (whose talk just ended) goes to the survey."""
        if self.flow is None or self.flow not in self.path.setup.flows \
                or self.path.records is None:
            return False
        if len(self.offered) >= _MAX_OFFERS:
            self.offered.popitem(last=False)
        self.offered[call_id] = language
        return True

    async def handle(self, session: AgiSession, call_id: str) -> None:
        """Run the survey flow for an offered call and store the score the caller gave."""
        language = self.offered.pop(call_id, None)
        flow = self.path.setup.flows.get(self.flow or "")
        if language is None or flow is None:
            log.warning("Survey for %r refused: no survey was offered to it.", call_id)
            return
        channel = AgiChannel(session, self.path.setup, call_id, self.ewt, self.deadlines,
                             self.voicemail_dir)
        ctx = CallContext(session.env.callerid, time.time(), language=language)
        outcome = await run_flow(flow, ctx, channel)
        score = survey_score(outcome)
        if score is None:
            log.info("Survey for %s: no answer (%s).", call_id, outcome.status)
            return
        records = self.path.records
        if records is not None and records.set_survey_score(call_id, score):
            self.answered += 1
