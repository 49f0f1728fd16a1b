"""Which build of the routing hot path is in use: mypyc-compiled or pure Python.

``setup.py`` compiles :data:`COMPILED` with mypyc when it can. Both builds come from the same
source and must behave the same; setting ``ACD_PURE_PYTHON=1`` in the environment makes a
process load the pure-Python modules even where compiled ones are installed, so the tests and
benchmarks can run both builds from one install.

The build stamps a digest of the sources it compiled (``acd/native_build.txt``). When the
sources no longer match it (a source edited in an editable install since the last
``pip install -e .``), the compiled modules are stale: the pure-Python ones are used instead,
with a warning, so an edit always takes effect.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

#: The modules setup.py compiles (all or none: they call each other natively).
COMPILED = ("acd.core.model", "acd.core.policy", "acd.core.floor", "acd.core.agent_states",
            "acd.core.selection", "acd.core.expansion", "acd.core.router", "acd.core.call",
            "sim.recorder", "sim.engine")
ENV = "ACD_PURE_PYTHON"
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STAMP = os.path.join(_ROOT, "acd", "native_build.txt")


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` source of the compiled modules, ahead of their extension modules."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path if path is not None else sys.path:
            source = os.path.join(folder, leaf + ".py")
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def pure_python_requested() -> bool:
    """True when the environment asks for the pure-Python modules."""
    return os.environ.get(ENV, "") not in ("", "0")


def use_pure_python() -> None:
    """Load the pure-Python modules from now on (before any of them is imported)."""
    loaded = [m for m in COMPILED
              if m in sys.modules and not (sys.modules[m].__file__ or "").endswith(".py")]
    if loaded:
        raise RuntimeError(f"{ENV}: compiled {', '.join(loaded)} already imported")
    if not any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())


def build() -> str:
    """``"compiled"`` when the router in use is the mypyc build, else ``"pure Python"``."""
    from acd.core import router

    return "pure Python" if (router.__file__ or "").endswith(".py") else "compiled"


def _compiled_installed() -> bool:
    folder = os.path.join(_ROOT, "acd", "core")
    return any(name.startswith("router.") and name.endswith(tuple(
        importlib.machinery.EXTENSION_SUFFIXES)) for name in os.listdir(folder))


def sources_digest() -> str | None:
    """sha256 over the compiled modules' sources (as setup.py stamps it); None without them."""
    h = hashlib.sha256()
    for name in COMPILED:
        source = os.path.join(_ROOT, *name.split(".")) + ".py"
        if not os.path.isfile(source):
            return None
        with open(source, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def stale(stamp: str = _STAMP) -> bool:
    """True when compiled modules are installed but were built from other sources."""
    if not _compiled_installed():
        return False
    digest = sources_digest()
    if digest is None:
        return False  # an install without sources: nothing to compare, nothing was edited
    try:
        with open(stamp, encoding="ascii") as f:
            return f.read().strip() != digest
    except OSError:
        return True


if pure_python_requested():
    use_pure_python()
elif stale():
    warnings.warn("the compiled router is older than its source; running the pure-Python "
                  "modules (pip install -e . recompiles)", RuntimeWarning, stacklevel=2)
    use_pure_python()
