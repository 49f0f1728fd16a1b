"""Build hook: compile the routing hot path with mypyc when it can, else stay pure Python.

The router core and the simulator's engine are ordinary typed Python. mypyc compiles them to C
extensions (two to four times as fast; ``benchmarks/bench_sim.py`` prints both builds'
figures). When mypyc or a C compiler is missing, or ``ACD_PURE_PYTHON=1`` is set, the same
modules install as plain Python and behave identically, only slower.

Beside the extensions the build writes ``acd/native_build.txt``, a digest of the sources it
compiled: :mod:`acd.native` compares it at import and, after an edit to one of those sources in
an editable install, runs the pure-Python modules (with a warning) instead of stale compiled code.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
#: The modules compiled, and the one shared library they are grouped into (keep in step with
#: acd/native.py).
COMPILED = ["acd/core/model.py", "acd/core/policy.py", "acd/core/floor.py",
            "acd/core/agent_states.py", "acd/core/selection.py", "acd/core/expansion.py",
            "acd/core/router.py", "acd/core/call.py", "sim/recorder.py", "sim/engine.py"]
GROUP = "acd_native"
STAMP = "acd/native_build.txt"


def sources_digest() -> str:
    """sha256 over the compiled sources, in order (acd.native computes the same)."""
    h = hashlib.sha256()
    for rel in COMPILED:
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()


class BuildExt(build_ext):
    """build_ext that stamps the digest of what it compiled, when it compiled anything."""

    def run(self) -> None:
        super().run()
        built = [self.get_ext_fullpath(e.name) for e in self.extensions]
        if not built or not all(os.path.exists(p) for p in built):
            return  # an optional extension failed: no stamp, acd.native uses pure Python
        for base in {self.build_lib, str(ROOT) if self.inplace else self.build_lib}:
            target = Path(base) / STAMP
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(sources_digest() + "\n")


def extensions() -> list:
    if os.environ.get("ACD_PURE_PYTHON", "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("mypyc not available: installing the pure-Python router", file=sys.stderr)
        return []
    # Its own minimal mypy configuration: the project's [tool.mypy] loads the pydantic plugin,
    # which the isolated build environment does not have; the compiled code does not need it.
    try:
        exts = mypycify(["--config-file", "mypyc.ini", *COMPILED], opt_level="3",
                        group_name=GROUP)
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (mypyc exits on type errors)
        print(f"mypyc failed ({exc}): installing the pure-Python router", file=sys.stderr)
        return []
    for ext in exts:
        ext.optional = True  # a failed C build leaves the pure-Python modules in place
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
