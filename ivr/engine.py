"""The sans-I/O flow interpreter: ``FlowRun`` turns a flow and a call into a stream of actions.

``run.start()`` returns the first action; the driver performs it and calls ``run.send(result)``
for the next, until a terminal action (:class:`Queue`, :class:`Transfer`, :class:`Hangup`).
The same FlowRun drives asyncio channels (AGI, ARI), simulated callers and traces.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ivr import actions as a
from ivr import flow as f
from ivr.caller import CallerInfo, resolve_caller
from ivr.conditions import CallState

Walk = Generator[a.Action, Any, str | None]
_VAR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_E164_SHAPE = re.compile(r"\+[1-9][0-9]{5,14}")
_DIGITS = frozenset("0123456789")
#: Longest value accepted for a variable from outside (context variables, order status).
MAX_VALUE_CHARS = 64


@dataclass(slots=True)
class CallContext:
    """What is known when a call enters the IVR.

    ``at`` is the arrival time in epoch seconds (UTC). ``country``/``language`` may be given
    by a driver that already knows them (the simulator, an outbound callback); otherwise they
    come from the caller number.
    """

    caller: str
    at: float
    dialled: str | None = None
    country: str | None = None
    language: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def at_time(cls, caller: str, when: datetime, **kw: Any) -> CallContext:
        """Build a context from an aware datetime (naive datetimes are refused)."""
        if when.tzinfo is None:
            raise ValueError(f"call time must carry a time zone, got {when.isoformat()}")
        return cls(caller, when.timestamp(), **kw)


class FlowRun:
    """One call walking one flow; feed it results, it answers with the next action."""

    def __init__(
        self, flow: f.Flow, ctx: CallContext, *, trace: Callable[[str], None] | None = None
    ) -> None:
        self.flow = flow
        self.ctx = ctx
        self.trace = trace
        known = flow.known
        if ctx.country is not None:
            # Pre-resolved by the driver: skip number parsing (the simulator's hot path).
            country = ctx.country if ctx.country in known.countries else known.default_country
            lang = known.countries.get(country, known.default_language)
            number = ctx.caller if isinstance(ctx.caller, str) else ""
            self.caller = CallerInfo(number if _E164_SHAPE.fullmatch(number) else None,
                                     country, lang)
        else:
            self.caller = resolve_caller(ctx.caller, known)
        language = self.caller.language
        if ctx.language is not None and ctx.language in known.languages:
            language = ctx.language
        vs = {"language": language, "country": self.caller.country}
        if ctx.variables:
            for k, v in ctx.variables.items():
                if (isinstance(k, str) and _VAR_NAME.match(k) and isinstance(v, str)
                        and k not in vs):
                    vs[k] = v[:MAX_VALUE_CHARS]
            if vs.get("queue") not in known.queues:
                vs.pop("queue", None)
        self.state = CallState(ctx.at, flow.calendar, flow.default_queue, vs,
                               flow.default_priority, {})
        self.node: f.Node | None = None
        self.path: list[str] = []
        self.hops = 0
        self.outcome: a.Outcome | None = None
        self.callback: a.CallbackTask | None = None
        self.voicemail_left = False
        self._gen: Walk | None = None

    # --- driver interface -------------------------------------------------------------------

    def start(self) -> a.Action:
        """Begin the flow and return its first action."""
        if self._gen is not None:
            raise RuntimeError(f"flow run of {self.flow.name!r} already started")
        self._gen = self._walk()
        return next(self._gen)

    def send(self, result: object) -> a.Action:
        """Give the result of the last action; return the next one."""
        gen = self._gen
        if gen is None or self.outcome is not None:
            state = "not started" if gen is None else f"already ended: {self.outcome}"
            raise RuntimeError(f"flow run of {self.flow.name!r} {state}")
        return gen.send(result)

    @property
    def done(self) -> bool:
        """True once a terminal action has been returned or the caller hung up."""
        return self.outcome is not None

    def abandon(self) -> a.Outcome:
        """The caller hung up during the IVR: end the run with outcome ``abandoned``."""
        if self.outcome is None:
            self.outcome = self._outcome("abandoned", None, "caller hung up")
            if self._gen is not None:
                self._gen.close()
        return self.outcome

    # --- interpreter ------------------------------------------------------------------------

    def _walk(self) -> Walk:
        nodes = self.flow.nodes
        node = nodes[self.flow.start]
        limit = self.flow.hop_limit
        path = self.path
        trace = self.trace
        play_type = f.Play
        dispatch = _DISPATCH
        hops = 0
        while True:
            hops += 1
            self.hops = hops
            if hops > limit:
                yield self._hop_limit()
                return None
            self.node = node
            path.append(node.id)
            if trace is not None:
                trace(f"node {node.id} ({type(node).__name__})")
            kind = type(node)
            if kind is play_type:
                # The commonest node, inlined: a generator per prompt costs more than the rest.
                yield self.play(node.prompt)  # type: ignore[attr-defined]
                node = nodes[node.next]  # type: ignore[attr-defined]
                continue
            plain, handler = dispatch[kind]
            # Nodes that ask the driver nothing run as plain calls: no generator per hop.
            nxt = plain(self, node) if plain is not None else None
            if nxt is None and handler is not None:
                nxt = yield from handler(self, node)
            if nxt is None:
                return None
            node = nodes[nxt]

    def _outcome(self, status: a.OutcomeStatus, queue: str | None, reason: str = "",
                 transfer: str | None = None) -> a.Outcome:
        vs = self.state.vars
        return a.Outcome(status, queue, vs["language"], vs["country"], self.state.priority,
                         dict(vs), reason, transfer, self.callback, tuple(self.path))

    def _queue(self, queue: str, status: a.OutcomeStatus, reason: str) -> a.Queue:
        vs = self.state.vars
        self.outcome = self._outcome(status, queue, reason)
        if self.trace is not None:
            self.trace(f"  outcome {status}: queue={queue} language={vs['language']} "
                       f"country={vs['country']} priority={self.state.priority}")
        return a.queue_action(queue, vs["language"], vs["country"], self.state.priority,
                              self.outcome.variables)

    def _hop_limit(self) -> a.Queue:
        self.state.vars["ivr_outcome"] = "hop_limit"
        return self._queue(self.flow.default_queue, "hop_limit",
                           f"more than {self.flow.hop_limit} nodes visited")

    def _hangup(self, reason: str) -> a.Hangup:
        status: a.OutcomeStatus = "hangup"
        if self.voicemail_left:
            status = "voicemail"
        elif self.callback is not None:
            status = "callback"
        self.outcome = self._outcome(status, None, reason)
        if self.trace is not None:
            self.trace(f"  outcome {status}: hangup reason={reason}")
        return self.cached(a.Hangup, reason)

    def cached(self, kind: type[a.Action], *args: Any) -> Any:
        """A shared instance of an action built only from flow data (actions are immutable)."""
        key = (kind, *args)
        act = self.flow.action_cache.get(key)
        if act is None:
            act = self.flow.action_cache[key] = kind(*args)
        return act

    def play(self, prompt: str) -> a.Play:
        """The cached Play action for a prompt in the call's current language."""
        lang = self.state.vars["language"]
        key = ("play", prompt, lang)
        act = self.flow.action_cache.get(key)
        if act is None:
            ps = self.flow.prompts
            pl = lang if lang in ps.prompts[prompt].languages else self.flow.known.default_language
            act = self.flow.action_cache[key] = a.Play(prompt, pl, ps.sound_for(prompt, pl))
        return act  # type: ignore[return-value]

    def collect(self, prompt: str, max_digits: int, timeout_s: float,
                terminator: str = "#") -> a.Collect:
        """The cached Collect action for a prompt in the call's current language."""
        lang = self.state.vars["language"]
        key = ("collect", prompt, lang, max_digits, timeout_s, terminator)
        act = self.flow.action_cache.get(key)
        if act is None:
            p = self.play(prompt)
            act = self.flow.action_cache[key] = a.Collect(
                prompt, p.language, p.sound, max_digits, timeout_s, terminator)
        return act  # type: ignore[return-value]

    def card_variables(self, cards: object) -> None:
        """Set customer_* variables from lookup results, resolving duplicate cards."""
        if type(cards) is list and all(type(c) is a.CustomerCard for c in cards):
            good = cards
        elif isinstance(cards, list | tuple):
            good = [c for c in cards if isinstance(c, a.CustomerCard)]
        else:
            good = []
        card, duplicate = a.choose_card(good)
        vs = self.state.vars
        vs["customer_found"] = "true" if card is not None else "false"
        vs["duplicate_customer"] = "true" if duplicate else "false"
        vs["customer_tier"] = card.tier[:MAX_VALUE_CHARS] if card is not None else ""
        vs["open_complaint"] = "true" if card is not None and card.open_complaint else "false"
        if card is not None:
            vs["customer_id"] = card.customer_id[:MAX_VALUE_CHARS]
        if self.trace is not None:
            self.trace(f"  customer: {len(good)} card(s), chosen="
                       f"{card.customer_id if card else None}, duplicate={duplicate}")


