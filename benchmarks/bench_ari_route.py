"""ARI route benchmark: REST requests per routed call and arrival to originate, on the fake ARI.

The Stasis application (``acd.asterisk.ari.StasisApp``) serves the reference center with every
agent logged in and a one-node IVR (straight to the ``tech`` queue, so nothing waits on
prompts); the fake ARI server (``acd.testing.fake_ari.FakeAri``, which answers as the recorded
Asterisk 22 does) runs in the same process. Calls arrive one at a time, each finds an agent
free at once; the agent's phone answers at once and hangs up after a short talk, the caller's
channel then ends. Per call: every REST request the engine made from the caller's StasisStart
until the call is cleaned up (by kind, with one call's requests listed), and the time from the
StasisStart to the originate request reaching the fake (p50/p99). Both run in one process on
one event loop, so the times include the fake's own work: they err high.
Usage: ``python benchmarks/bench_ari_route.py [--calls 200]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _kit as kit  # noqa: E402

from acd.asterisk.ari.app import StasisApp  # noqa: E402
from acd.asterisk.ari.client import AriClient  # noqa: E402
from acd.config.load import load_center  # noqa: E402
from acd.core.model import CallEnded, Output  # noqa: E402
from acd.runtime.router_service import RouterService  # noqa: E402
from acd.testing.fake_ari import AgentScript, FakeAri, FakeRequest  # noqa: E402
from acd.testing.loadgen import percentile  # noqa: E402

CALLER = "+79161234567"
_IDS = re.compile(r"[0-9]{6,}\.[0-9]+|acd-[a-z]+-[A-Za-z0-9.-]+|[0-9a-f]{8}-[0-9a-f-]{27}")


def kind(request: FakeRequest) -> str:
    """A request with its ids replaced: ``POST /channels/{id}/variable ACD_QUEUED``."""
    path = _IDS.sub("{id}", request.path)
    variable = request.params.get("variable")
    return f"{request.method} {path}" + (f" {variable}" if variable else "")


async def run(calls: int, talk_s: float) -> tuple[list[float], Counter[int], Counter[str],
                                                  list[str], dict[str, int]]:
    center = load_center(ROOT / "config" / "center.yaml")
    fake = FakeAri(default_agent=AgentScript(answer_after=0.0, talk_time=talk_s))
    await fake.start()
    service = RouterService(center)
    ended: set[str] = set()

    def note(output: Output, _wall: float) -> None:
        if isinstance(output, CallEnded):
            ended.add(output.call_id)

    service.observe(note)
    client = AriClient(fake.url, fake.username, fake.password, heartbeat=None)
    app = StasisApp(service, client, kit.one_node_ivr(center))
    task = asyncio.create_task(app.run())
    to_originate: list[float] = []
    per_call: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    example: list[str] = []
    before_originate: Counter[int] = Counter()
    try:
        await asyncio.wait_for(app.ready.wait(), 5.0)
        for agent in center.agents:
            service.login(agent.id)
        for n in range(calls):
            first = len(fake.requests)
            started = time.perf_counter()
            call_id = fake.inject_call(CALLER, "Olga", ("8800100",), language="ru")
            async with asyncio.timeout(10.0):
                while call_id not in ended or app.calls or app.legs or any(
                        call_id in b.channels for b in fake.bridges.values()):
                    await asyncio.sleep(0.0005)
                await asyncio.sleep(0.005)  # the clean-up's last answers
            mine = fake.requests[first:]
            originate = next(i for i, r in enumerate(mine)
                             if r.method == "POST" and r.path == "/channels")
            to_originate.append(mine[originate].at - started)
            before_originate[originate + 1] += 1
            per_call[len(mine)] += 1
            kinds.update(kind(r) for r in mine)
            if n == 0:
                example = [kind(r) for r in mine]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        service.close()
        await fake.stop()
    return to_originate, per_call, kinds, example, dict(before_originate)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200,
                        help="routed calls, one at a time (each keeps an agent in wrap-up)")
    parser.add_argument("--talk", type=float, default=0.01, help="talk time, seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    to_originate, per_call, kinds, example, before = asyncio.run(run(args.calls, args.talk))
    ms = lambda v: round(v * 1000, 3)  # noqa: E731
    print(f"ARI route benchmark (reference center, every agent logged in, one-node IVR, fake "
          f"ARI in the same process); {kit.machine_load()}")
    print(f"  calls={len(to_originate)}  rest_requests_per_routed_call="
          f"{dict(sorted(per_call.items()))}  up_to_and_with_the_originate="
          f"{dict(sorted(before.items()))}")
    print(f"  arrival_to_originate_p50_ms={ms(percentile(to_originate, 50))}  "
          f"p99_ms={ms(percentile(to_originate, 99))}")
    print("  one call's requests, in order:")
    for line in example:
        print(f"    {line}")
    print("  requests by kind over all calls:")
    for name, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"    {count / len(to_originate):5.2f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
