"""The compiled and pure-Python builds of the hot path: the switch, staleness, same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from acd import native

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import json, sys
import numpy as np
import acd.native as n
from sim.mmc import simulate_mmc
r = simulate_mmc(0.5, 180.0, 95, 2.0, 7, patience_s=120.0)
c = r.calls
print(json.dumps({"build": n.build(), "files": [sys.modules[m].__file__ for m in n.COMPILED],
                  "n": len(c), "wait": float(np.sum(c.wait_s)), "talk": float(np.sum(c.talk_s)),
                  "outcomes": np.bincount(c.outcome).tolist(),
                  "busy": float(r.agent_time.seconds.sum())}))
"""


def _run(pure: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != native.ENV}
    if pure:
        env[native.ENV] = "1"
    done = subprocess.run([sys.executable, "-c", _RUN], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pure_switch_loads_sources_and_both_builds_agree() -> None:
    """ACD_PURE_PYTHON=1 loads every compiled module from its .py, with identical results."""
    pure = _run(pure=True)
    assert pure["build"] == "pure Python"
    assert all(f.endswith(".py") for f in pure["files"])
    default = _run(pure=False)
    assert default["build"] in ("compiled", "pure Python")
    assert pure["n"] > 3000 and sum(pure["outcomes"]) == pure["n"]
    for key in ("n", "wait", "talk", "outcomes", "busy"):
        assert default[key] == pure[key], key


def test_switch_refused_once_a_compiled_module_is_loaded() -> None:
    """Switching builds after the compiled router was imported would mix the two: refused."""
    code = ("import acd.core.router as r, acd.native as n\n"
            "print(r.__file__)\n"
            "try:\n    n.use_pure_python()\n    print('switched')\n"
            "except RuntimeError as e:\n    print('refused', e)")
    env = {k: v for k, v in os.environ.items() if k != native.ENV}
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True, timeout=60)
    router_file, outcome = done.stdout.strip().splitlines()[-2:]
    if router_file.endswith(".py"):  # no (fresh) compiled build: nothing to mix
        assert outcome == "switched"
    else:
        assert outcome.startswith("refused ACD_PURE_PYTHON: compiled ")
        assert "acd.core.router" in outcome


def test_stale_stamp_is_detected(tmp_path: Path) -> None:
    """A stamp from other sources marks an installed compiled build stale; the right one not."""
    digest = native.sources_digest()
    assert digest is not None and len(digest) == 64
    wrong, right = tmp_path / "wrong.txt", tmp_path / "right.txt"
    wrong.write_text("0" * 64 + "\n")
    right.write_text(digest + "\n")
    compiled = native._compiled_installed()
    assert native.stale(str(wrong)) is compiled
    assert native.stale(str(tmp_path / "missing.txt")) is compiled
    assert native.stale(str(right)) is False
