"""The router's runtime records: queues, calls and agents as it holds them, and the floor.

:class:`Floor` holds everything the router's parts share (the ready lists, the waiting calls'
buckets, the timers, the outputs of the request being handled); the selection, expansion and
agent-state modules are functions over it, and :class:`~acd.core.router.Router` is the façade.
Records are mutable and never leave the core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from acd.core.model import AgentProfile, AgentState, CallState, Output
from acd.core.policy import (
    AgentSelection,
    CallSelection,
    CenterPolicy,
    ExpansionStep,
    NewcomerPolicy,
    QueuePolicy,
)

if TYPE_CHECKING:
    # Compiled, a native 64-bit integer (heap positions); annotations only, never imported at
    # run time.
    from mypy_extensions import i64

# Timer kinds.
# A queued call has one live CALL_TIMER: its next expansion step or its maximum wait.
CALL_TIMER: Final = 0
RING_TIMER: Final = 1
WRAP_TIMER: Final = 2
AUTO_READY_TIMER: Final = 3
#: Overflow chains longer than this end in voicemail (a queue cycle in config cannot loop).
MAX_QUEUE_MOVES: Final = 4
#: Pseudo country for callers whose country is unknown: no home site, no country-restricted agent.
OTHER: Final = "other"

ReadyKey = tuple[str, str, str, bool]


class QueueRt:
    """A queue's runtime view of its policy, precomputed for the hot path."""

    __slots__ = ("aht_s", "all_sites", "calls", "expansion", "line", "longest_idle",
                 "lowest_level", "max_length", "max_wait_s", "min_level", "name",
                 "newcomers_ever", "newcomers_last_resort", "newcomers_ok", "overflow",
                 "priority", "ready", "ring_timeout_s", "rr_last", "selection", "site_affinity",
                 "skill", "sort_offset", "step_after", "threshold_s", "wrap_up_s")

    def __init__(self, name: str, q: QueuePolicy) -> None:
        # Flat copies on one slotted object: the hot path reads them without indirection.
        self.name: str = name
        self.skill: str = q.skill
        self.priority: int = q.priority
        self.wrap_up_s: float = q.wrap_up_s
        self.ring_timeout_s: float = q.ring_timeout_s
        self.max_length: int = q.max_length
        self.max_wait_s: float = q.max_wait_s
        self.overflow: str = q.overflow
        self.expansion: list[ExpansionStep] = list(q.expansion)
        #: When each expansion step applies, seconds after the call entered the queue.
        self.step_after: list[float] = [float(step.after_s) for step in q.expansion]
        # The routing rule's first step.
        self.min_level: int = q.min_level
        self.all_sites: bool = q.all_sites
        self.newcomers_ok: bool = q.newcomers is not NewcomerPolicy.exclude
        self.newcomers_last_resort: bool = q.newcomers is NewcomerPolicy.last_resort
        # The widest the rule ever gets (its first step and every expansion step): an agent
        # below ``lowest_level``, or a newcomer when ``newcomers_ever`` is False, can never
        # take this queue's calls, so the indexes leave it out (see :meth:`Floor.can_ever_take`).
        self.lowest_level: int = min([q.min_level] + [step.min_level for step in q.expansion
                                                      if step.min_level is not None])
        self.newcomers_ever: bool = self.newcomers_ok or any(
            step.include_newcomers for step in q.expansion)
        self.selection: AgentSelection = q.agent_selection
        self.longest_idle: bool = q.agent_selection is AgentSelection.longest_idle
        self.site_affinity: bool = bool(q.site_affinity)
        self.threshold_s: float = q.sl_threshold_s
        sl_aware = q.call_selection is CallSelection.sl_aware
        self.sort_offset: float = self.threshold_s if sl_aware else 0.0
        self.aht_s: float = q.aht_hint_s
        self.rr_last: int = -1
        #: Calls of this queue that are queued or ringing (talking calls have left).
        self.calls: dict[str, CallRt] = {}
        #: Queued calls as ``(-priority, arrived, seq)`` (``selection.place``), sorted:
        #: position = bisect, depth = len.
        self.line: list[tuple[int, float, int]] = []
        #: The floor's ready lines of this queue's skill, by language and site number
        #: (``ready_index`` of the skill; set by :class:`Floor`, None while no agent has it).
        self.ready: dict[str, list[list[ReadyLine] | None]] | None = None


