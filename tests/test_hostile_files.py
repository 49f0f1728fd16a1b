"""Hostile input files: each is refused fast with a line naming the file, never a hang or a crash.

Cases: devices and FIFOs where a file is expected (directly and through a symlink), files over
their size cap (sparse, so they cost nothing), a /proc file that lies about its size, a CSV
field over the csv module's limit, replay arrivals spread over 1e18 seconds or in the years 1
and 9999, and YAML with a NUL, a control character or a 5,000-digit integer. Every library
call runs under a SIGALRM deadline so that a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from acd.config import files, yamlsafe
from acd.config.load import load_center
from acd.errors import ConfigError, Problem
from acd.runtime.ivrsetup import load_ivr
from acd.service.settings import load_settings
from ivr.known import known_from_center
from ivr.loader import load_flow
from sim.traffic.profile import read_bank_calls
from sim.traffic.queue_log import QueueLogMapping, load_queue_log
from sim.traffic.replay import load_call_log

ROOT = Path(__file__).resolve().parents[1]
CENTER = ROOT / "config" / "center.yaml"
CALL_LOG_HEADER = "arrival,caller,country,language,queue,talk_s,abandon_s,priority,wrap_s," \
    "customer_id\n"
#: Seconds any one hostile file may take to be refused (generous: the machine is shared).
DEADLINE_S = 20

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGALRM") or not hasattr(os, "mkfifo"),
                                reason="needs SIGALRM and FIFOs (POSIX)")


@contextmanager
def deadline(seconds: int = DEADLINE_S) -> Iterator[None]:
    """Fail with TimeoutError, even inside a blocking open or read, after ``seconds``."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError(f"not refused within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(load: Callable[[], object]) -> Problem:
    """The single (or first) problem ``load`` raises, within the deadline."""
    with deadline(), pytest.raises(ConfigError) as info:
        load()
    return info.value.problems[0]


def call_log(path: Path) -> object:
    return load_call_log(path, {"tech", "orders"}, {"ru", "en"}, {"RU", "GB"})


def queue_log(path: Path) -> object:
    return load_queue_log(path, QueueLogMapping({"tech": "tech"}), {"tech"}, {"ru"}, {"RU"})


def sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space."""
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


@pytest.fixture
def zero_link(tmp_path: Path) -> Path:
    """A symlink to /dev/zero, a file that reports 0 bytes and never ends."""
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    return link


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A FIFO no one writes to: opening it for reading would block forever."""
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    return path


# ------------------------------------------------------------------ devices, FIFOs, sockets

@pytest.mark.parametrize("reader", [yamlsafe.load_file, load_center, load_settings, call_log,
                                    queue_log, read_bank_calls])
def test_symlink_to_dev_zero_is_refused_as_a_device(zero_link: Path,
                                                    reader: Callable[[Path], object]) -> None:
    """Every reader refuses a symlink to /dev/zero as a device instead of reading it forever."""
    p = refused(lambda: reader(zero_link))
    assert (p.file, p.message) == (str(zero_link), "cannot read file: it is a device")


@pytest.mark.parametrize("reader", [yamlsafe.load_file, load_settings, call_log, queue_log,
                                    read_bank_calls])
def test_fifo_is_refused_without_blocking(fifo: Path, reader: Callable[[Path], object]) -> None:
    """Every reader refuses a FIFO at once (it is never opened for a blocking read)."""
    p = refused(lambda: reader(fifo))
    assert (p.file, p.message) == (str(fifo), "cannot read file: it is a FIFO (named pipe)")


def test_socket_is_refused(tmp_path: Path) -> None:
    """A Unix socket where a YAML file is expected is refused as a socket."""
    import socket

    path = tmp_path / "sock.yaml"
    if len(str(path)) > 100:
        pytest.skip("temporary path too long for a Unix socket")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        p = refused(lambda: yamlsafe.load_file(path))
    assert p.message == "cannot read file: it is a socket"