def _digits(result: object, max_digits: int, terminator: str = "#") -> str | None:
    """Keep a DTMF result only if it is a bounded string of digits (anything else = no input)."""
    if not isinstance(result, str):
        return None
    d = result.rstrip(terminator) if terminator else result
    if not d or len(d) > max_digits or not _DIGITS.issuperset(d):
        return None
    return d


def _play(run: FlowRun, node: f.Play) -> Walk:
    yield run.play(node.prompt)
    return node.next


def _menu(run: FlowRun, node: f.Menu) -> Walk:
    act = run.collect(node.prompt, 1, node.timeout_s)
    for attempt in range(node.retries + 1):
        raw = yield act
        option = node.options.get(raw) if isinstance(raw, str) else None
        if option is not None:
            _apply(run, option.set)
            if run.trace is not None:
                run.trace(f"  menu {node.id}: pressed {raw} -> {option.next}")
            return option.next
        if run.trace is not None:
            run.trace(f"  menu {node.id}: {'no input' if raw is None else 'invalid input'}")
        if raw is not None and node.invalid_prompt and attempt < node.retries:
            yield run.play(node.invalid_prompt)
    return node.on_fail


def _collect(run: FlowRun, node: f.CollectDigits) -> Walk:
    act = run.collect(node.prompt, node.max_digits, node.timeout_s, node.terminator)
    for attempt in range(node.retries + 1):
        d = _digits((yield act), node.max_digits, node.terminator)
        if d is not None and len(d) >= node.min_digits:
            run.state.vars[node.into] = d
            if run.trace is not None:
                run.trace(f"  collect {node.id}: {node.into}={d}")
            return node.next
        if node.invalid_prompt and attempt < node.retries:
            yield run.play(node.invalid_prompt)
    return node.on_fail


