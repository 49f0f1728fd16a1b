"""The configuration shipped inside the package: every default path comes from here.

The reference center (``center.yaml``), its IVR flows (``ivr/``), traffic (``traffic/``),
simulation scenarios (``scenarios/``), service settings (``service.yaml``), Asterisk samples
(``asterisk/``), Prometheus rules (``prometheus/``) and the Grafana dashboard (``grafana/``) are
package data of :mod:`acd` under ``acd/defaults``, found with :mod:`importlib.resources`, so an
installed wheel finds them wherever it is installed.

The repository keeps them in the top-level ``config/`` directory, the one copy anyone edits:
``acd/defaults`` is a symlink to it. A build (wheel or sdist) stores the real files, and an
editable install reads the checkout's ``config/`` through the symlink. The tree keeps
``config/``'s shape, so references between shipped files (a scenario's ``center:
../center.yaml``) resolve the same way inside an installed package.

Installed as plain files (a wheel, an editable install), the paths returned are those files. A
package imported from a zip archive has no files to point at: its shipped tree is extracted once
into a temporary directory, removed when the process exits.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

#: The shipped tree inside the ``acd`` package.
PACKAGE_DIR = "defaults"


def _tree() -> Traversable:
    return files("acd") / PACKAGE_DIR


@cache
def config_dir() -> Path:
    """The shipped configuration directory, as a real directory on the file system."""
    tree = _tree()
    if isinstance(tree, Path):
        if not tree.is_dir():
            raise FileNotFoundError(f"the shipped configuration is missing: {tree} (a broken "
                                    "install, or a checkout without the acd/defaults symlink)")
        # In a checkout this names config/ rather than the symlink, as the docs do.
        return tree.resolve()
    temp = Path(tempfile.mkdtemp(prefix="acd-defaults-"))
    atexit.register(shutil.rmtree, temp, ignore_errors=True)
    _copy(tree, temp)
    return temp


def center_file() -> Path:
    """The reference center (``center.yaml``)."""
    return config_dir() / "center.yaml"


def flow_dir() -> Path:
    """The reference IVR flows (``ivr/``)."""
    return config_dir() / "ivr"


def reference_scenario() -> Path:
    """The reference scenario: a Monday of the reference center (``scenarios/reference.yaml``)."""
    return config_dir() / "scenarios" / "reference.yaml"


def service_file() -> Path:
    """The sample service settings (``service.yaml``)."""
    return config_dir() / "service.yaml"


def copy_to(dest: Path) -> list[Path]:
    """Copy the shipped tree into ``dest`` (created if needed); the files written, in order.

    Existing files of the same names are overwritten; nothing else in ``dest`` is touched.
    """
    return _copy(_tree(), dest)


def _copy(source: Traversable, dest: Path) -> list[Path]:
    written: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir(), key=lambda e: e.name):
        if entry.name.startswith((".", "__")):
            continue  # __pycache__ and editor or VCS leftovers are not configuration
        target = dest / entry.name
        if entry.is_dir():
            written.extend(_copy(entry, target))
        else:
            target.write_bytes(entry.read_bytes())
            written.append(target)
    return written