def can_ever_take(p: AgentProfile, q: QueueRt) -> bool:
    """False when ``p`` may take none of ``q``'s calls at any step of its rule (level below the
    lowest the rule reaches, or a newcomer the queue never includes); True otherwise."""
    level = p.skills.get(q.skill)
    return level is not None and level >= q.lowest_level and (q.newcomers_ever
                                                               or not p.newcomer)


def forget(calls: dict[str, CallRt], call_id: str) -> None:
    """Drop ``call_id`` from ``calls`` if it is there (compiled, a test and a ``del`` cost
    about half of ``dict.pop`` with a default, which is a method call by name)."""
    if call_id in calls:
        del calls[call_id]  # noqa: RUF051 (see the docstring)


class Timed:
    """Something a timer can be armed for; a change of ``version`` disarms its timers."""

    __slots__ = ("version",)

    def __init__(self) -> None:
        self.version = 0


class Timer:
    """A timer of ``kind`` armed for ``obj`` at ``when``; ``seq`` (unique, growing) orders the
    timers due at the same time in the order they were armed."""

    __slots__ = ("kind", "obj", "seq", "version", "when")

    def __init__(self, when: float, seq: int, kind: int, obj: Timed) -> None:
        self.when = when
        self.seq = seq
        self.kind = kind
        self.obj = obj
        #: ``obj``'s version when armed: once it changes, the timer is disarmed.
        self.version = obj.version

    def armed(self) -> bool:
        """False once its object has changed since the timer was armed."""
        return self.obj.version == self.version


def _earlier(a: Timer, b: Timer) -> bool:
    return a.when < b.when or (a.when == b.when and a.seq < b.seq)


class TimerHeap:
    """The armed timers, a binary min-heap by ``(when, seq)``.

    Written out rather than :mod:`heapq` over tuples: heapq compares tuples item by item
    through Python's rich comparison (about 150 machine instructions a heap level), where
    compiled code compares the two floats directly; and peeking at the first timer is an
    attribute read, not the unpacking of a tuple. ``seq`` is unique, so the order in which
    timers come out is the same whatever the heap's shape.
    """

    __slots__ = ("_items", "_spare")

    def __init__(self) -> None:
        self._items: list[Timer] = []
        #: Spent timers, refilled by :meth:`arm` instead of allocating (about 26,000 timers
        #: over two reference days; nothing outside the heap holds one).
        self._spare: list[Timer] = []

    def arm(self, when: float, seq: int, kind: int, obj: Timed) -> None:
        """Add a timer of ``kind`` for ``obj`` at ``when`` (a spent one refilled, or a new one)."""
        spare = self._spare
        if spare:
            timer = spare.pop()
            timer.when = when
            timer.seq = seq
            timer.kind = kind
            timer.obj = obj
            timer.version = obj.version
        else:
            timer = Timer(when, seq, kind, obj)
        self.push(timer)

    def recycle(self, timer: Timer) -> None:
        """Keep ``timer``, popped and read, for :meth:`arm` to refill."""
        self._spare.append(timer)

    def first(self) -> Timer | None:
        """The earliest timer (armed or not), or None."""
        items = self._items
        return items[0] if items else None

    def push(self, timer: Timer) -> None:
        """Add ``timer``."""
        items = self._items
        items.append(timer)
        i: i64 = len(items) - 1
        while i > 0:
            parent = (i - 1) >> 1
            above = items[parent]
            if not _earlier(timer, above):
                break
            items[i] = above
            i = parent
        items[i] = timer

    def pop(self) -> Timer:
        """Remove and return the earliest timer (the heap must not be empty)."""
        items = self._items
        last = items.pop()
        if not items:
            return last
        first = items[0]
        n: i64 = len(items)
        i: i64 = 0
        child: i64 = 1
        while child < n:
            below = items[child]
            right = child + 1
            if right < n:
                other = items[right]
                if _earlier(other, below):
                    child, below = right, other
            if not _earlier(below, last):
                break
            items[i] = below
            i = child
            child = 2 * i + 1
        items[i] = last
        return first


