"""Branch conditions of a flow and the call state they are evaluated against.

Conditions never do I/O: a branch that needs an estimated wait asks the driver first (the engine
emits :class:`ivr.actions.EstimateWait`) and the answer is cached in :class:`CallState`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ivr.hours import HoursCalendar

#: A queue reference that means "the queue currently set on the call".
CURRENT_QUEUE = "$queue"


@dataclass(slots=True)
class CallState:
    """Mutable per-call state of a flow run: variables, clock, cached wait estimates."""

    at: float
    calendar: HoursCalendar
    default_queue: str
    vars: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    ewt: dict[tuple[str, str], float] = field(default_factory=dict)

    def queue_of(self, ref: str) -> str:
        """Resolve a queue reference (a name or ``$queue``) for this call."""
        if ref == CURRENT_QUEUE:
            return self.vars.get("queue") or self.default_queue
        return ref


class Condition:
    """A yes/no question about the call; ``explain`` says what was looked at, for traces."""

    __slots__ = ()

    def test(self, st: CallState) -> bool:
        """True when the condition holds for the call."""
        raise NotImplementedError

    def explain(self, st: CallState) -> str:
        """One line naming the condition, the values it looked at and the answer."""
        raise NotImplementedError

    def wait_queues(self) -> tuple[str, ...]:
        """Queue references whose estimated wait must be known before :meth:`test`."""
        return ()


@dataclass(frozen=True, slots=True)
class Open(Condition):
    """The queue is inside its business hours and not closed for a public holiday."""

    queue: str

    def test(self, st: CallState) -> bool:
        q = self.queue
        if q == CURRENT_QUEUE:
            q = st.vars.get("queue") or st.default_queue
        return st.calendar.state(q, st.at, st.vars["country"]).open

    def explain(self, st: CallState) -> str:
        q = st.queue_of(self.queue)
        s = st.calendar.state(q, st.at, st.vars["country"])
        return f"open({q}) = {s.open} [{s.reason}]"


@dataclass(frozen=True, slots=True)
class VarIn(Condition):
    """A call variable (country, language, customer_tier, ...) has one of the listed values."""

    name: str
    values: frozenset[str]

    def test(self, st: CallState) -> bool:
        return st.vars.get(self.name, "") in self.values

    def explain(self, st: CallState) -> str:
        v = st.vars.get(self.name, "")
        return f"{self.name} in {sorted(self.values)} = {v in self.values} [{self.name}={v!r}]"


@dataclass(frozen=True, slots=True)
class WaitOver(Condition):
    """The router's estimated wait for the queue (in the call's language) exceeds a threshold."""

    queue: str
    seconds: float

    def test(self, st: CallState) -> bool:
        q = st.queue_of(self.queue)
        return st.ewt.get((q, st.vars["language"]), 0.0) > self.seconds

    def explain(self, st: CallState) -> str:
        q = st.queue_of(self.queue)
        w = st.ewt.get((q, st.vars["language"]), 0.0)
        return f"wait_over({q}, {self.seconds:g}s) = {w > self.seconds} [ewt={w:.0f}s]"

    def wait_queues(self) -> tuple[str, ...]:
        return (self.queue,)


@dataclass(frozen=True, slots=True)
class Combine(Condition):
    """``all`` / ``any`` of a list of conditions, or ``not`` of one."""

    op: str
    parts: tuple[Condition, ...]

    def test(self, st: CallState) -> bool:
        if self.op == "all":
            return all(p.test(st) for p in self.parts)
        if self.op == "any":
            return any(p.test(st) for p in self.parts)
        return not self.parts[0].test(st)

    def explain(self, st: CallState) -> str:
        inner = "; ".join(p.explain(st) for p in self.parts)
        return f"{self.op}({inner}) = {self.test(st)}"

    def wait_queues(self) -> tuple[str, ...]:
        return tuple(q for p in self.parts for q in p.wait_queues())


#: Condition keys that test a call variable, with the variable they read.
VAR_CONDITIONS: dict[str, str] = {
    "country": "country",
    "language": "language",
    "tier": "customer_tier",
    "customer_found": "customer_found",
    "duplicate_customer": "duplicate_customer",
    "complaint": "open_complaint",
}

