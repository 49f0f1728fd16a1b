"""The compiled form of a YAML call flow: prompts, nodes, per-node simulation figures.

:mod:`ivr.loader` builds these from YAML and checks them; :mod:`ivr.engine` walks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ivr.conditions import Condition
from ivr.hours import HoursCalendar
from ivr.known import KnownNames

#: A sampled answer meaning "the caller pressed something that is not an option".
INVALID = "\x00invalid"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A recorded prompt: languages it exists in and its length (used by the simulator)."""

    name: str
    seconds: float
    languages: frozenset[str]


@dataclass(frozen=True)
class PromptSet:
    """All prompts of a flow and the pattern that names their sound files."""

    prompts: Mapping[str, Prompt]
    #: Sound file name pattern; ``{language}`` and ``{prompt}`` are replaced.
    sound: str = "{language}/{prompt}"

    def sound_for(self, prompt: str, language: str) -> str:
        """Sound file name of ``prompt`` in ``language``."""
        return self.sound.format(language=language, prompt=prompt)


@dataclass(frozen=True, slots=True)
class SimSpec:
    """How simulated callers behave at a node: answer shares, abandon risk, durations."""

    #: Cumulative (probability, answer) pairs; an answer of None is a timeout / no input.
    choices: tuple[tuple[float, str | None], ...] = ()
    #: Probability that the caller hangs up during this node.
    abandon: float = 0.0
    #: Seconds a non-prompt step takes (lookup, voicemail recording, ...).
    seconds: float = 0.0
    #: Seconds a caller takes to press a key once the prompt has finished.
    think_s: float = 1.5
    #: Answer given when the sampled value is not among ``choices``.
    rest: str | None = INVALID


@dataclass(slots=True)
class Node:
    """Base of all nodes: its id, the YAML path it came from and its simulation figures."""

    id: str
    sim: SimSpec

    def targets(self) -> list[str]:
        """Ids of the nodes this node can continue to."""
        return []

    @property
    def takes_input(self) -> bool:
        """True for nodes that wait for the caller (a loop through one is not a busy loop)."""
        return False


@dataclass(slots=True)
class Play(Node):
    """Play a prompt, then continue."""

    prompt: str
    next: str

    def targets(self) -> list[str]:
        return [self.next]


@dataclass(slots=True)
class MenuOption:
    """What a menu digit does: set variables / queue / language, then go to a node."""

    next: str
    set: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Menu(Node):
    """Play a prompt and take one DTMF digit; retry on timeout or invalid input."""

    prompt: str
    options: Mapping[str, MenuOption]
    on_fail: str
    timeout_s: float = 5.0
    retries: int = 2
    invalid_prompt: str | None = None

    def targets(self) -> list[str]:
        return [o.next for o in self.options.values()] + [self.on_fail]

    @property
    def takes_input(self) -> bool:
        return True


@dataclass(slots=True)
class CollectDigits(Node):
    """Collect a bounded number of digits into a variable."""

    prompt: str
    into: str
    max_digits: int
    next: str
    on_fail: str
    min_digits: int = 1
    timeout_s: float = 5.0
    terminator: str = "#"
    retries: int = 2
    invalid_prompt: str | None = None

    def targets(self) -> list[str]:
        return [self.next, self.on_fail]

    @property
    def takes_input(self) -> bool:
        return True


@dataclass(slots=True)
class ChooseLanguage(Node):
    """Offer languages by digit; no input or another digit keeps the current language."""

    prompt: str
    options: Mapping[str, str]
    next: str
    timeout_s: float = 3.0

    def targets(self) -> list[str]:
        return [self.next]

    @property
    def takes_input(self) -> bool:
        return True


@dataclass(slots=True)
class Branch(Node):
    """Go to the first case whose condition holds, else to ``otherwise``."""

    cases: tuple[tuple[Condition, str], ...]
    otherwise: str
    wait_queues: tuple[str, ...] = ()

    def targets(self) -> list[str]:
        return [t for _, t in self.cases] + [self.otherwise]


@dataclass(slots=True)
class LookupCustomer(Node):
    """Open the customer card for the caller number (sets customer_* variables)."""

    next: str

    def targets(self) -> list[str]:
        return [self.next]


@dataclass(slots=True)
class LookupOrder(Node):
    """Look up a repair order's status from a collected variable into another variable."""

    source: str
    into: str
    next: str

    def targets(self) -> list[str]:
        return [self.next]


@dataclass(slots=True)
class SetVars(Node):
    """Set queue, priority, language and free variables on the call."""

    values: Mapping[str, str]
    priority: int | None
    priority_add: int | None
    next: str

    def targets(self) -> list[str]:
        return [self.next]


@dataclass(slots=True)
class ToQueue(Node):
    """Terminal: queue the call (queue defaults to the current one)."""

    queue: str
    priority: int | None = None


@dataclass(slots=True)
class Voicemail(Node):
    """Record a message and create a callback task; then ``next`` or hang up."""

    queue: str
    prompt: str | None
    max_seconds: float
    next: str | None

    def targets(self) -> list[str]:
        return [self.next] if self.next else []


@dataclass(slots=True)
class CallbackOffer(Node):
    """Offer a callback with the estimated wait; accepted -> callback task -> ``accepted``."""

    queue: str
    prompt: str
    accepted: str
    declined: str
    accept_digit: str = "1"
    timeout_s: float = 5.0

    def targets(self) -> list[str]:
        return [self.accepted, self.declined]

    @property
    def takes_input(self) -> bool:
        return True


@dataclass(slots=True)
class TransferOut(Node):
    """Terminal: transfer to an external E.164 number written in the flow."""

    number: str


@dataclass(slots=True)
class HangupNode(Node):
    """Terminal: hang up with a reason."""

    reason: str


@dataclass(slots=True)
class Goto(Node):
    """Continue at another node."""

    next: str

    def targets(self) -> list[str]:
        return [self.next]


@dataclass
class Flow:
    """A checked call flow, ready to run."""

    name: str
    file: str
    start: str
    default_queue: str
    hop_limit: int
    nodes: dict[str, Node]
    prompts: PromptSet
    calendar: HoursCalendar
    known: KnownNames
    default_priority: int = 0
    #: Built actions per (prompt, language, ...) so the hot path does not rebuild them.
    action_cache: dict[tuple[object, ...], object] = field(default_factory=dict, repr=False)