def test_flow_and_prompt_set_behind_a_device_or_fifo_are_refused(tmp_path: Path,
                                                                 fifo: Path) -> None:
    """A flows directory whose main.yaml is /dev/zero, or whose prompt set is a FIFO, is refused
    naming that file, so the service never starts on it."""
    center = load_center(CENTER)
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "main.yaml").symlink_to("/dev/zero")
    p = refused(lambda: load_ivr(center, flows))
    assert (p.file, p.message) == (str(flows / "main.yaml"), "cannot read file: it is a device")
    main = (ROOT / "config" / "ivr" / "main.yaml").read_text(encoding="utf-8")
    (flows / "main.yaml").unlink()
    (flows / "main.yaml").write_text(main, encoding="utf-8")
    (flows / "prompts.yaml").symlink_to(fifo)
    with deadline(), pytest.raises(ConfigError) as info:
        load_flow(flows / "main.yaml", known_from_center(center.config))
    assert any(q.file == str(flows / "prompts.yaml")
               and q.message == "cannot read file: it is a FIFO (named pipe)"
               for q in info.value.problems)


# ------------------------------------------------------------------ size caps

@pytest.mark.parametrize(("name", "reader", "cap"), [
    ("center.yaml", load_center, files.YAML_MAX_BYTES),
    ("calls.csv", call_log, files.CSV_MAX_BYTES),
    ("queue_log", queue_log, files.QUEUE_LOG_MAX_BYTES),
    ("bank.csv", read_bank_calls, files.CSV_MAX_BYTES),
])
def test_file_over_its_cap_is_refused_before_reading(tmp_path: Path, name: str,
                                                     reader: Callable[[Path], object],
                                                     cap: int) -> None:
    """A sparse file one byte over its kind's cap is refused with its size, nothing parsed."""
    path = sparse(tmp_path / name, cap + 1)
    p = refused(lambda: reader(path))
    assert (p.file, p.value, p.message) == (str(path), cap + 1,
                                            f"file is larger than {cap} bytes")


def test_file_that_lies_about_its_size_is_read_only_up_to_the_cap() -> None:
    """A /proc file reports 0 bytes: the cap is enforced on the bytes read, not on st_size."""
    proc = Path("/proc/self/maps")
    if not proc.exists():
        pytest.skip("no /proc")
    assert proc.stat().st_size == 0
    p = refused(lambda: files.read_capped(proc, 16))
    assert p.message == "file is larger than 16 bytes"
    with deadline(), pytest.raises(ConfigError, match="larger than 16 bytes"):
        list(files.text_lines(proc, 16))


# ------------------------------------------------------------------ CSV fields and ranges

def test_call_log_field_over_the_csv_limit_is_a_problem_on_its_line(tmp_path: Path) -> None:
    """A 200 KB field in a call log is a problem on its line, not a csv.Error traceback."""
    path = tmp_path / "calls.csv"
    path.write_text(CALL_LOG_HEADER + "0,,RU,ru,tech,60,,,,\n"
                    f"1,,RU,ru,tech,60,,,,{'x' * 200_000}\n", encoding="utf-8")
    p = refused(lambda: call_log(path))
    assert (p.file, p.line, p.path) == (str(path), 3, "<row>")
    assert p.message.startswith("unreadable CSV: field larger than field limit")


def test_bank_csv_field_over_the_csv_limit_is_a_problem(tmp_path: Path) -> None:
    """A 200 KB field in the bank CSV is a problem naming the file, not a traceback."""
    path = tmp_path / "bank.csv"
    path.write_text(f"DateTime,Calls\n2025-03-03T09:00:00Z,{'9' * 200_000}\n", encoding="utf-8")
    p = refused(lambda: read_bank_calls(path))
    assert p.file == str(path) and p.message.startswith("unreadable CSV: field larger")


