"""Read YAML call flows into :class:`ivr.flow.Flow`, collecting every problem with its place.

Checks: node types and keys, unknown node references, unreachable nodes, loops that take no
caller input, prompts missing for a language the flow can select, queues / languages /
countries / sites unknown to the center, transfer numbers that are not E.164.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from acd.config.messages import EMPTY_FILE, closest, unknown, wrong_kind
from acd.config.yamlsafe import loads, read_yaml
from acd.errors import ConfigError, Problem
from ivr import flow as f
from ivr.graph import busy_loops, reachable
from ivr.hours import HoursCalendar, parse_hours
from ivr.known import KnownNames
from ivr.node_reader import NodeReader
from ivr.reader import Loc

DEFAULT_HOP_LIMIT = 100


def line_map(text: str) -> dict[tuple[str | int, ...], int]:
    """Map YAML paths (keys and list indexes) to 1-based line numbers, for error messages."""
    out: dict[tuple[str | int, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out

    def walk(node: yaml.Node, loc: tuple[str | int, ...]) -> None:
        out.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*loc, str(k.value))
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, (*loc, i))

    if root is not None:
        walk(root, ())
    return out

class _Parser(NodeReader):
    """Reads a whole flow: top-level keys, prompt set, hours, nodes, then graph checks."""


    def prompt_set(self, raw: object, base: Path | None) -> f.PromptSet | None:
        """The flow's prompts, inline or from a file; None when unusable (already reported)."""
        loc: list[str | int] = ["prompts"]
        if isinstance(raw, str):
            path = (base / raw) if base is not None else Path(raw)
            try:
                raw, text = read_yaml(path)
            except ConfigError as exc:
                self.problems.extend(exc.problems)
                return None
            # Problems inside the prompt-set file name that file, with its own line numbers.
            other = wrong_kind(raw, "prompt set")
            if other is not None:
                self.report(loc, str(path), other.replace("this looks", "the file looks", 1))
                return None
            sub = _Parser(str(path), self.known, line_map(text))
            ps = sub._prompt_set_data(raw, [])
            self.problems.extend(sub.problems)
            return ps
        return self._prompt_set_data(raw, loc)

    def _prompt_set_data(self, raw: object, loc: list[str | int]) -> f.PromptSet | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("prompts"), dict):
            self.report(loc, raw, "a prompt set is {sound: pattern, prompts: {name: {...}}}, "
                        "or the name of a file holding one")
            return None
        sound = raw.get("sound", "{language}/{prompt}")
        if not isinstance(sound, str) or "{prompt}" not in sound or "{language}" not in sound:
            self.report([*loc, "sound"], sound, "sound pattern needs {language} and {prompt}")
            sound = "{language}/{prompt}"
        out: dict[str, f.Prompt] = {}
        for name, spec in raw["prompts"].items():
            here = [*loc, "prompts", str(name)]
            if not isinstance(spec, dict):
                self.report(here, spec, "a prompt is {seconds: N, languages: [...]}")
                continue
            secs = self.number(spec, "seconds", here, 0.0, 0.0, 600.0)
            langs = spec.get("languages")
            if not isinstance(langs, list) or not langs:
                self.report([*here, "languages"], langs, "languages must be a non-empty list")
                langs = []
            for i, lang in enumerate(langs):
                if lang not in self.known.languages:
                    self.report([*here, "languages", i], lang,
                                unknown("language", lang, self.known.languages, list_all=True))
            out[str(name)] = f.Prompt(str(name), secs, frozenset(str(x) for x in langs))
        return f.PromptSet(out, sound)

    def flow(self, data: object, base: Path | None) -> f.Flow | None:
        if not isinstance(data, dict):
            self.report([], EMPTY_FILE if data is None else data,
                        "a flow file is a mapping with start, default_queue and nodes")
            return None
        other = wrong_kind(data, "call flow")
        if other is not None:
            self.problems.append(Problem(self.file, "<root>", None, other, 1))
            return None
        allowed = {"flow", "description", "start", "default_queue", "default_priority",
                   "hop_limit", "languages", "prompts", "hours", "sim", "nodes"}
        for k in data:
            if k not in allowed:
                self.report([str(k)], k, unknown("top-level key", k, allowed))
        # A required key given misspelt is reported once, as the misspelling.
        misspelt = {closest(k, allowed) for k in data if k not in allowed} - set(data)
        before = len(self.problems)
        name = self.text(data, "flow", [], Path(self.file).stem) or "flow"
        start = self.text(data, "start", []) or ""
        if "default_queue" not in data:
            self.report(["default_queue"], None, "default_queue is required (the queue for"
                        " calls that hit the hop limit or fall through)")
        default_queue = self.queue(data.get("default_queue", "tech"), ["default_queue"], False) \
            if "default_queue" in data else next(iter(sorted(self.known.queues)), "")
        hop_limit = int(self.number(data, "hop_limit", [], DEFAULT_HOP_LIMIT, 5, 10_000, True))
        prio = int(self.number(data, "default_priority", [], 0, -100, 100, True))
        declared = data.get("languages", [])
        for i, lang in enumerate(declared if isinstance(declared, list) else [declared]):
            self.language(lang, ["languages", i])
        sim = data.get("sim") or {}
        think_s = self.number(sim, "think_s", ["sim"], 1.5, 0.0, 600.0) \
            if isinstance(sim, dict) else 1.5
        prompts = self.prompt_set(data.get("prompts"), base)
        hours = parse_hours(data.get("hours"), self.known, self.report)
        raw_nodes = data.get("nodes")
        nodes: dict[str, f.Node] = {}
        if not isinstance(raw_nodes, dict) or not raw_nodes:
            self.report(["nodes"], raw_nodes, "nodes must be a non-empty mapping of id to node")
            raw_nodes = {}
        for nid, nd in raw_nodes.items():
            node = self.node(str(nid), nd, think_s)
            if node is not None:
                nodes[str(nid)] = node
        if nodes or raw_nodes:
            self._check_graph(nodes, raw_nodes, start)
        self.problems[before:] = [p for p in self.problems[before:]
                                  if not (p.path in misspelt and p.value is None)]
        if prompts is not None:  # no prompt set: checking each reference would only repeat it
            self._check_prompts(prompts)
        else:
            prompts = f.PromptSet({})
        return f.Flow(name, self.file, start, default_queue, hop_limit, nodes, prompts,
                      HoursCalendar(hours), self.known, prio)

    def _check_graph(self, nodes: dict[str, f.Node], raw: Mapping[str, Any], start: str) -> None:
        """Unknown references, unreachable nodes and busy loops, knock-on problems left out.

        A misspelt ``next:`` strands every node behind it; those nodes are not reported as
        unreachable when the reference's closest node id would reach them, and nodes that
        stay unreachable while some reference has no close match are one problem, not one each.
        """
        ids = {str(k) for k in raw}
        fixes: dict[str, str] = {}
        unguessed = False
        refs: list[tuple[Loc, str]] = [(["start"], start)] if start else []
        for loc, ref in refs + self.ref_checks:
            if ref in ids:
                continue
            guess = closest(ref, ids)
            if guess is not None:
                fixes[ref] = guess
                self.report(loc, ref, f"unknown node; did you mean {guess!r}?")
            else:
                unguessed = True
                self.report(loc, ref, f"unknown node; nodes are {sorted(ids)}")
        edges = {nid: n.targets() for nid, n in nodes.items()}
        entry = fixes.get(start, start)
        if entry in edges:
            assumed = {nid: [fixes.get(t, t) for t in ts] for nid, ts in edges.items()}
            seen = reachable(assumed, entry)
            stranded = [nid for nid in nodes if nid not in seen]
            if unguessed and stranded:
                self.report(["nodes", stranded[0]], stranded,
                            f"{len(stranded)} node(s) unreachable from start '{entry}', "
                            "perhaps because of the unknown node reference above")
            else:
                for nid in stranded:
                    self.report(["nodes", nid], nid, f"node is unreachable from start '{entry}'")
        waits = {nid for nid, n in nodes.items() if n.takes_input}
        for group in busy_loops(edges, waits):
            self.report(["nodes", group[0]], group,
                        "loop that takes no caller input: these nodes can repeat forever")

    def _check_prompts(self, prompts: f.PromptSet) -> None:
        selectable = set(self.known.countries.values()) | {self.known.default_language}
        selectable |= self.languages
        for loc, name in self.prompt_refs:
            prompt = prompts.prompts.get(name)
            if prompt is None:
                self.report(loc, name, unknown("prompt", name, prompts.prompts, list_all=True))
                continue
            for lang in sorted(selectable - prompt.languages):
                self.report(loc, lang, f"prompt '{name}' has no recording in language '{lang}',"
                            " which the flow can select")


