"""What the call-path benchmarks share, so each keeps only what it measures.

- `Child`: the server under test in its own process (it and the load each get a core).
- `answer_until_closed`: Asterisk's side of one FastAGI session on loopback.
- `one_node_ivr`: the reference IVR with a main flow straight into the ``tech`` queue.
- `raise_fd_limit`, `machine_load`, `fields`, `report_checks`: set-up and printing.
"""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from acd.config.load import LoadedCenter
from acd.runtime.ivrsetup import IvrSetup, load_ivr
from ivr.testing import compile_flow, prompts

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


# ------------------------------------------------------------------ the server's process

class Child:
    """A benchmark server in a child process: its first line is ``tag`` and its ports; then
    it answers each line written to its stdin with one line, and stops at EOF."""

    def __init__(self, argv: list[str], tag: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT),
                                                           os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen([sys.executable, *argv], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        first = self._out.readline().split()
        if first[:1] != [tag]:
            self.proc.kill()
            raise SystemExit(f"The benchmark server did not start: {first!r}")
        self.ports = [int(port) for port in first[1:]]

    @property
    def _out(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def ask(self, request: str) -> str:
        """Send one request line; the child's answer line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self._out.readline()

    def stop(self, timeout: float = 15.0) -> None:
        """Close its stdin and wait for it to end (killed after ``timeout`` seconds)."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def raise_fd_limit(wanted: int) -> int:
    """Lift the soft open-files limit towards ``wanted`` (children inherit it); the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def one_node_ivr(center: LoadedCenter) -> IvrSetup:
    """The reference IVR's flows with a main flow of one node, straight into the ``tech``
    queue: the IVR costs nothing and nothing waits on prompts."""
    base = load_ivr(center, ROOT / "config" / "ivr")
    flow = compile_flow({"flow": "bench", "start": "q", "default_queue": "tech",
                         "prompts": prompts(), "nodes": {"q": {"type": "queue"}}})
    return IvrSetup(center, base.known, {"main": flow})


# ------------------------------------------------------------------ the fake Asterisk

def asterisk_reply(command: str) -> bytes:
    """What Asterisk answers a command that succeeds: ``SET MUSIC`` returns 0, the commands
    the call path sends otherwise return 1."""
    return b"200 result=0\n" if command.startswith("SET MUSIC") else b"200 result=1\n"


async def answer_until_closed(port: int, env: bytes,
                              answer: Callable[[str, float], bytes]) -> float:
    """One FastAGI session as Asterisk runs it: connect to ``port``, send ``env``, and write
    ``answer(command, read_at)`` for every command until the server closes the socket
    (``read_at``: ``time.perf_counter()`` as the command was read). Returns the
    ``perf_counter()`` of the close."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(env)
        while line := await reader.readline():
            read_at = time.perf_counter()
            writer.write(answer(line.decode().rstrip("\n"), read_at))
        return time.perf_counter()
    finally:
        writer.close()


# ------------------------------------------------------------------ printing

def machine_load() -> str:
    """The load average and the CPUs, for a benchmark's heading."""
    return (f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
            f"{os.cpu_count()} CPUs")


def fields(figures: Mapping[str, object]) -> str:
    """``name=value`` pairs on one line."""
    return "  ".join(f"{k}={v}" for k, v in figures.items())


def report_checks(checks: Mapping[str, bool], enforce: bool) -> int:
    """Print a PASS or MISS line per target; the exit status (1 on a miss with ``enforce``)."""
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 1 if enforce and not all(checks.values()) else 0
