"""Wording shared by every file loader: unknown keys, long values, files of the wrong kind.

A problem line must stay one short line a user can act on: an unknown key names the closest
valid key ("did you mean ..."), a value too long to read is summarised instead of dumped, and
a file given in place of another kind (a scenario where a center config belongs) is said so in
one line instead of one problem per key.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping

#: Longest repr of a problem's value shown as is; longer values are summarised.
MAX_VALUE_REPR = 80

#: Top-level keys that only one kind of project file has, per kind.
_SIGNATURES: dict[str, frozenset[str]] = {
    "center config": frozenset({"sites", "skills", "agent_groups", "pause_reasons", "rona"}),
    "scenario": frozenset({"staffing", "center_overrides", "behaviour", "volume_scale",
                           "days"}),
    "traffic file": frozenset({"volume", "profile", "overdispersion", "timezone"}),
    "service settings file": frozenset({"agi", "http", "ari", "records", "logs", "metrics",
                                        "callbacks", "shutdown_grace_s", "flows"}),
    "call flow": frozenset({"nodes", "start", "default_queue", "hop_limit", "hours"}),
    "prompt set": frozenset({"sound"}),
}

#: Keys cited to describe each kind ("a scenario has center, traffic, start, staffing").
_CITED: dict[str, tuple[str, ...]] = {
    "center config": ("sites", "queues", "agent_groups"),
    "scenario": ("center", "traffic", "start", "staffing"),
    "traffic file": ("volume", "profile", "queues", "countries"),
    "service settings file": ("agi", "http", "records"),
    "call flow": ("start", "default_queue", "nodes"),
    "prompt set": ("sound", "prompts"),
}


class Shown:
    """A value too long for a problem line: its repr is a short summary, not the whole thing."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        v = self.value
        if isinstance(v, Mapping):
            keys = [str(k) for k in list(v)[:4]]
            more = ", ..." if len(v) > 4 else ""
            return f"a mapping of {len(v)} key(s): {', '.join(keys)}{more}"
        if isinstance(v, list | tuple):
            head = ", ".join(repr(x) if len(repr(x)) <= 20 else "..." for x in v[:4])
            return f"[{head}{', ...' if len(v) > 4 else ''}] ({len(v)} items)"
        text = repr(v)
        return text[:MAX_VALUE_REPR - 5] + " ...'" if isinstance(v, str) else \
            text[:MAX_VALUE_REPR] + " ..."


class Described:
    """A stand-in value whose repr is plain words, e.g. ``(got an empty file)``."""

    def __init__(self, words: str) -> None:
        self.words = words

    def __repr__(self) -> str:
        return self.words


#: The value reported for a YAML file with no document in it.
EMPTY_FILE = Described("an empty file")


def shown(value: object) -> object:
    """``value`` itself when its repr is short, else a :class:`Shown` summary of it."""
    if value is None or len(repr(value)) <= MAX_VALUE_REPR:
        return value
    return Shown(value)


def closest(word: object, valid: Collection[object]) -> str | None:
    """The valid name closest to ``word`` (a likely typo), or None when none is close."""
    names = [str(v) for v in valid]
    found = difflib.get_close_matches(str(word), names, n=1, cutoff=0.6)
    if not found:
        lowered = {n.casefold(): n for n in names}
        return lowered.get(str(word).casefold())
    return found[0]


def unknown(kind: str, word: object, valid: Collection[object], *,
            list_all: bool = False) -> str:
    """``unknown key; did you mean 'y'?`` or, with nothing close, the valid names listed.

    ``list_all`` always lists the valid names, the suggestion (if any) after them. The word
    itself is not repeated: the problem's path or value already names it.
    """
    names = sorted(str(v) for v in valid)
    guess = closest(word, names)
    listing = f"valid: {', '.join(names) if names else 'none'}"
    if guess is None:
        return f"unknown {kind}; {listing}"
    if list_all:
        return f"unknown {kind}; {listing}; did you mean {guess!r}?"
    return f"unknown {kind}; did you mean {guess!r}?"


def kind_of(data: object) -> str | None:
    """Which kind of project file ``data`` looks like, from its top-level keys (None: unsure)."""
    if not isinstance(data, Mapping):
        return None
    keys = {str(k) for k in data}
    scores = {kind: len(keys & sig) for kind, sig in _SIGNATURES.items()}
    if keys == {"prompts"}:
        scores["prompt set"] += 1
    best = max(scores.values())
    if best == 0:
        return None
    winners = [k for k, s in scores.items() if s == best]
    return winners[0] if len(winners) == 1 else None


def wrong_kind(data: object, expected: str) -> str | None:
    """A one-line message when ``data`` is plainly another kind of file than ``expected``.

    Only files that share none of ``expected``'s own keys are called another kind, so a real
    file with typos is still reported key by key.
    """
    found = kind_of(data)
    if found is None or found == expected or not isinstance(data, Mapping):
        return None
    if {str(k) for k in data} & _SIGNATURES[expected]:
        return None
    has = sorted({str(k) for k in data} & _SIGNATURES[found])
    has = [*has[:4], "..."] if len(has) > 4 else has
    return (f"this looks like {_a(found)}, not {_a(expected)} (it has {', '.join(has)}; "
            f"{_a(expected)} has {', '.join(_CITED[expected])})")


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