class ReadyLine:
    """The ready agents of one (skill, language, site, newcomer) key, in the order they became
    ready: a doubly linked list of the agents' slots (:class:`ReadySlot`).

    Written out rather than a dict by agent id: an agent goes in and out of each of its lines
    on every call, and compiled, linking a slot is a few pointer writes where a dict insert or
    delete hashes, probes and now and then rebuilds the table (about 250 machine instructions
    each). The order is the same: a slot goes in at the back and leaves from where it is.
    """

    __slots__ = ("head", "tail")

    def __init__(self) -> None:
        self.head: ReadySlot | None = None
        self.tail: ReadySlot | None = None

    def agents(self) -> list[AgentRt]:
        """The agents in the line, front (longest in it) first."""
        out = []
        slot = self.head
        while slot is not None:
            out.append(slot.agent)
            slot = slot.next
        return out


class ReadySlot:
    """An agent's place in one :class:`ReadyLine`: linked in while the agent is ready."""

    __slots__ = ("agent", "level", "line", "next", "prev")

    def __init__(self, agent: AgentRt, line: ReadyLine, level: int) -> None:
        self.agent = agent
        self.line = line
        #: The agent's level in the line's skill (read on every look, without a dict).
        self.level = level
        self.prev: ReadySlot | None = None
        self.next: ReadySlot | None = None

    def link(self) -> None:
        """Put the slot at the back of its line (it must not be in it)."""
        line = self.line
        tail = line.tail
        self.prev = tail
        if tail is None:
            line.head = self
        else:
            tail.next = self
        line.tail = self

    def unlink(self) -> None:
        """Take the slot out of its line (it must be in it)."""
        line = self.line
        prev, nxt = self.prev, self.next
        if prev is None:
            line.head = nxt
        else:
            prev.next = nxt
        if nxt is None:
            line.tail = prev
        else:
            nxt.prev = prev
        self.prev = self.next = None


class CallRt(Timed):
    """A call in the router (mutable; never leaves the core)."""

    __slots__ = ("accept_fallback", "agent", "all_sites", "answered_at", "arrived", "buckets",
                 "country", "customer_id", "entered", "fallbacks", "home_at", "home_site", "id",
                 "language", "min_level", "moves", "newcomers_ok", "priority", "q", "seq",
                 "state", "step")

    def __init__(self, call_id: str, q: QueueRt, language: str, country: str,
                 home_site: str | None, home_at: int, fallbacks: tuple[str, ...], priority: int,
                 now: float, seq: int, customer_id: str | None) -> None:
        self.id = call_id
        self.q = q
        self.language = language
        self.country = country
        self.home_site = home_site
        #: The home site's number (:attr:`Floor.site_at`), -1 without a home site.
        self.home_at = home_at
        self.fallbacks = fallbacks
        self.priority = priority
        self.arrived = now
        self.entered = now
        self.seq = seq
        self.customer_id = customer_id
        self.state = CallState.QUEUED
        self.agent: AgentRt | None = None
        self.answered_at = 0.0
        self.version = 0
        self.moves = 0
        self.buckets: list[list[tuple[int, float, int, CallRt]]] = []
        self.reset_rules()

    def reset_rules(self) -> None:
        """Start the current queue's routing rule from its first step."""
        q = self.q
        self.min_level = q.min_level
        self.all_sites = q.all_sites or self.home_site is None
        self.accept_fallback = False
        self.newcomers_ok = q.newcomers_ok
        self.step = 0

    def langs(self) -> tuple[str, ...]:
        """The languages the call accepts now: its own, and its fallbacks once a step allowed
        them."""
        return (self.language, *self.fallbacks) if self.accept_fallback else (self.language,)


