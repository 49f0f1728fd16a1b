"""Trace the path one call would take through a flow, for ``acd ivr trace``.

Lookups are answered from the arguments (no card, no order status, zero wait by default), so a
trace needs no database, router or telephony.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ivr import actions as a
from ivr.engine import CallContext, FlowRun
from ivr.flow import Flow
from ivr.known import KnownNames
from ivr.loader import load_flow

#: Actions performed before a trace gives up (a checked flow ends far sooner).
MAX_TRACE_ACTIONS = 10_000


def trace(flow: Flow | str | Path, caller: str, digits: Sequence[str | None], at: datetime,
          known: KnownNames, *, cards: Sequence[a.CustomerCard] = (),
          orders: Mapping[str, str] | None = None, wait_s: Mapping[str, float] | None = None,
          recording: str | None = "trace-recording") -> list[str]:
    """Lines describing the call's path: nodes, prompts, inputs, conditions and the outcome.

    ``digits`` are the caller's answers in order (None = no input); a naive ``at`` is read in
    the time zone of the first site in ``known``.
    """
    if not isinstance(flow, Flow):
        flow = load_flow(flow, known)
    if at.tzinfo is None:
        site = next(iter(known.sites.values()))
        at = at.replace(tzinfo=ZoneInfo(site.timezone))
    lines: list[str] = []
    run = FlowRun(flow, CallContext.at_time(caller, at), trace=lines.append)
    lines.insert(0, f"flow {flow.name} ({flow.file}) caller={caller[:40]!r} at={at.isoformat()}"
                    f" -> country={run.caller.country} language={run.state.vars['language']}")
    script = list(digits)
    action = run.start()
    for _ in range(MAX_TRACE_ACTIONS):
        if run.done:
            break
        result: object = None
        match action:
            case a.Play(prompt, language, sound):
                lines.append(f"  play {prompt} [{language}] {sound}")
            case a.Collect(prompt, language, sound, max_digits, timeout_s, _):
                result = script.pop(0) if script else None
                lines.append(f"  collect {prompt} [{language}] max_digits={max_digits}"
                             f" timeout={timeout_s:g}s -> {result if result else 'no input'}")
            case a.OfferCallback(prompt, language, _, queue, ewt, _, accept):
                result = script.pop(0) if script else None
                lines.append(f"  offer callback {prompt} [{language}] queue={queue}"
                             f" ewt={ewt:.0f}s press {accept} -> {result or 'no input'}")
            case a.LookupCustomer(number):
                result = [c for c in cards if c.number == number] or list(cards)
                lines.append(f"  lookup customer {number}: {len(result)} card(s)")
            case a.LookupOrder(order):
                result = (orders or {}).get(order)
                lines.append(f"  lookup order {order}: {result or 'unknown'}")
            case a.EstimateWait(queue, language):
                result = (wait_s or {}).get(queue, 0.0)
                lines.append(f"  estimate wait {queue} [{language}]: {result:.0f}s")
            case a.Voicemail(queue, language, max_seconds):
                result = recording
                lines.append(f"  voicemail {queue} [{language}] max={max_seconds:g}s"
                             f" -> {recording or 'no message'}")
            case a.CreateCallback(task):
                lines.append(f"  create callback task: queue={task.queue} language={task.language}"
                             f" reason={task.reason} number={task.number}")
        action = run.send(result)
    else:
        lines.append(f"trace stopped after {MAX_TRACE_ACTIONS} actions")
    if run.outcome is not None:
        o = run.outcome
        lines.append(f"result: {o.status} queue={o.queue} language={o.language} country={o.country}"
                     f" priority={o.priority} reason={o.reason} path={' > '.join(o.path)}")
    return lines