def test_replay_arrivals_far_apart_are_refused_at_once(tmp_path: Path) -> None:
    """Arrivals 0 and 1e18 seconds are refused on the second row (they used to take 32 s and
    1.65 GB before an OverflowError)."""
    path = tmp_path / "calls.csv"
    path.write_text(CALL_LOG_HEADER + "0,,RU,ru,tech,60,,,,\n1e18,,RU,ru,tech,60,,,,\n",
                    encoding="utf-8")
    p = refused(lambda: call_log(path))
    assert (p.line, p.path, p.value) == (3, "arrival", "1e18")
    assert p.message == "more than 400 days after the first call (line 2); a replay covers " \
                        "one run"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+03:00", "9999-12-31T23:59:59-05:00"])
def test_replay_arrival_years_out_of_range_are_refused(tmp_path: Path, stamp: str) -> None:
    """ISO arrivals in the year 1 or 9999 are refused on their line (no OverflowError)."""
    path = tmp_path / "calls.csv"
    path.write_text(CALL_LOG_HEADER + f"{stamp},,RU,ru,tech,60,,,,\n", encoding="utf-8")
    p = refused(lambda: call_log(path))
    assert (p.line, p.path, p.value) == (2, "arrival", stamp)
    assert p.message == "must fall in the years 1900 to 2200"


def test_queue_log_epochs_far_apart_are_refused(tmp_path: Path) -> None:
    """queue_log lines 1e18 seconds apart are refused, naming the late line."""
    path = tmp_path / "queue_log"
    path.write_text("0|c1|tech|NONE|ENTERQUEUE||+79161234567|1\n"
                    "1000000000000000000|c1|tech|NONE|ABANDON|1|1|1\n", encoding="utf-8")
    p = refused(lambda: queue_log(path))
    assert (p.line, p.path) == (2, "epoch")
    assert p.message.startswith("more than 400 days after the log's first line")


# ------------------------------------------------------------------ hostile YAML, end to end

@pytest.mark.parametrize(("text", "message"), [
    ("center:\n  name: \"a\x00b\"\n", "invalid YAML: character U+0000 is not allowed"),
    ("center:\n  name: a\x1bb\n", "invalid YAML: character U+001B is not allowed"),
    ("center:\n  name: " + "9" * 5000 + "\n", "invalid YAML: integer of 5000 characters"),
])
def test_acd_check_of_hostile_yaml_exits_2_with_file_and_line(tmp_path: Path, text: str,
                                                            message: str) -> None:
    """`acd check` of a center with a NUL, an escape character or a 5,000-digit integer exits 2
    with file:line and no traceback."""
    path = tmp_path / "center.yaml"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "acd", "check", str(path)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:2: <root>: {message}" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_yaml_bomb_in_a_file_is_still_refused(tmp_path: Path) -> None:
    """A billion-laughs file is refused through the capped reader as before."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    p = refused(lambda: yamlsafe.load_file(path))
    assert p.file == str(path) and "alias bomb" in p.message


def test_serve_with_main_flow_behind_dev_zero_exits_2(tmp_path: Path) -> None:
    """`acd serve` whose main.yaml is a symlink to /dev/zero exits 2 naming it, at once."""
    flows = tmp_path / "ivr"
    flows.mkdir()
    for name in ("callback.yaml", "prompts.yaml"):
        (flows / name).write_bytes((ROOT / "config" / "ivr" / name).read_bytes())
    (flows / "main.yaml").symlink_to("/dev/zero")
    settings = tmp_path / "service.yaml"
    settings.write_text(f"center: {CENTER}\nflows: {flows}\nagi: {{port: 0}}\n"
                        "http: {port: 0}\nrecords: {database: acd.sqlite3}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "acd", "serve", "--config", str(settings)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr
    assert f"{flows / 'main.yaml'}: <root>: cannot read file: it is a device" in proc.stderr
    assert "Traceback" not in proc.stderr