class AgentRt(Timed):
    """An agent's runtime state."""

    __slots__ = ("buckets", "busy_s", "busy_since", "call", "endpoint", "free_at", "idle_since",
                 "index", "login_at", "pending", "pending_reason", "profile", "ready_seq",
                 "ready_slots", "reason", "since", "skills", "state")

    def __init__(self, profile: AgentProfile, index: int) -> None:
        self.profile = profile
        #: The profile's skill levels as a dict: compiled, reading a ``Mapping`` is a method
        #: call by name, reading a dict a primitive.
        self.skills: dict[str, int] = dict(profile.skills)
        self.index = index
        #: The agent's places in the floor's ready lines, linked in while it is ready (set by
        #: :class:`Floor`): becoming ready or leaving it touches them without a key each time.
        self.ready_slots: list[ReadySlot] = []
        #: The floor's buckets this agent looks at when freed (set by :class:`Floor`).
        self.buckets: list[list[tuple[int, float, int, CallRt]]] = []
        self.state = AgentState.LOGGED_OUT
        self.reason: str | None = None
        self.since = 0.0
        self.idle_since = 0.0
        #: The floor's count of agents become ready when this one last did
        #: (:attr:`Floor.readied`): of two agents ready since the same moment, the one that
        #: became ready first has been idle longest.
        self.ready_seq = 0
        self.call: CallRt | None = None
        self.endpoint = profile.endpoint
        self.pending: AgentState | None = None
        self.pending_reason: str | None = None
        self.login_at = 0.0
        self.busy_s = 0.0
        self.busy_since: float | None = None
        #: When the agent's wrap-up ends (set as it starts; for wait estimates).
        self.free_at = 0.0
        self.version = 0


class Floor:
    """The router's shared runtime state: queues, agents, calls, ready lists, buckets, timers."""

    __slots__ = ("affinity_tiers", "agents", "all_tiers", "buckets", "calls", "home_tiers",
                 "out", "pools", "progress", "queues", "queues_by_skill", "readied", "ready",
                 "ready_index", "seq", "site_at", "sites", "skilled", "staffed", "timers")

    def __init__(self, policy: CenterPolicy, agents: Sequence[AgentProfile],
                 progress: bool = True) -> None:
        #: Report each call's progress (CallQueued, StepApplied, CallOffered, CallAnswered).
        self.progress = progress
        self.queues = {name: QueueRt(name, q) for name, q in policy.queues.items()}
        self.queues_by_skill: dict[str, list[QueueRt]] = {}
        for q in self.queues.values():
            self.queues_by_skill.setdefault(q.skill, []).append(q)
        self.agents: dict[str, AgentRt] = {}
        #: How many times an agent has become ready (:attr:`AgentRt.ready_seq`).
        self.readied = 0
        # Ready agents by (skill, language, site, newcomer), each line in the order they became
        # ready: a call looks only where eligible agents can be, longest idle first.
        # Every key any agent has gets its line up front (empty until someone is ready), and
        # each agent holds its own slots in them.
        self.ready: dict[ReadyKey, ReadyLine] = {}
        for i, p in enumerate(agents):
            # Ready lists only for the skills with a queue whose calls the agent can ever take:
            # a call never has to step over an agent who could not take it at any step.
            keys = [(s, lang, p.site, p.newcomer) for s in p.skills
                    if any(can_ever_take(p, q) for q in self.queues_by_skill.get(s, ()))
                    for lang in p.languages]
            # Unique keys: a ready agent is in each of its lines once.
            keys = list(dict.fromkeys(keys))
            a = self.agents[p.id] = AgentRt(p, i)
            a.ready_slots = [ReadySlot(a, self.ready.setdefault(key, ReadyLine()),
                                       p.skills[key[0]])
                             for key in keys]
        #: Agents on the roster with each skill, in roster order (for wait estimates).
        self.skilled: dict[str, list[AgentRt]] = {s: [] for s in policy.skills}
        for a in self.agents.values():
            for s in a.profile.skills:
                self.skilled.setdefault(s, []).append(a)
        #: Wait-estimate pools by (queue, language, country, steps applied), built on first use.
        self.pools: dict[tuple[str, str, str, int], list[tuple[AgentRt, int]]] = {}
        self.sites = tuple(policy.sites)
        #: Site numbers: the policy's sites in order, then any other site an agent or a
        #: country's home names. Calls and the ready index read sites by number.
        self.site_at: dict[str, int] = {site: i for i, site in enumerate(self.sites)}
        for site in [p.site for p in agents] + [c.home_site for c in policy.countries.values()]:
            self.site_at.setdefault(site, len(self.site_at))
        n_sites = len(self.site_at)
        #: The ready lines by skill and language, then a list by site number of the pair of
        #: lines by ``newcomer`` (0 or 1; None: nobody with that skill and language there): a
        #: call looking for an agent reads them without building and hashing a key.
        self.ready_index: dict[str, dict[str, list[list[ReadyLine] | None]]] = {}
        for (skill, lang, site, novice), line in self.ready.items():
            by_site = self.ready_index.setdefault(skill, {}).setdefault(lang, [None] * n_sites)
            pair = by_site[self.site_at[site]]
            if pair is None:
                # Empty lines until the real ones are known.
                pair = by_site[self.site_at[site]] = [ReadyLine(), ReadyLine()]
            pair[1 if novice else 0] = line
        for q in self.queues.values():
            q.ready = self.ready_index.get(q.skill)
        # Site tiers by number (see selection.sites_of): every policy site at once; by home
        # site, the home site only, and the home site first then the others (site affinity).
        policy_sites = tuple(range(len(self.sites)))
        self.all_tiers: tuple[tuple[int, ...], ...] = (policy_sites,)
        self.home_tiers: list[tuple[tuple[int, ...], ...]] = [((i,),) for i in range(n_sites)]
        self.affinity_tiers: list[tuple[tuple[int, ...], ...]] = [
            ((i,), tuple(j for j in policy_sites if j != i)) for i in range(n_sites)]
        #: Agents logged in and not paused, per skill (for wait estimates).
        self.staffed: dict[str, int] = dict.fromkeys(policy.skills, 0)
        self.buckets: dict[tuple[str, str], list[tuple[int, float, int, CallRt]]] = {}
        # Per agent: the buckets it must look at when freed (its skills' queues x its
        # languages), leaving out the queues whose calls it can never take: a freed agent
        # never walks a whole bucket of calls none of which it may take. Each agent holds the
        # buckets themselves, made up front (a bucket is never replaced).
        for a in self.agents.values():
            p = a.profile
            a.buckets = [self.buckets.setdefault((q.name, lang), [])
                         for s in p.skills for q in self.queues_by_skill.get(s, ())
                         if can_ever_take(p, q) for lang in p.languages]
        self.calls: dict[str, CallRt] = {}
        self.timers = TimerHeap()
        self.seq = 0
        #: The outputs of the request being handled.
        self.out: list[Output] = []

    def timer(self, when: float, kind: int, obj: Timed) -> None:
        """Arm a timer of ``kind`` for ``obj`` at ``when``; a change of its version disarms it."""
        self.seq += 1
        self.timers.arm(when, self.seq, kind, obj)