def validate_flow(flow_data: object, file: str, known: KnownNames, *,
                  lines: Mapping[tuple[str | int, ...], int] | None = None,
                  base_dir: Path | None = None) -> f.Flow:
    """Build a Flow from parsed YAML, or raise ConfigError listing every problem found."""
    parser = _Parser(file, known, lines)
    flow = parser.flow(flow_data, base_dir if base_dir is not None else Path(file).parent)
    if parser.problems or flow is None:
        raise ConfigError(parser.problems or [Problem(file, "<root>", None, "empty flow")])
    return flow


def load_flow(path: str | Path, known: KnownNames) -> f.Flow:
    """Read, check and compile a flow file (prompt-set files resolve next to it)."""
    p = Path(path)
    data, text = read_yaml(p)
    return validate_flow(data, str(p), known, lines=line_map(text),
                         base_dir=p.parent)


def loads_flow(text: str, file: str, known: KnownNames, base_dir: Path | None = None) -> f.Flow:
    """Check and compile a flow given as YAML text (tests, config reload)."""
    return validate_flow(loads(text, file), file, known, lines=line_map(text), base_dir=base_dir)


def check_flows(paths: Iterable[str | Path], known: KnownNames) -> list[Problem]:
    """Every problem in the given flow files (empty list: all valid). For ``acd ivr check``."""
    problems: list[Problem] = []
    for path in paths:
        try:
            load_flow(path, known)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems
