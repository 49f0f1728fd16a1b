"""Builders for each node type of a flow (``type: menu``, ``type: collect``, ...)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from acd.config.messages import unknown
from ivr import conditions as c
from ivr import flow as f
from ivr.caller import is_e164
from ivr.reader import DTMF, ID, VAR, Loc, Reader

MAX_COLLECT_DIGITS = 32

_COMMON = {"type", "sim"}
_KEYS: dict[str, set[str]] = {
    "play": {"prompt", "next"},
    "menu": {"prompt", "options", "on_fail", "timeout_s", "retries", "invalid_prompt"},
    "collect": {"prompt", "into", "max_digits", "min_digits", "next", "on_fail", "timeout_s",
                "terminator", "retries", "invalid_prompt"},
    "language": {"prompt", "options", "next", "timeout_s"},
    "branch": {"cases", "otherwise"},
    "lookup_customer": {"next"},
    "lookup_order": {"from", "into", "next"},
    "set": {"queue", "language", "priority", "priority_add", "variables", "next"},
    "queue": {"queue", "priority"},
    "voicemail": {"queue", "prompt", "max_seconds", "next"},
    "callback_offer": {"queue", "prompt", "accept_digit", "timeout_s", "accepted", "declined"},
    "transfer": {"number"},
    "hangup": {"reason"},
    "goto": {"next"},
}

class NodeReader(Reader):
    """Reads ``nodes:`` entries into :mod:`ivr.flow` node objects."""


    def node(self, nid: str, d: object, think_s: float) -> f.Node | None:
        """Build one node (None when its type is unusable; problems are recorded)."""
        loc: list[str | int] = ["nodes", nid]
        if not ID.match(nid):
            self.report(loc, nid, "node ids are letters, digits, '_' or '-', led by a letter")
        if not isinstance(d, dict):
            self.report(loc, d, "a node is a mapping with a 'type'")
            return None
        kind = d.get("type")
        if kind not in _KEYS:
            self.report([*loc, "type"], kind, unknown("node type", kind, _KEYS) if kind is not None
                        else f"'type' is required; valid: {', '.join(sorted(_KEYS))}")
            return None
        for k in d:
            if k not in _KEYS[kind] and k not in _COMMON:
                self.report([*loc, str(k)], k,
                            unknown(f"key for a {kind} node", k, _KEYS[kind] | _COMMON))
        build = getattr(self, f"_node_{kind}")
        node: f.Node = build(nid, d, loc, think_s)
        return node

    def _spec(self, d: Mapping[str, Any], loc: Loc, think_s: float,
              default: Mapping[str, float] | None = None, allowed: Iterable[str] | None = None,
              rest: str | None = f.INVALID) -> f.SimSpec:
        return self.sim(d.get("sim"), loc, default or {}, allowed, rest, think_s)

    def _node_play(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        return f.Play(nid, self._spec(d, loc, t), self.prompt(d, "prompt", loc) or "",
                      self.target(d, "next", loc))

    def _node_menu(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        options: dict[str, f.MenuOption] = {}
        raw = d.get("options")
        if not isinstance(raw, dict) or not raw:
            self.report([*loc, "options"], raw, "options must map DTMF digits to nodes")
            raw = {}
        for k, v in raw.items():
            digit = str(k)
            here = [*loc, "options", digit]
            if len(digit) != 1 or digit not in DTMF:
                self.report(here, k, "menu options are single DTMF keys 0-9, * or #")
            if isinstance(v, str):
                self.ref_checks.append((here, v))
                options[digit] = f.MenuOption(v)
            elif isinstance(v, dict):
                for extra in set(v) - {"next", "set"}:
                    self.report([*here, str(extra)], extra, "an option has only next and set")
                sets = self.assignments(v["set"], [*here, "set"]) if "set" in v else {}
                options[digit] = f.MenuOption(self.target(v, "next", here), sets)
            else:
                self.report(here, v, "an option is a node id or {next: node, set: {...}}")
        n = len(options) or 1
        return f.Menu(
            nid, self._spec(d, loc, t, {k: 1.0 / n for k in options}, options),
            self.prompt(d, "prompt", loc) or "", options, self.target(d, "on_fail", loc),
            self.number(d, "timeout_s", loc, 5.0, 0.5, 60.0),
            int(self.number(d, "retries", loc, 2, 0, 5, integer=True)),
            self.prompt(d, "invalid_prompt", loc, required=False))

    def _node_collect(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        if "max_digits" not in d:
            self.report([*loc, "max_digits"], None, "collect needs max_digits (always bounded)")
        max_d = int(self.number(d, "max_digits", loc, 1, 1, MAX_COLLECT_DIGITS, integer=True))
        min_d = int(self.number(d, "min_digits", loc, 1, 1, max_d, integer=True))
        into = self.text(d, "into", loc) or "digits"
        if not VAR.match(into):
            self.report([*loc, "into"], into, "variable names are lower_case identifiers")
        term = d.get("terminator", "#")
        if term not in ("#", "*", ""):
            self.report([*loc, "terminator"], term, "terminator is '#', '*' or ''")
            term = "#"
        return f.CollectDigits(
            nid, self._spec(d, loc, t, rest="1" * min_d), self.prompt(d, "prompt", loc) or "",
            into, max_d, self.target(d, "next", loc), self.target(d, "on_fail", loc), min_d,
            self.number(d, "timeout_s", loc, 5.0, 0.5, 120.0), str(term),
            int(self.number(d, "retries", loc, 2, 0, 5, integer=True)),
            self.prompt(d, "invalid_prompt", loc, required=False))

    def _node_language(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        options: dict[str, str] = {}
        raw = d.get("options")
        if not isinstance(raw, dict) or not raw:
            self.report([*loc, "options"], raw, "options must map DTMF digits to languages")
            raw = {}
        for k, v in raw.items():
            if len(str(k)) != 1 or str(k) not in DTMF:
                self.report([*loc, "options", str(k)], k, "options are single DTMF keys")
            options[str(k)] = self.language(v, [*loc, "options", str(k)])
        return f.ChooseLanguage(nid, self._spec(d, loc, t, {}, options, rest=None),
                                self.prompt(d, "prompt", loc) or "", options,
                                self.target(d, "next", loc),
                                self.number(d, "timeout_s", loc, 3.0, 0.5, 60.0))

    def _node_branch(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        cases: list[tuple[c.Condition, str]] = []
        raw = d.get("cases")
        if not isinstance(raw, list) or not raw:
            self.report([*loc, "cases"], raw, "cases must be a list of {when: cond, next: node}")
            raw = []
        for i, case in enumerate(raw):
            here = [*loc, "cases", i]
            if not isinstance(case, dict) or set(case) != {"when", "next"}:
                self.report(here, case, "a case is {when: condition, next: node}")
                continue
            cond = self.condition(case["when"], [*here, "when"])
            target = self.target(case, "next", here)
            if cond is not None:
                cases.append((cond, target))
        waits = tuple(dict.fromkeys(q for cond, _ in cases for q in cond.wait_queues()))
        return f.Branch(nid, self._spec(d, loc, t), tuple(cases),
                        self.target(d, "otherwise", loc), waits)

    def _node_lookup_customer(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        kinds = ("none", "standard", "vip", "duplicate", "complaint")
        return f.LookupCustomer(nid, self._spec(d, loc, t, {}, kinds, rest="none"),
                                self.target(d, "next", loc))

    def _node_lookup_order(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        src = self.text(d, "from", loc, "order_number") or "order_number"
        into = self.text(d, "into", loc, "order_status") or "order_status"
        for key, v in (("from", src), ("into", into)):
            if not VAR.match(v):
                self.report([*loc, key], v, "variable names are lower_case identifiers")
        return f.LookupOrder(nid, self._spec(d, loc, t, rest="unknown"), src, into,
                             self.target(d, "next", loc))

    def _node_set(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        values: dict[str, str] = {}
        if "queue" in d:
            values["queue"] = self.queue(d["queue"], [*loc, "queue"], allow_current=False)
        if "language" in d:
            values["language"] = self.language(d["language"], [*loc, "language"])
        if "variables" in d:
            values.update(self.assignments(d["variables"], [*loc, "variables"]))
        prio = int(self.number(d, "priority", loc, 0, -100, 100, True)) if "priority" in d else None
        add = (int(self.number(d, "priority_add", loc, 0, -100, 100, True))
               if "priority_add" in d else None)
        return f.SetVars(nid, self._spec(d, loc, t), values, prio, add, self.target(d, "next", loc))

    def _node_queue(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        prio = int(self.number(d, "priority", loc, 0, -100, 100, True)) if "priority" in d else None
        return f.ToQueue(nid, self._spec(d, loc, t), self.queue(d.get("queue"), [*loc, "queue"]),
                         prio)

    def _node_voicemail(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        nxt = self.target(d, "next", loc) if "next" in d else None
        return f.Voicemail(nid, self._spec(d, loc, t),
                           self.queue(d.get("queue"), [*loc, "queue"]),
                           self.prompt(d, "prompt", loc, required=False),
                           self.number(d, "max_seconds", loc, 120.0, 5.0, 600.0), nxt)

    def _node_callback_offer(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        digit = d.get("accept_digit", "1")
        if not isinstance(digit, str | int) or str(digit) not in DTMF or len(str(digit)) != 1:
            self.report([*loc, "accept_digit"], digit, "accept_digit is one DTMF key")
            digit = "1"
        spec = self._spec(d, loc, t, rest=None)
        accept = self.number(d.get("sim") or {}, "accept", [*loc, "sim"], 0.0, 0.0, 1.0) \
            if isinstance(d.get("sim"), dict) else 0.0
        spec = f.SimSpec(((accept, str(digit)), *[(p + accept, v) for p, v in spec.choices]),
                         spec.abandon, spec.seconds, spec.think_s, None)
        return f.CallbackOffer(nid, spec, self.queue(d.get("queue"), [*loc, "queue"]),
                               self.prompt(d, "prompt", loc) or "",
                               self.target(d, "accepted", loc), self.target(d, "declined", loc),
                               str(digit), self.number(d, "timeout_s", loc, 5.0, 0.5, 60.0))

    def _node_transfer(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        number = d.get("number")
        if not isinstance(number, str) or not is_e164(number):
            self.report([*loc, "number"], number,
                        "transfer number must be a valid E.164 number written in the flow"
                        " (e.g. '+74951234567'); caller input is never dialled")
            number = ""
        return f.TransferOut(nid, self._spec(d, loc, t), number)

    def _node_hangup(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        reason = self.text(d, "reason", loc, "completed") or "completed"
        return f.HangupNode(nid, self._spec(d, loc, t), reason)

    def _node_goto(self, nid: str, d: dict[str, Any], loc: Loc, t: float) -> f.Node:
        return f.Goto(nid, self._spec(d, loc, t), self.target(d, "next", loc))
