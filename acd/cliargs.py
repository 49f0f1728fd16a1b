"""Checks of command-line values and of the paths they name, run before any command works.

Each check returns the problems it finds (an empty list when the value is fine), so a command
can report every bad value at once, one line each, and exit 2 before it reads, writes or
simulates anything. Checks only look: they never create, open for writing or delete a path.
"""

from __future__ import annotations

import codecs
import math
import os
import stat
from datetime import datetime
from pathlib import Path

from acd.config.files import file_kind
from acd.errors import Problem, usage

#: Bytes read at a time when checking that an input file is UTF-8 text.
_CHUNK = 1 << 20
#: A date without a time and offset is refused with this example of what to write instead.
TIME_EXAMPLE = "2026-03-02T00:00+03:00"


def input_file(option: str, path: str | os.PathLike[str], text: bool = True) -> list[Problem]:
    """Problems with reading ``path`` given as ``option``: missing, a directory, unreadable, binary.

    ``text`` also requires UTF-8 (a byte-order mark is fine); the file is read in chunks, never
    held whole. A FIFO is refused without opening it, since opening one blocks. The problem
    names the file (as a problem inside it would) and the option that named it.
    """
    shown = os.fspath(path)

    def bad(message: str) -> list[Problem]:
        return [Problem(shown, "<root>", None, f"{message} (given as {option})")]

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return bad("cannot read file: no such file")
    except OSError as exc:
        return bad(f"cannot read file: {exc.strerror}")
    if not stat.S_ISREG(mode):
        return bad(f"cannot read file: it is {file_kind(mode)}")
    try:
        with open(path, "rb") as f:
            decoder = codecs.getincrementaldecoder("utf-8")()
            offset = 0
            while text and (chunk := f.read(_CHUNK)):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return bad(f"file is not UTF-8 text (byte {offset + exc.start} is "
                               f"0x{chunk[exc.start]:02x})")
                offset += len(chunk)
            if text:
                decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return bad("file is not UTF-8 text (it ends mid-character)")
    except OSError as exc:
        return bad(f"cannot read file: {exc.strerror}")
    return []


def _writable_parent(option: str, shown: str, path: Path) -> list[Problem]:
    """The nearest existing ancestor of ``path`` must be a directory we may write into."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [usage(option, shown, f"{parent} is not a directory")]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [usage(option, shown, f"cannot write in {parent}")]
    return []


def output_dir(option: str, path: str | os.PathLike[str],
               files: tuple[str, ...] = ()) -> list[Problem]:
    """Problems with writing ``files`` into the directory ``path`` (created if missing)."""
    shown, p = os.fspath(path), Path(path)
    if not p.exists():
        return _writable_parent(option, shown, p)
    if not p.is_dir():
        return [usage(option, shown, "exists and is not a directory; give a directory")]
    if not os.access(p, os.W_OK | os.X_OK):
        return [usage(option, shown, "cannot write in this directory")]
    return [usage(option, shown, f"{p / name} is a directory; it would be overwritten by a file")
            for name in files if (p / name).is_dir()]


def output_file(option: str, path: str | os.PathLike[str]) -> list[Problem]:
    """Problems with writing the file ``path`` (replaced if it exists, parents created)."""
    shown, p = os.fspath(path), Path(path)
    if p.is_dir():
        return [usage(option, shown, "is a directory; give a file name")]
    if p.exists():
        if not p.is_file():
            return [usage(option, shown, "exists and is not a regular file")]
        if not os.access(p, os.W_OK):
            return [usage(option, shown, "cannot write this file")]
        return []
    return _writable_parent(option, shown, p)


def int_range(option: str, value: int | None, low: int, high: int | None = None
              ) -> list[Problem]:
    """``value`` (when given) must be an integer in ``[low, high]``."""
    if value is None or (value >= low and (high is None or value <= high)):
        return []
    bound = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return [usage(option, value, f"must be {bound}")]


def float_range(option: str, value: float | None, low: float, high: float,
                low_open: bool = True) -> list[Problem]:
    """``value`` (when given) must be finite and in ``(low, high]`` (or ``[low, high]``)."""
    if value is None:
        return []
    above = value > low if low_open else value >= low
    if math.isfinite(value) and above and value <= high:
        return []
    return [usage(option, value, f"must be {'>' if low_open else '>='} {low:g} and <= {high:g}")]


def iso_time(text: str) -> datetime:
    """An ISO 8601 date and time with a UTC offset, for argparse ``type=``.

    A bare date is refused, with the exact text to write instead: the reference center runs on
    two time zones, so midnight needs its offset spelled out.
    """
    import argparse

    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r}; write e.g. {TIME_EXAMPLE}") from None
    if value.tzinfo is None:
        # Python reads "2026-03-02+03:00" as 03:00 without an offset: suggest from the date.
        day = text.strip()[:10]
        try:
            datetime.fromisoformat(day)
        except ValueError:
            day = TIME_EXAMPLE[:10]
        clock = value.strftime("%H:%M") if "T" in text or " " in text.strip() else "00:00"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date and time with a UTC offset; write e.g. "
            f"{day}T{clock}+03:00 ({clock} at UTC+3)")
    if not 1900 <= value.year <= 2200:
        raise argparse.ArgumentTypeError(f"{text!r} is outside the years 1900 to 2200")
    return value