def _language(run: FlowRun, node: f.ChooseLanguage) -> Walk:
    raw = yield run.collect(node.prompt, 1, node.timeout_s)
    lang = node.options.get(raw) if isinstance(raw, str) else None
    if lang is not None:
        run.state.vars["language"] = lang
    if run.trace is not None:
        run.trace(f"  language {node.id}: input={raw!r} -> language={run.state.vars['language']}")
    return node.next


def _branch(run: FlowRun, node: f.Branch) -> Walk:
    st = run.state
    for ref in node.wait_queues:
        key = (st.queue_of(ref), st.vars["language"])
        if key not in st.ewt:
            w = yield run.cached(a.EstimateWait, *key)
            st.ewt[key] = float(w) if isinstance(w, int | float) else 0.0
    return _decide(run, node)


def _branch_plain(run: FlowRun, node: f.Branch) -> str | None:
    """A branch whose conditions need no wait estimate decides without the driver."""
    return None if node.wait_queues else _decide(run, node)


def _decide(run: FlowRun, node: f.Branch) -> str:
    st = run.state
    for cond, target in node.cases:
        if run.trace is not None:
            run.trace(f"  if {cond.explain(st)}")
        if cond.test(st):
            return target
    return node.otherwise


def _lookup_customer(run: FlowRun, node: f.LookupCustomer) -> Walk:
    number = run.caller.number
    cards: object = []
    if number is not None and number.startswith("+"):
        cards = yield a.LookupCustomer(number)
    run.card_variables(cards)
    return node.next


def _lookup_order(run: FlowRun, node: f.LookupOrder) -> Walk:
    order = run.state.vars.get(node.source, "")
    status: object = None
    if order:
        status = yield a.LookupOrder(order)
    ok = isinstance(status, str) and status and _VAR_NAME.match(status)
    run.state.vars[node.into] = status if ok else "unknown"  # type: ignore[assignment]
    if run.trace is not None:
        run.trace(f"  order {order or '-'}: {node.into}={run.state.vars[node.into]}")
    return node.next


