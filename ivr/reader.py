"""Typed readers for flow YAML: scalars, names, conditions and simulation figures.

Every reader records a :class:`acd.errors.Problem` (file, YAML path, value, line) and returns a
usable default, so one pass over a flow collects all of its problems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from acd.config.messages import shown, unknown
from acd.errors import Problem, format_path
from ivr import conditions as c
from ivr import flow as f
from ivr.known import KnownNames

Loc = Sequence[str | int]
ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")
VAR = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
DTMF = frozenset("0123456789*#")
SIM_KEYS = {"choices", "timeout", "abandon", "seconds", "think_s", "accept"}


class Reader:
    """Reads values out of YAML data, recording problems instead of stopping at the first."""

    def __init__(self, file: str, known: KnownNames,
                 lines: Mapping[tuple[str | int, ...], int] | None) -> None:
        self.file = file
        self.known = known
        self.lines = lines or {}
        self.problems: list[Problem] = []
        self.prompt_refs: list[tuple[Loc, str]] = []
        self.ref_checks: list[tuple[Loc, str]] = []
        self.languages: set[str] = set()

    def report(self, loc: Loc, value: object, message: str) -> None:
        """Record a problem at a YAML path (with the nearest known line number)."""
        key = tuple(loc)
        line = None
        while key:
            if key in self.lines:
                line = self.lines[key]
                break
            key = key[:-1]
        self.problems.append(Problem(self.file, format_path(loc), shown(value), message, line))

    # --- small typed readers ----------------------------------------------------------------

    def text(self, d: Mapping[str, Any], key: str, loc: Loc, default: str | None = None,
             required: bool = True) -> str | None:
        """A non-empty string at ``key`` (or the default); None and a problem otherwise."""
        v = d.get(key, default)
        if v is None:
            if required:
                self.report([*loc, key], None, f"'{key}' is required")
            return None
        if not isinstance(v, str) or not v:
            self.report([*loc, key], v, f"'{key}' must be a non-empty string")
            return None
        return v

    def number(self, d: Mapping[str, Any], key: str, loc: Loc, default: float,
               lo: float, hi: float, integer: bool = False) -> float:
        """A number (integer if asked) within [lo, hi] at ``key``, else the default."""
        v = d.get(key, default)
        ok = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok or not lo <= v <= hi:
            kind = "an integer" if integer else "a number"
            self.report([*loc, key], v, f"'{key}' must be {kind} from {lo:g} to {hi:g}")
            return default
        return float(v)

    def target(self, d: Mapping[str, Any], key: str, loc: Loc) -> str:
        """A node id at ``key``; its existence is checked once all nodes are read."""
        v = self.text(d, key, loc)
        if v is not None:
            self.ref_checks.append(([*loc, key], v))
        return v or ""

    def prompt(self, d: Mapping[str, Any], key: str, loc: Loc, required: bool = True) -> str | None:
        """A prompt name at ``key``; checked against the prompt set at the end."""
        v = self.text(d, key, loc, required=required)
        if v is not None:
            self.prompt_refs.append(([*loc, key], v))
        return v

    def queue(self, v: object, loc: Loc, allow_current: bool = True) -> str:
        """A queue name known to the center, or ``$queue`` (the call's current queue)."""
        if v is None and allow_current:
            return c.CURRENT_QUEUE
        if v == c.CURRENT_QUEUE and allow_current:
            return c.CURRENT_QUEUE
        if not isinstance(v, str) or v not in self.known.queues:
            self.report(loc, v, unknown("queue", v, self.known.queues, list_all=True))
            return c.CURRENT_QUEUE
        return v

    def language(self, v: object, loc: Loc) -> str:
        """A language known to the center (remembered as one the flow can select)."""
        if not isinstance(v, str) or v not in self.known.languages:
            self.report(loc, v, unknown("language", v, self.known.languages, list_all=True))
            return self.known.default_language
        self.languages.add(v)
        return v

    def assignments(self, d: object, loc: Loc) -> dict[str, str]:
        """Variables set by a menu option or a set node (queue and language checked)."""
        out: dict[str, str] = {}
        if not isinstance(d, dict):
            self.report(loc, d, "must be a mapping of variable name to value")
            return out
        for k, v in d.items():
            if not isinstance(k, str) or not VAR.match(k):
                self.report([*loc, str(k)], k, "variable names are lower_case identifiers")
                continue
            if k == "queue":
                out[k] = self.queue(v, [*loc, k], allow_current=False)
            elif k == "language":
                out[k] = self.language(v, [*loc, k])
            elif k == "country":
                self.report([*loc, k], v, "country comes from the caller number; it cannot be set")
            elif isinstance(v, str | int | bool) and not isinstance(v, float):
                out[k] = str(v).lower() if isinstance(v, bool) else str(v)
            else:
                self.report([*loc, k], v, "variable values must be strings, numbers or booleans")
        return out

    # --- conditions ---------------------------------------------------------------------------

    def condition(self, d: object, loc: Loc) -> c.Condition | None:
        """One branch condition (``{open: tech}``, ``{all: [...]}``, ...)."""
        if not isinstance(d, dict) or len(d) != 1:
            self.report(loc, d, "a condition is a mapping with exactly one key, e.g. {open: tech}")
            return None
        (key, v), = d.items()
        here = [*loc, str(key)]
        if key == "open":
            return c.Open(self.queue(v, here))
        if key == "wait_over":
            if not isinstance(v, dict):
                self.report(here, v, "wait_over needs {seconds: N} and optionally queue")
                return None
            secs = self.number(v, "seconds", here, 0.0, 0.0, 86400.0)
            return c.WaitOver(self.queue(v.get("queue"), [*here, "queue"]), secs)
        if key in ("all", "any"):
            if not isinstance(v, list) or not v:
                self.report(here, v, f"{key} needs a non-empty list of conditions")
                return None
            parts = [self.condition(x, [*here, i]) for i, x in enumerate(v)]
            return c.Combine(str(key), tuple(p for p in parts if p is not None))
        if key == "not":
            p = self.condition(v, here)
            return c.Combine("not", (p,)) if p is not None else None
        if key == "var":
            if not isinstance(v, dict) or not VAR.match(str(v.get("name", ""))):
                self.report(here, v, "var needs {name: variable, equals: value} or in: [...]")
                return None
            vals = v.get("in", [v["equals"]] if "equals" in v else None)
            if not isinstance(vals, list) or not vals:
                self.report(here, v, "var needs equals: value or in: [values]")
                return None
            return c.VarIn(str(v["name"]), frozenset(self._scalar(x) for x in vals))
        if key in c.VAR_CONDITIONS:
            vals = v if isinstance(v, list) else [v]
            if key == "country":
                allowed = set(self.known.countries) | {self.known.default_country}
                for i, x in enumerate(vals):
                    if x not in allowed:
                        self.report([*here, i] if isinstance(v, list) else here, x,
                                    unknown("country", x, allowed, list_all=True))
            if key == "language":
                for i, x in enumerate(vals):
                    self.language(x, [*here, i] if isinstance(v, list) else here)
            return c.VarIn(c.VAR_CONDITIONS[str(key)], frozenset(self._scalar(x) for x in vals))
        self.report(here, key, "unknown condition; use open, wait_over, country, language, tier,"
                    " customer_found, duplicate_customer, complaint, var, all, any, not")
        return None

    @staticmethod
    def _scalar(v: object) -> str:
        return str(v).lower() if isinstance(v, bool) else str(v)

    # --- simulation figures -------------------------------------------------------------------

    def sim(self, d: object, loc: Loc, default_choices: Mapping[str, float],
            allowed: Iterable[str] | None, rest: str | None, think_s: float) -> f.SimSpec:
        """The ``sim:`` figures of a node, as cumulative probabilities."""
        here = [*loc, "sim"]
        if d is None:
            d = {}
        if not isinstance(d, dict):
            self.report(here, d, "sim must be a mapping (choices, timeout, abandon, seconds)")
            d = {}
        for k in d:
            if k not in SIM_KEYS:
                self.report([*here, str(k)], k, unknown("sim key", k, SIM_KEYS))
        raw = d.get("choices", default_choices)
        choices: list[tuple[float, str | None]] = []
        total = 0.0
        if not isinstance(raw, dict):
            self.report([*here, "choices"], raw, "choices must map an answer to a probability")
            raw = {}
        allowed_set = set(allowed) if allowed is not None else None
        for k, p in raw.items():
            key = str(k)
            if allowed_set is not None and key not in allowed_set:
                self.report([*here, "choices", key], k,
                            f"not an answer this node takes; expected one of {sorted(allowed_set)}")
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
                self.report([*here, "choices", key], p, "probabilities are numbers from 0 to 1")
                continue
            total += p
            choices.append((total, key))
        timeout = self.number(d, "timeout", here, 0.0, 0.0, 1.0)
        if timeout:
            total += timeout
            choices.append((total, None))
        if total > 1.0 + 1e-9:
            self.report(here, round(total, 6), "choice and timeout probabilities add up to over 1")
        return f.SimSpec(
            tuple(choices), self.number(d, "abandon", here, 0.0, 0.0, 1.0),
            self.number(d, "seconds", here, 0.0, 0.0, 3600.0),
            self.number(d, "think_s", here, think_s, 0.0, 600.0), rest)
