"""Simulated callers: walk a FlowRun with seeded random answers and prompt-length durations.

No simpy import: :meth:`SimulatedCaller.walk` returns (seconds spent in the IVR, Outcome) and
the SimPy process does ``yield env.timeout(elapsed)``. Uniform draws come in blocks from one
seeded ``numpy.random.Generator``, so a run is reproducible from its seed and cheap per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ivr import actions as a
from ivr.engine import CallContext, FlowRun
from ivr.flow import Flow, Node, SimSpec

EstimateWaitFn = Callable[[str, str], float]

_PLAY, _COLLECT, _OFFER = a.Play, a.Collect, a.OfferCallback
_LOOKUP_CUSTOMER, _LOOKUP_ORDER, _WAIT, _VOICEMAIL = (
    a.LookupCustomer, a.LookupOrder, a.EstimateWait, a.Voicemail)

_SIM_CARDS: dict[str, list[a.CustomerCard]] = {
    "none": [],
    "standard": [a.CustomerCard("sim-standard", "", tier="standard")],
    "vip": [a.CustomerCard("sim-vip", "", tier="vip")],
    "complaint": [a.CustomerCard("sim-complaint", "", open_complaint=True)],
    "duplicate": [a.CustomerCard("sim-dup-1", ""), a.CustomerCard("sim-dup-2", "")],
}


class SimulatedCaller:
    """Walks calls through one flow with answers drawn from the flow's per-node ``sim`` figures.

    ``estimate_wait(queue, language)`` is the router's wait estimate (0 s when not given).
    Create one per simulation run and call :meth:`walk` for each arriving call.
    """

    def __init__(self, flow: Flow, rng: np.random.Generator, *,
                 estimate_wait: EstimateWaitFn | None = None, block: int = 8192) -> None:
        self.flow = flow
        self.rng = rng
        self.estimate_wait = estimate_wait
        self.block = block
        self._buf: list[float] = []
        self._i = 0
        self._seconds = {name: p.seconds for name, p in flow.prompts.prompts.items()}

    def _u(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self.rng.random(self.block).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def _draw(self, spec: SimSpec) -> str | None:
        # _u() inlined: this runs for every key press and lookup of every simulated call.
        i = self._i
        buf = self._buf
        if i >= len(buf):
            buf = self._buf = self.rng.random(self.block).tolist()
            i = 0
        self._i = i + 1
        u = buf[i]
        for cum, value in spec.choices:
            if u < cum:
                return value
        return spec.rest

    def walk(self, ctx: CallContext,
             digits: Sequence[str | None] | None = None) -> tuple[float, a.Outcome]:
        """Run one call; ``digits`` (optional) forces the caller's key presses in order."""
        run = FlowRun(self.flow, ctx)
        script = list(digits) if digits is not None else None
        seconds = self._seconds
        elapsed = 0.0
        action = run.start()
        # The generator's own send: FlowRun.send's checks cost more than the step itself here.
        send = run._gen.send  # type: ignore[union-attr]
        last: Node | None = None
        while run.outcome is None:
            node = run.node
            assert node is not None
            spec = node.sim
            result: object = None
            kind = type(action)
            if kind is _PLAY:
                dur = seconds[action.prompt]  # type: ignore[union-attr]
            elif kind is _COLLECT or kind is _OFFER:
                if script is not None:
                    result = script.pop(0) if script else None
                else:
                    result = self._draw(spec)
                dur = seconds[action.prompt]  # type: ignore[union-attr]
                dur += action.timeout_s if result is None else spec.think_s  # type: ignore[union-attr]
            elif kind is _LOOKUP_CUSTOMER:
                result = _SIM_CARDS.get(self._draw(spec) or "none", [])
                dur = spec.seconds
            elif kind is _LOOKUP_ORDER:
                status = self._draw(spec)
                result = None if status == "unknown" else status
                dur = spec.seconds
            elif kind is _WAIT:
                fn = self.estimate_wait
                result = fn(action.queue, action.language) if fn else 0.0  # type: ignore[union-attr]
                dur = 0.0
            elif kind is _VOICEMAIL:
                result = "sim-voicemail"
                dur = spec.seconds
            else:
                dur = 0.0
            if node is not last:
                last = node
                p = spec.abandon
                if p > 0.0:
                    u = self._u()
                    if u < p:
                        # u/p is uniform on [0, 1): the caller leaves part-way through the step.
                        return elapsed + dur * (u / p), run.abandon()
            elapsed += dur
            action = send(result)
        assert run.outcome is not None
        return elapsed, run.outcome


def simulate_call(flow: Flow, ctx: CallContext, rng: np.random.Generator, *,
                  estimate_wait: EstimateWaitFn | None = None,
                  digits: Sequence[str | None] | None = None) -> tuple[float, a.Outcome]:
    """One simulated call (convenience; reuse a :class:`SimulatedCaller` for many calls)."""
    return SimulatedCaller(flow, rng, estimate_wait=estimate_wait, block=64).walk(ctx, digits)