def _apply(run: FlowRun, values: Mapping[str, str]) -> None:
    vs = run.state.vars
    for k, v in values.items():
        vs[k] = v


def _set(run: FlowRun, node: f.SetVars) -> str:
    _apply(run, node.values)
    if node.priority is not None:
        run.state.priority = node.priority
    if node.priority_add is not None:
        run.state.priority += node.priority_add
    return node.next


def _goto(run: FlowRun, node: f.Goto) -> str:
    return node.next


def _to_queue(run: FlowRun, node: f.ToQueue) -> Walk:
    if node.priority is not None:
        run.state.priority = node.priority
    q = run.state.queue_of(node.queue)
    run.state.vars["queue"] = q
    yield run._queue(q, "queued", "flow")
    return None


def _task(run: FlowRun, queue: str, reason: str, recording: str | None) -> a.CallbackTask | None:
    if run.caller.number is None:
        return None
    vs = run.state.vars
    return a.CallbackTask(queue, vs["language"], vs["country"], run.caller.number,
                          run.state.priority, reason,  # type: ignore[arg-type]
                          recording, vs.get("customer_id"))


def _voicemail(run: FlowRun, node: f.Voicemail) -> Walk:
    q = run.state.queue_of(node.queue)
    if node.prompt:
        yield run.play(node.prompt)
    rec = yield a.Voicemail(q, run.state.vars["language"], node.max_seconds)
    recording = rec[:256] if isinstance(rec, str) and rec else None
    run.voicemail_left = recording is not None
    task = _task(run, q, "voicemail", recording)
    if task is not None:
        run.callback = task
        yield a.CreateCallback(task)
    if node.next is not None:
        return node.next
    yield run._hangup("voicemail")
    return None


def _callback_offer(run: FlowRun, node: f.CallbackOffer) -> Walk:
    st = run.state
    key = (st.queue_of(node.queue), st.vars["language"])
    if key not in st.ewt:
        w = yield run.cached(a.EstimateWait, *key)
        st.ewt[key] = float(w) if isinstance(w, int | float) else 0.0
    p = run.play(node.prompt)
    raw = yield a.OfferCallback(p.prompt, p.language, p.sound, key[0], st.ewt[key],
                                node.timeout_s, node.accept_digit)
    task = _task(run, key[0], "offer", None) if raw == node.accept_digit else None
    if run.trace is not None:
        run.trace(f"  callback offer {node.id}: input={raw!r} accepted={task is not None}")
    if task is None:
        return node.declined
    run.callback = task
    yield a.CreateCallback(task)
    return node.accepted


def _transfer(run: FlowRun, node: f.TransferOut) -> Walk:
    run.outcome = run._outcome("transferred", None, "flow", node.number)
    if run.trace is not None:
        run.trace(f"  outcome transferred: {node.number}")
    yield a.Transfer(node.number)
    return None


def _hangup(run: FlowRun, node: f.HangupNode) -> Walk:
    yield run._hangup(node.reason)
    return None


_HANDLERS: dict[type, Callable[[FlowRun, Any], Walk]] = {
    f.Play: _play, f.Menu: _menu, f.CollectDigits: _collect, f.ChooseLanguage: _language,
    f.Branch: _branch, f.LookupCustomer: _lookup_customer, f.LookupOrder: _lookup_order,
    f.ToQueue: _to_queue, f.Voicemail: _voicemail,
    f.CallbackOffer: _callback_offer, f.TransferOut: _transfer, f.HangupNode: _hangup,
}
_PLAIN: dict[type, Callable[[FlowRun, Any], str | None]] = {
    f.SetVars: _set, f.Goto: _goto, f.Branch: _branch_plain,
}
#: Node type -> (plain handler or None, generator handler or None); one lookup per hop.
_DISPATCH: dict[type, tuple[Callable[[FlowRun, Any], str | None] | None,
                            Callable[[FlowRun, Any], Walk] | None]] = {
    kind: (_PLAIN.get(kind), _HANDLERS.get(kind)) for kind in {*_PLAIN, *_HANDLERS}
}
