"""Checks of the records database's path, shared by the commands that open it."""

from __future__ import annotations

import os
from pathlib import Path

from acd.errors import Problem

#: The first bytes of every SQLite 3 database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def database_problems(path: Path, source: str, key: str, must_exist: bool) -> list[Problem]:
    """The records database must be an SQLite file, or (for the service) creatable."""
    shown = str(path)
    if path.is_dir():
        return [Problem(source, key, shown, "is a directory; give the database file's path")]
    if not path.exists():
        if must_exist:
            return [Problem(source, key, shown, "no call records database here (a path "
                                                "that does not exist is never created)")]
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return [Problem(source, key, shown, f"cannot create the database in {parent}")]
        return []
    if not path.is_file():
        return [Problem(source, key, shown, "not a regular file; give the database file")]
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        return [Problem(source, key, shown, f"cannot read: {exc.strerror}")]
    if head and head != _SQLITE_HEADER:
        return [Problem(source, key, shown, "not an SQLite database")]
    return []
