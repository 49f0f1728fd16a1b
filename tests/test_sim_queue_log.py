"""`acd sim run --queue-log`: Asterisk's queue_log replays with the staffing it records."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from acd.cli import main
from acd.config.load import LoadedCenter, load_center
from acd.errors import ConfigError
from sim.qlreplay import MemberMatcher, QueueLogOptions, load_plan, parse_queue_map
from sim.records import ABANDONED, ANSWERED, RunResult
from sim.run import RunSpec, default_scenario, run_one
from sim.staffing import StaffAction

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "queue_log.sample"
SAMPLE_MAP = "support_tech=tech,support_tech_uk=tech:uk,support_repair=repair,sales=orders"
EPOCH = 1772431200  # 2026-03-02 09:00 Moscow time, a Monday


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    return load_center(ROOT / "config" / "center.yaml")


def _write(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def _replay(log: Path, options: QueueLogOptions | None = None, seed: int = 7) -> RunResult:
    spec = RunSpec(str(default_scenario()), {}, queue_log_path=str(log),
                   queue_log_options=options or QueueLogOptions({"support": "tech"}))
    return run_one(spec, np.random.SeedSequence(seed))


def _calls(n: int, every_s: int, talk_s: int, member: str = "PJSIP/9999") -> list[str]:
    """``n`` RU calls to Asterisk queue ``support`` answered by ``member``, every ``every_s``."""
    lines = []
    for i in range(n):
        t = EPOCH + 10 + i * every_s
        lines += [f"{t}|c{i}|support|NONE|ENTERQUEUE||+79161234567|1",
                  f"{t + 5}|c{i}|support|{member}|CONNECT|5|x{i}|2",
                  f"{t + 5 + talk_s}|c{i}|support|{member}|COMPLETECALLER|5|{talk_s}|1"]
    return sorted(lines, key=lambda line: int(line.split("|")[0]))


def test_sample_replays_through_the_router_from_the_cli(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The sample queue_log runs from the CLI, reports its unmatched member and offers 8 calls."""
    code = main(["sim", "run", "--queue-log", str(SAMPLE), "--queue-map", SAMPLE_MAP, "-r", "1",
                 "-j", "1", "-q", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "replay of" in out and "8 calls" in out
    assert "warning: 1 queue_log member(s) match no roster agent" in out and "Agent/3001" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["overall"]["offered"]["mean"] == 8
    assert summary["overall"]["answered"]["mean"] >= 1


def test_strict_exits_2_listing_unmatched_members(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --strict a member that matches no roster agent exits 2 with file, line and name."""
    code = main(["sim", "run", "--queue-log", str(SAMPLE), "--queue-map", SAMPLE_MAP,
                 "--strict", "-q", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{SAMPLE}:37: agent" in err and "'Agent/3001'" in err


def test_member_interfaces_find_their_roster_agent(center: LoadedCenter) -> None:
    """PJSIP, SIP, Local and Agent interfaces, and agent ids, all reach the same roster agent."""
    matcher = MemberMatcher(center.agents)
    for member in ("PJSIP/1001", "SIP/1001", "Local/1001@agents", "Local/1001@agents/n",
                   "Agent/1001", "msk-tech-ru-001", "Agent/msk-tech-ru-001", "pjsip/1001"):
        assert matcher.match(member) == "msk-tech-ru-001", member
    assert matcher.match("PJSIP/2501") == "kyi-voc-001"
    assert matcher.match("PJSIP/3001") is None and matcher.match("Ivan Petrov") is None


def test_only_agents_the_log_adds_take_calls(tmp_path: Path) -> None:
    """One Kyiv member is added; the never-added Moscow agents, nearer to RU callers, take none."""
    log = _write(tmp_path / "queue_log", [
        f"{EPOCH}|NONE|support|PJSIP/2001|ADDMEMBER|", *_calls(20, 180, 60)])
    result = _replay(log)
    calls = result.calls
    answered = calls.outcome == ANSWERED
    assert answered.sum() == 20
    assert set(calls.site[answered]) == {calls.sites.index("kyiv")}
    moscow = result.agent_time.seconds[:, result.agent_time.sites.index("moscow"), :]
    assert moscow.sum() == 0  # no Moscow agent was ever logged in


def test_a_log_without_roster_members_answers_nothing(tmp_path: Path) -> None:
    """When the log names no roster agent, all 281 stay logged out and no call is answered."""
    log = _write(tmp_path / "queue_log", _calls(5, 60, 30))
    calls = _replay(log).calls
    assert len(calls.outcome) == 5 and not (calls.outcome == ANSWERED).any()


def test_a_static_member_answering_calls_is_logged_in_from_the_start(tmp_path: Path) -> None:
    """A member that answers calls without any ADDMEMBER (queues.conf) is replayed logged in."""
    log = _write(tmp_path / "queue_log", _calls(5, 120, 30, member="PJSIP/2001"))
    result = _replay(log)
    answered = result.calls.outcome == ANSWERED
    assert answered.sum() == 5
    assert set(result.calls.site[answered]) == {result.calls.sites.index("kyiv")}


def test_member_acting_before_being_added_was_logged_in_at_the_start(
        tmp_path: Path, center: LoadedCenter) -> None:
    """A pause, unpause or removal before any ADDMEMBER means the member was there at t = 0."""
    log = _write(tmp_path / "queue_log", [
        f"{EPOCH}|NONE|NONE|NONE|QUEUESTART|",
        f"{EPOCH + 60}|NONE|support|PJSIP/1001|PAUSE|lunch",
        f"{EPOCH + 90}|NONE|support|SIP/1002|UNPAUSE|Smoke",
        f"{EPOCH + 120}|NONE|support|PJSIP/1001|UNPAUSE|",
        f"{EPOCH + 300}|NONE|support|PJSIP/1001|REMOVEMEMBER|",
        f"{EPOCH + 400}|NONE|support|PJSIP/1003|PAUSE|meeting",
    ])
    cfg = center.config
    plan = load_plan(log, cfg, center.agents, QueueLogOptions({"support": "tech"}))
    assert plan.present_at_start == ("PJSIP/1001", "PJSIP/1003", "SIP/1002")
    assert [a for a in plan.timeline if a.agent == "msk-tech-ru-001"] == [
        StaffAction(0, "login", "msk-tech-ru-001"),
        StaffAction(60, "pause", "msk-tech-ru-001", "lunch"),
        StaffAction(120, "ready", "msk-tech-ru-001"),
        StaffAction(300, "logout", "msk-tech-ru-001")]
    # Paused when the log began, with a reason the config lacks: the default stands in.
    assert [a for a in plan.timeline if a.agent == "msk-tech-ru-002"] == [
        StaffAction(0, "login", "msk-tech-ru-002"),
        StaffAction(0, "pause", "msk-tech-ru-002", "break"),
        StaffAction(90, "ready", "msk-tech-ru-002")]
    strict = load_plan(log, cfg, center.agents,
                       QueueLogOptions({"support": "tech"}, logged_in_at_start=False))
    assert strict.present_at_start == () and strict.timeline == ()


def test_unknown_pause_reasons_use_the_configured_default(
        tmp_path: Path, center: LoadedCenter) -> None:
    """Reasons the config lacks become the default (break, or another one given); case is kept."""
    log = _write(tmp_path / "queue_log", [
        f"{EPOCH}|NONE|support|PJSIP/1001|ADDMEMBER|",
        f"{EPOCH + 10}|NONE|support|PJSIP/1001|PAUSE|Smoke",
        f"{EPOCH + 20}|NONE|support|PJSIP/1001|UNPAUSE|",
        f"{EPOCH + 30}|NONE|support|PJSIP/1001|PAUSE|Lunch",
    ])
    cfg = center.config
    plan = load_plan(log, cfg, center.agents, QueueLogOptions({"support": "tech"}))
    assert [a.reason for a in plan.timeline if a.action == "pause"] == ["break", "lunch"]
    assert plan.pause_defaulted == {"Smoke": 1}
    other = load_plan(log, cfg, center.agents,
                      QueueLogOptions({"support": "tech"}, default_pause_reason="meeting"))
    assert [a.reason for a in other.timeline if a.action == "pause"] == ["meeting", "lunch"]
    with pytest.raises(ConfigError, match="pause-default"):
        load_plan(log, cfg, center.agents,
                  QueueLogOptions({"support": "tech"}, default_pause_reason="nap"))


@pytest.mark.parametrize(("line", "where", "value"), [
    ("yesterday|c1|support|NONE|ENTERQUEUE||+79161234567|1", "epoch", "'yesterday'"),
    (f"{EPOCH + 9}|c0|support|NONE|ABANDON|1|1", "ABANDON", "'1|1'"),
    (f"{EPOCH + 9}|c1|billing|NONE|ENTERQUEUE||+79161234567|1", "queuename", "'billing'"),
    (f"{EPOCH + 9}|NONE|support|NONE|ADDMEMBER|", "agent", "'NONE'")])
def test_bad_lines_exit_2_with_file_line_and_value(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, where: str,
        value: str) -> None:
    """A bad epoch, a short ABANDON, an unmapped queue or a nameless member exit 2 with its line."""
    log = _write(tmp_path / "queue_log", [f"{EPOCH}|c0|support|NONE|ENTERQUEUE||+79161234567|1",
                                          line])
    code = main(["sim", "run", "--queue-log", str(log), "--queue-map", "support=tech", "-q",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{log}:2: {where}" in err and value in err


@pytest.mark.parametrize(("value", "words"), [
    ("support", "asterisk_queue=queue"), ("support=plumbing", "'plumbing'"),
    ("support=tech:xx", "'xx'"), ("support=tech:", "asterisk_queue=queue")])
def test_bad_queue_map_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               value: str, words: str) -> None:
    """A malformed --queue-map, or one naming an unknown queue or language, exits 2."""
    code = main(["sim", "run", "--queue-log", str(SAMPLE), "--queue-map", value, "-q",
                 "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--queue-map" in err and words in err


def test_queue_map_parses_languages() -> None:
    """``aq=queue:lang`` gives the queue and a per-queue language; plain entries only a queue."""
    assert parse_queue_map("a=tech, b = repair:uk,") == ({"a": "tech", "b": "repair"},
                                                         {"b": "uk"})
    assert parse_queue_map(None) == ({}, {})


def _synthetic_log(path: Path, agents: list[str], hours: float, seed: int) -> dict[str, int]:
    """A queue_log of a seeded FIFO M/M/c+M queue as Asterisk would write it; returns its counts.

    Agents ring 3 s, talk exponential 180 s, wrap up 30 s (the tech queue's); callers abandon
    after exponential 90 s. Half the members leave at mid-run with REMOVEMEMBER.
    """
    rng = np.random.default_rng(seed)
    horizon = hours * 3600
    arrivals = np.cumsum(rng.exponential(1 / 0.045, int(horizon * 0.06)))
    arrivals = arrivals[arrivals < horizon]
    leave = {a: (horizon / 2 if k % 2 else math.inf) for k, a in enumerate(agents)}
    free = dict.fromkeys(agents, 0.0)
    lines = [(0.0, f"NONE|support|{a}|ADDMEMBER|") for a in agents]
    lines += [(t, f"NONE|support|{a}|REMOVEMEMBER|") for a, t in leave.items() if t < horizon]
    counts = {"offered": 0, "answered": 0, "abandoned": 0}
    for i, t in enumerate(arrivals):
        patience = rng.exponential(90.0)
        talk = round(float(rng.exponential(180.0))) + 1
        number = f"+7916{rng.integers(1_000_000, 9_999_999)}"
        lines.append((t, f"c{i}|support|NONE|ENTERQUEUE||{number}|1"))
        # The member free first among those still in the queue then (FIFO: callers in order).
        options = [(max(t, free[a]), a) for a in agents if max(t, free[a]) < leave[a]]
        begin, agent = min(options) if options else (math.inf, "")
        counts["offered"] += 1
        if begin - t > patience:
            lines.append((t + patience, f"c{i}|support|NONE|ABANDON|1|1|{round(patience)}"))
            counts["abandoned"] += 1
            continue
        hold = round(begin + 3 - t)
        lines.append((begin + 3, f"c{i}|support|{agent}|CONNECT|{hold}|x{i}|3"))
        lines.append((begin + 3 + talk, f"c{i}|support|{agent}|COMPLETECALLER|{hold}|{talk}|1"))
        free[agent] = begin + 3 + talk + 30
        counts["answered"] += 1
    lines.sort(key=lambda item: item[0])
    _write(path, [f"{EPOCH + int(t)}|{text}" for t, text in lines])
    return counts


def test_a_synthetic_queue_log_round_trips(tmp_path: Path, center: LoadedCenter) -> None:
    """A seeded 4-hour queue_log replays with offered exact, answered within 3%, abandoned 10%."""
    tenured = [a for a in center.agents if a.group == "msk-tech-ru" and not a.newcomer][:12]
    log = tmp_path / "queue_log"
    truth = _synthetic_log(log, [a.endpoint for a in tenured], 4.0, seed=11)
    calls = _replay(log).calls
    answered = int((calls.outcome == ANSWERED).sum())
    abandoned = int((calls.outcome == ABANDONED).sum())
    assert truth["offered"] > 500 and truth["abandoned"] > 10
    assert len(calls.outcome) == truth["offered"]
    assert abs(answered - truth["answered"]) <= 0.03 * truth["answered"]
    assert abs(abandoned - truth["abandoned"]) <= max(5, 0.1 * truth["abandoned"])


def test_queue_log_options_without_a_queue_log_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--strict or --queue-map without --queue-log is refused rather than silently ignored."""
    assert main(["sim", "run", "--strict", "-q", "--out", str(tmp_path)]) == 2
    assert "need --queue-log" in capsys.readouterr().err


def test_queue_log_replay_takes_days_and_scale(tmp_path: Path, center: LoadedCenter) -> None:
    """--days 2 hours of a 4-hour queue_log replays its first half; --scale 0.5 about half of its
    calls, 2 about twice; and each replication draws the unobserved patience afresh."""
    tenured = [a for a in center.agents if a.group == "msk-tech-ru" and not a.newcomer][:12]
    log = tmp_path / "queue_log"
    truth = _synthetic_log(log, [a.endpoint for a in tenured], 4.0, seed=11)
    options = QueueLogOptions({"support": "tech"})

    def run(overrides: dict[str, float], seed: int = 7) -> RunResult:
        spec = RunSpec(str(default_scenario()), overrides, queue_log_path=str(log),
                       queue_log_options=options)
        return run_one(spec, np.random.SeedSequence(seed))

    half = run({"days": 2 / 24})
    assert (half.calls.arrival_s < 2 * 3600).all()
    assert len(half.calls) == pytest.approx(truth["offered"] / 2, rel=0.15)
    assert len(run({"volume_scale": 0.5}).calls) == pytest.approx(truth["offered"] / 2, rel=0.1)
    assert len(run({"volume_scale": 2.0}).calls) == pytest.approx(2 * truth["offered"], rel=0.05)
    assert not np.array_equal(run({}, seed=1).calls.wait_s, run({}, seed=2).calls.wait_s)
