"""The FastAGI ``callback`` script: a customer called back through AMI runs the callback flow.

``AGI(agi://127.0.0.1:4573/callback,<task id>)`` in ``[acd-callback-out]`` runs on the
customer's answered channel (see :mod:`acd.asterisk.ami`). The task id must be one the dialler
is waiting for (:class:`~acd.callbacks.dialler.AttemptBoard`); anything else sets
``ACD_RESULT=hangup`` and the dialplan hangs up. The customer hears the ``callback`` flow in
the task's language; on "1" the call is queued like a ``route`` call, with the task's priority
raised by the flow, and the same hold, offer and dial re-entry scripts take it from there.
"""

from __future__ import annotations

import logging
import re
import time
from itertools import count

from acd.asterisk.agi.channel import CALL_ID, RESULT, AgiChannel
from acd.asterisk.agi.commands import set_variable
from acd.asterisk.agi.route import AgiCall, CallPath
from acd.asterisk.agi.server import AgiSession
from acd.callbacks.dialler import AttemptBoard, AttemptResult
from ivr.actions import Outcome as IvrOutcome
from ivr.channel import run_flow
from ivr.engine import CallContext

log = logging.getLogger(__name__)

_TASK_ID_RE = re.compile(r"[0-9]{1,12}")
_UNIQUEID_RE = re.compile(r"[0-9.]{1,40}")


class CallbackScript:
    """Runs answered callback customers for one :class:`CallPath` (its ``callback`` script)."""

    def __init__(self, path: CallPath, flow: str = "callback") -> None:
        self.path = path
        self.flow = flow
        #: Attempts the AMI dialler waits for; it registers them before each Originate.
        self.board = AttemptBoard()
        self.refused = 0
        self._ids = count(1)

    async def handle(self, session: AgiSession) -> None:
        """Run the callback flow for the task in the first argument, then queue or hang up."""
        args = session.env.args
        raw = args[0] if args else ""
        claimed = self.board.claim(int(raw)) if _TASK_ID_RE.fullmatch(raw) else None
        flow = self.path.setup.flows.get(self.flow)
        if claimed is None or flow is None or self.path.draining:
            self.refused += 1
            log.warning("callback script refused (task %r not awaited, or no flow)", raw[:16])
            await self._set(session, RESULT, "hangup")
            return
        task = claimed.task
        call_id = self._call_id(session.env.uniqueid, claimed.id, claimed.attempts)
        result = AttemptResult.DECLINED
        try:
            channel = AgiChannel(session, self.path.setup, call_id, self.path.service.ewt_new,
                                 self.path.settings.deadlines, self.path.settings.voicemail_dir)
            ctx = CallContext(task.number, time.time(), country=task.country,
                              language=task.language, variables={"queue": task.queue})
            outcome = await run_flow(flow, ctx, channel)
            if (outcome.status in ("queued", "hop_limit") and outcome.queue is not None
                    and not session.hung_up):
                call = self._queue(call_id, outcome, claimed.task.number,
                                   task.priority + outcome.priority, task.customer_id)
                if call is not None:
                    result = AttemptResult.QUEUED
                    self.board.report(claimed.id, result)
                    await self.path.start(session, call, [(CALL_ID, call_id)])
        finally:
            self.board.report(claimed.id, result)

    def _call_id(self, uniqueid: str, task_id: int, attempt: int) -> str:
        router = self.path.service.router
        if (_UNIQUEID_RE.fullmatch(uniqueid) and uniqueid not in self.path.calls
                and router.call_state(uniqueid) is None):
            return uniqueid
        return f"cb-{task_id}-{attempt}-{next(self._ids)}"

    def _queue(self, call_id: str, outcome: IvrOutcome, number: str, priority: int,
               customer_id: str | None) -> AgiCall | None:
        """Give the call to the router as the ``route`` script does; None if refused."""
        assert outcome.queue is not None
        return self.path.admit(call_id, outcome.queue, outcome.language, outcome.country,
                               priority, number, customer_id, what="callback call")

    async def _set(self, session: AgiSession, name: str, value: str) -> None:
        await session.command(set_variable(name, value),
                              timeout=self.path.settings.deadlines.command_s)
