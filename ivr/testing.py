"""Test helpers for IVR flows: reference paths, a small valid flow, a synchronous driver."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from acd import shipped
from ivr import actions as a
from ivr.engine import CallContext, FlowRun
from ivr.flow import Flow
from ivr.known import REFERENCE_COUNTRIES, KnownNames, reference_known
from ivr.loader import validate_flow

MAIN = shipped.flow_dir() / "main.yaml"
CALLBACK = shipped.flow_dir() / "callback.yaml"
KNOWN: KnownNames = reference_known()
ALL_LANGUAGES = sorted(set(REFERENCE_COUNTRIES.values()))


def prompts(*names: str, languages: Sequence[str] = ALL_LANGUAGES) -> dict[str, Any]:
    """An inline prompt set with every name recorded in ``languages``."""
    return {"sound": "acd/{language}/{prompt}",
            "prompts": {n: {"seconds": 2.0, "languages": list(languages)} for n in names}}


def small_flow(**nodes: Any) -> dict[str, Any]:
    """A valid two-node flow (menu -> queue), with extra or replaced nodes from ``nodes``."""
    data: dict[str, Any] = {
        "flow": "small", "start": "menu", "default_queue": "tech",
        "prompts": prompts("hello", "menu"),
        "nodes": {
            "menu": {"type": "menu", "prompt": "menu", "options": {"1": "q"}, "on_fail": "q"},
            "q": {"type": "queue"},
        },
    }
    data["nodes"].update(copy.deepcopy(nodes))
    return data


def compile_flow(data: dict[str, Any], file: str = "test.yaml") -> Flow:
    """Check and compile flow data against the reference center names."""
    return validate_flow(data, file, KNOWN)


def drive(flow: Flow, ctx: CallContext, digits: Sequence[str | None] = (),
          cards: Sequence[a.CustomerCard] = (), ewt: float = 0.0) -> tuple[FlowRun, list[object]]:
    """Run a flow synchronously with scripted answers; return the run and every action."""
    run = FlowRun(flow, ctx)
    script = list(digits)
    actions: list[object] = []
    action = run.start()
    while True:
        actions.append(action)
        if run.done:
            return run, actions
        result: object = None
        if isinstance(action, a.Collect | a.OfferCallback):
            result = script.pop(0) if script else None
        elif isinstance(action, a.LookupCustomer):
            result = list(cards)
        elif isinstance(action, a.EstimateWait):
            result = ewt
        elif isinstance(action, a.Voicemail):
            result = "vm-1"
        action = run.send(result)
