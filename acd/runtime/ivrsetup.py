"""What a telephony shell needs to run the IVR: the flows, the names they may use, customers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from acd.config.load import LoadedCenter
from acd.errors import ConfigError, Problem
from ivr.actions import CallbackTask
from ivr.customers import CustomerDirectory
from ivr.flow import Flow
from ivr.known import KnownNames, known_from_center
from ivr.loader import load_flow

#: The flow the dialplan runs for every inbound call (``RouteSettings.flow``, ``StasisApp``).
ENTRY_FLOW = "main"


class CallbackSink(Protocol):
    """Where callback tasks go (voicemail, accepted callback offers); the service stores them."""

    def add(self, task: CallbackTask) -> None:
        """Store one callback task durably."""


@dataclass(frozen=True)
class IvrSetup:
    """Flows by name (``main`` for inbound calls, ``callback`` for outbound callbacks)."""

    center: LoadedCenter
    known: KnownNames
    flows: dict[str, Flow]
    customers: CustomerDirectory | None = None
    callbacks: CallbackSink | None = None
    #: Dialplan destinations for calls leaving the ACD (voicemail, callback confirmation).
    destinations: dict[str, str] = field(default_factory=dict)


def load_ivr(center: LoadedCenter, flow_dir: str | Path,
             customers: CustomerDirectory | None = None,
             callbacks: CallbackSink | None = None, entry: str = ENTRY_FLOW) -> IvrSetup:
    """Load every ``*.yaml`` flow in ``flow_dir`` except the shared prompt sets.

    The directory must hold the ``entry`` flow, the one every inbound call runs: without it
    each call would silently take the dialplan's fallback, so the whole setup is refused.
    """
    known = known_from_center(center.config)
    flows = {}
    for path in sorted(Path(flow_dir).glob("*.yaml")):
        if path.stem == "prompts":
            continue
        flows[path.stem] = load_flow(path, known)
    if entry not in flows:
        found = f"it holds {', '.join(sorted(flows))}" if flows else "it holds no flow"
        if not Path(flow_dir).is_dir():
            found = "it is not a directory"
        raise ConfigError([Problem(
            str(flow_dir), "<root>", None,
            f"no entry flow {entry!r} ({entry}.yaml), the flow every inbound call runs; {found}")])
    return IvrSetup(center, known, flows, customers, callbacks)
