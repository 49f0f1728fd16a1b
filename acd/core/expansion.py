"""A call's time in its queue: entering, waiting, expansion steps and overflow, and the two
ways out of waiting, an offer to an agent and the end of the call in the router.

Functions over the :class:`~acd.core.floor.Floor`; the router calls them from its entry points
and timers.
"""

from __future__ import annotations

from typing import Final

from acd.core.agent_states import OFFER, set_state
from acd.core.floor import (
    CALL_TIMER,
    MAX_QUEUE_MOVES,
    RING_TIMER,
    AgentRt,
    CallRt,
    Floor,
    QueueRt,
    forget,
)
from acd.core.model import (
    AgentState,
    CallEnded,
    CallMoved,
    CallOffered,
    CallQueued,
    CallState,
    Offer,
    OfferCallback,
    Outcome,
    Overflow,
    StepApplied,
)
from acd.core.selection import agent_for, bucket_in, bucket_out, ewt_for

_OUT_TARGETS: Final = frozenset({"voicemail", "callback"})


def enter_queue(f: Floor, now: float, call: CallRt, q: QueueRt,
                entered: float | None = None) -> None:
    """The call enters ``q`` (refused into overflow when the queue is full) and waits."""
    call.priority += q.priority - call.q.priority
    call.q = q
    if len(q.line) >= q.max_length:
        overflow(f, now, call, q.overflow, "queue_full", enqueued=False)
        return
    call.entered = now if entered is None else entered
    call.reset_rules()
    q.calls[call.id] = call
    if f.progress:
        f.out.append(CallQueued(call.id, q.name, call.language, call.country, now))
    wait(f, now, call)


def wait(f: Floor, now: float, call: CallRt) -> None:
    """Put a queued call into its buckets, arm its timer, and try to route it."""
    call.state = CallState.QUEUED
    call.version += 1
    q = call.q
    if now >= call.entered + q.max_wait_s:
        overflow(f, now, call, q.overflow, "max_wait")
        return
    # Steps whose time has passed (e.g. while the call was ringing) apply at once.
    step_after = q.step_after
    ask = False
    while call.step < len(step_after) and call.entered + step_after[call.step] <= now:
        ask = ask or q.expansion[call.step].offer_callback
        if not apply_step_rules(f, now, call):
            return
    # Route first: a call that finds an agent at once never touches the buckets.
    match_call(f, now, call)
    if call.state is CallState.QUEUED:
        bucket_in(f, call, call.langs())
        arm(f, call)
        if ask:
            offer_callback(f, now, call)


def arm(f: Floor, call: CallRt) -> None:
    """Arm the queued call's one timer: its next expansion step or its maximum wait."""
    q = call.q
    when = call.entered + q.max_wait_s
    if call.step < len(q.step_after):
        when = min(when, call.entered + q.step_after[call.step])
    f.timer(when, CALL_TIMER, call)


def call_timer(f: Floor, now: float, call: CallRt) -> None:
    """A queued call's timer: its maximum wait, else its next expansion step."""
    if call.state is not CallState.QUEUED:
        return
    q = call.q
    if now >= call.entered + q.max_wait_s:
        overflow(f, now, call, q.overflow, "max_wait")
        return
    had_fallback = call.accept_fallback
    ask = q.expansion[call.step].offer_callback
    if not apply_step_rules(f, now, call):
        return
    if call.accept_fallback and not had_fallback and call.fallbacks:
        bucket_in(f, call, call.fallbacks)
    match_call(f, now, call)
    if call.state is CallState.QUEUED:
        arm(f, call)
        if ask:
            offer_callback(f, now, call)


def apply_step_rules(f: Floor, now: float, call: CallRt) -> bool:
    """Apply the call's next step; False when the step took the call out of the queue."""
    q = call.q
    step = q.expansion[call.step]
    index = call.step
    call.step += 1
    if step.min_level is not None:
        call.min_level = min(call.min_level, step.min_level)
    if step.add_sites:
        call.all_sites = True
    if step.accept_fallback_languages:
        call.accept_fallback = True
    if step.include_newcomers:
        call.newcomers_ok = True
    if f.progress:
        f.out.append(StepApplied(call.id, q.name, index, now))
    if step.overflow:
        overflow(f, now, call, step.overflow, f"step_{index}")
        return False
    return True


def offer_callback(f: Floor, now: float, call: CallRt) -> None:
    """Ask a still-waiting caller whether they want a callback, with their wait estimate.

    Only after the step's routing ran: a call that a widened rule just offered to a ready
    agent is never asked (the caller would be offered a callback with an agent free).
    """
    f.out.append(OfferCallback(call.id, ewt_for(f, now, call)))


def overflow(f: Floor, now: float, call: CallRt, target: str, reason: str,
             enqueued: bool = True) -> None:
    """Move a queued call on to ``target``: another queue, else out (voicemail, callback)."""
    if call.state is not CallState.QUEUED:
        return
    if enqueued:
        bucket_out(call)
        forget(call.q.calls, call.id)
    nxt = f.queues.get(target)
    if nxt is not None and target not in _OUT_TARGETS and call.moves < MAX_QUEUE_MOVES \
            and nxt is not call.q:
        call.moves += 1
        f.out.append(CallMoved(call.id, call.q.name, nxt.name, now))
        enter_queue(f, now, call, nxt)
        return
    out_target = target if target in _OUT_TARGETS else "voicemail"
    f.out.append(Overflow(call.id, out_target, reason))
    end(f, now, call, Outcome.OVERFLOWED, enqueued=False)


def match_call(f: Floor, now: float, call: CallRt) -> None:
    """Offer a waiting call to the best ready agent, if there is one."""
    agent = agent_for(f, now, call)
    if agent is not None:
        offer(f, now, call, agent)


def offer(f: Floor, now: float, call: CallRt, agent: AgentRt) -> None:
    """Ring ``agent`` for ``call`` until the queue's ring timeout."""
    bucket_out(call)
    call.state = CallState.RINGING
    call.agent = agent
    call.version += 1
    agent.call = call
    q = call.q
    q.rr_last = agent.index
    set_state(f, now, agent, OFFER, AgentState.RINGING, None)
    if f.progress:
        f.out.append(CallOffered(call.id, agent.profile.id, now))
    f.out.append(Offer(call.id, agent.profile.id, agent.endpoint, q.ring_timeout_s))
    f.timer(now + q.ring_timeout_s, RING_TIMER, call)


def end(f: Floor, now: float, call: CallRt, outcome: Outcome, enqueued: bool = True,
        wrap_s: float = 0.0) -> None:
    """The call leaves the router; an answered one teaches its queue's handle time
    (talk plus ``wrap_s``, this call's wrap-up) for wait estimates."""
    if enqueued:
        bucket_out(call)
        forget(call.q.calls, call.id)
    del f.calls[call.id]
    agent = call.agent
    if outcome is Outcome.ANSWERED and agent is not None:
        waited = call.answered_at - call.arrived
        talk = now - call.answered_at
        site: str | None = agent.profile.site
        agent_id: str | None = agent.profile.id
        q = call.q
        q.aht_s += 0.02 * (talk + wrap_s - q.aht_s)
    else:
        waited, talk, site, agent_id = now - call.arrived, 0.0, None, None
    call.state = CallState.ENDED
    call.version += 1
    f.out.append(CallEnded(call.id, outcome, call.q.name, call.language, call.country,
                           call.arrived, waited, agent_id, site, talk, now))
