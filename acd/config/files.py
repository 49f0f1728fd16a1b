"""Opening input files safely: regular files only, and never more bytes than a cap per kind.

Every file the project reads (config, flows, prompts, scenarios, traffic files, call logs,
queue_logs, the bank CSV, service settings) goes through :func:`open_regular`. A device, a
FIFO or a socket is refused before a byte is read (a FIFO is opened non-blocking, so a
missing writer cannot hang us), and a file is read with a hard cap rather than trusting its
size: ``/dev/zero`` reports 0 bytes and never ends. The caps are documented in
docs/operations.md ("Limits").
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from acd.errors import ConfigError, Problem

_MB = 1024 * 1024
#: Largest YAML file: center config, flow, prompt set, scenario, traffic spec, settings.
YAML_MAX_BYTES = 4 * _MB
#: Largest call-log CSV or bank CSV.
CSV_MAX_BYTES = 100 * _MB
#: Largest Asterisk queue_log.
QUEUE_LOG_MAX_BYTES = 100 * _MB
#: Longest CSV field (the ``csv`` module's own limit; a longer one is a problem on its line).
CSV_FIELD_MAX_BYTES = 128 * 1024
#: Bytes read at a time while streaming a capped file.
_CHUNK = 1 << 20


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words (``a FIFO (named pipe)``, ...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _refuse(path: str | os.PathLike[str], message: str, value: object = None) -> ConfigError:
    return ConfigError([Problem(os.fspath(path), "<root>", value, message)])


def _too_large(path: str | os.PathLike[str], cap: int, size: int | None = None) -> ConfigError:
    return _refuse(path, f"file is larger than {cap} bytes", size)


def open_regular(path: str | os.PathLike[str], cap: int) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file no larger than ``cap`` bytes.

    Symlinks are followed and the file they reach is checked. Raises :class:`ConfigError`
    naming the file for anything else (missing, a directory, a device, a FIFO, a socket, too
    large, unreadable). The size is checked again while reading by :func:`read_capped`.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # refused before open: opening a socket or a tape is not free
            raise _refuse(path, f"cannot read file: it is {file_kind(mode)}")
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise _refuse(path, f"cannot read file: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)  # the file we opened, not the one stat() saw: it may have been swapped
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"cannot read file: it is {file_kind(st.st_mode)}")
        if st.st_size > cap:
            raise _too_large(path, cap, st.st_size)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path: str | os.PathLike[str], cap: int) -> bytes:
    """All bytes of the regular file ``path``, refused when more than ``cap`` (never reads more)."""
    with open_regular(path, cap) as f:
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise _refuse(path, f"cannot read file: {exc.strerror}") from exc
    if len(data) > cap:
        raise _too_large(path, cap)
    return data


def read_text(path: str | os.PathLike[str], cap: int = YAML_MAX_BYTES, *,
              encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of the regular file ``path`` (at most ``cap`` bytes), decoded as ``encoding``.

    Bytes that are not valid in ``encoding`` are a problem naming the byte offset (unless
    ``errors`` says otherwise).
    """
    data = read_capped(path, cap)
    try:
        return data.decode(encoding, errors)
    except UnicodeDecodeError as exc:
        raise _refuse(path, f"file is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc


def text_lines(path: str | os.PathLike[str], cap: int, *,
               encoding: str = "utf-8-sig") -> Iterator[str]:
    """The lines of the regular file ``path`` read as a stream (for ``csv``), at most ``cap``
    bytes in all; the file is refused mid-way when it grows past the cap while being read."""
    f = open_regular(path, cap)
    with io.TextIOWrapper(io.BufferedReader(_Capped(f, cap, path)), encoding=encoding,
                          newline="") as text:
        try:
            yield from text
        except UnicodeDecodeError as exc:
            raise _refuse(path, f"file is not UTF-8 text: {exc.reason}") from exc
        except OSError as exc:
            raise _refuse(path, f"cannot read file: {exc.strerror}") from exc


class _Capped(io.RawIOBase):
    """A raw reader over ``f`` that refuses to return more than ``cap`` bytes in all."""

    def __init__(self, f: BinaryIO, cap: int, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self._f, self._left, self._cap, self._path = f, cap, cap, path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), _CHUNK, self._left + 1)
        data = self._f.read(want)
        if len(data) > self._left:
            raise _too_large(self._path, self._cap)
        self._left -= len(data)
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()

