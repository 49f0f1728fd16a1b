"""Regression tests for defects found reviewing the Asterisk shells and the live service."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from arikit import Rig, eventually

from acd.asterisk.agi.route import CallPath
from acd.asterisk.ari.calls import Phase
from acd.config.load import load_center
from acd.core.model import CallRequeued, OfferCallback
from acd.service.driver import RouterService
from acd.service.ivrsetup import load_ivr
from acd.service.metrics import ServiceMetrics
from acd.service.records import CallRecords, open_database
from acd.service.reload import ObserverGate, rebuild
from acd.service.state import AgentStateStore
from acd.testing.fake_ari import AgentScript

ROOT = Path(__file__).resolve().parents[1]
CENTER = ROOT / "config" / "center.yaml"
DIALPLAN = ROOT / "config" / "asterisk" / "extensions.conf"
AGENT = "msk-tech-ru-001"
AGENT_EP = "PJSIP/1001"
AGENT_CHANNEL = "PJSIP/1001-0000002a"


# ------------------------------------------------------------------ the shipped dialplan

_PRIORITY_RE = re.compile(r"(?:exten\s*=>\s*(?P<exten>[^,]+),|same\s*=>\s*)"
                          r"(?P<prio>n\((?P<label>\w+)\)|n|\d+),(?P<app>.*)")
_COND_RE = re.compile(r'\$\["\$\{(\w+)\}" (!=|=) "([^"]*)"\]')


def _extension(context: str, exten: str) -> list[tuple[str | None, str]]:
    """The (label, application) lines of one extension of extensions.conf, in order."""
    lines: list[tuple[str | None, str]] = []
    current = ""
    wanted = False
    for raw in DIALPLAN.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            current = line[1:-1]
            continue
        match = _PRIORITY_RE.match(line)
        if match is None or current != context:
            continue
        if match.group("exten") is not None:
            wanted = match.group("exten").strip() == exten
        if wanted:
            lines.append((match.group("label"), match.group("app")))
    return lines


def _dispatch_from(label: str, variables: dict[str, str]) -> str:
    """Where ``[acd-dispatch]`` sends the caller from ``label`` on, with these variables set by
    the engine: another context, ``Hangup()``, or ``dial`` (the next Dial())."""
    lines = _extension("acd-dispatch", "s")
    labels = {name: i for i, (name, _) in enumerate(lines) if name}
    i = labels[label]
    for _ in range(100):
        name, app = lines[i]
        if name == "dial" and i != labels[label]:
            return "dial"
        if app.startswith("GotoIf("):
            var, op, value = _COND_RE.search(app).groups()  # type: ignore[union-attr]
            holds = (variables.get(var, "") == value) == (op == "=")
            target = app.split("?", 1)[1].rstrip(")")
            if holds:
                if "," in target:
                    return target.split(",")[0]
                i = labels[target]
                continue
        elif app.startswith("Goto("):
            target = app[5:].rstrip(")")
            parts = target.split(",")
            if len(parts) == 3:
                return parts[0]
            i = 0 if parts == ["s", "1"] else labels[parts[-1]]
            continue
        elif app.startswith("Hangup("):
            return "Hangup()"
        elif app.startswith("AGI("):
            pass  # the engine's answer is in ``variables``
        i += 1
    raise AssertionError("the dispatch loops")


@pytest.mark.parametrize(("variables", "expected"), [
    ({"ACD_RESULT": "voicemail"}, "acd-voicemail"),
    ({"ACD_RESULT": "callback"}, "acd-callback"),
    ({}, "acd-fallback"),
    ({"ACD_TARGET": "PJSIP/1002"}, "dial"),
    ({"ACD_RESULT": "ended"}, "Hangup()"),
])
def test_dialplan_acts_on_every_result_after_a_refused_answer(variables: dict[str, str],
                                                              expected: str) -> None:
    """After the ``ended`` report in ``talked`` (a refused answer holds the caller again), the
    dialplan follows whatever the engine decided: overflow, fallback, redial or hang up."""
    assert _dispatch_from("talked", variables) == expected


# ------------------------------------------------------------------ agent codes after a reload

def _reordered_center(tmp_path: Path) -> Path:
    text = CENTER.read_text(encoding="utf-8")
    old = "pause_reasons: [break, lunch, training, meeting, coaching, technical, rona]"
    assert old in text
    path = tmp_path / "center.yaml"
    path.write_text(text.replace(
        old, "pause_reasons: [lunch, break, training, meeting, coaching, technical, rona]"),
        encoding="utf-8")
    return path


async def test_pause_codes_follow_the_reloaded_pause_reasons(tmp_path: Path) -> None:
    """After a reload that reorders pause_reasons, ``*531`` pauses with the new first reason."""
    center = load_center(CENTER)
    service = RouterService(center)
    path = CallPath(service, load_ivr(center, ROOT / "config" / "ivr"))
    rebuild(service, load_center(_reordered_center(tmp_path)), {}, ObserverGate(),
            lambda _agent: None)
    assert path.agents.apply(AGENT_CHANNEL, "login") == ("ok", "agent-loginok")
    assert path.agents.apply(AGENT_CHANNEL, "pause", "1")[0] == "ok"
    reasons = {a.agent_id: a.reason for a in service.router.agent_snapshot()}
    assert reasons[AGENT] == "lunch"
    service.close()


# ------------------------------------------------------------------ login endpoints

async def test_an_api_endpoint_does_not_outlive_the_login(tmp_path: Path) -> None:
    """A login from the phone after a logout uses the roster endpoint, not the endpoint an
    earlier API login gave (which reload and restart would otherwise ring)."""
    db: sqlite3.Connection = open_database(tmp_path / "acd.sqlite3")
    store = AgentStateStore(db)
    service = RouterService(load_center(CENTER))
    service.observe(store)
    service.login(AGENT, "PJSIP/hotdesk-7")
    store.set_endpoint(AGENT, "PJSIP/hotdesk-7")  # what the API does after its login
    assert store.endpoint(AGENT) == "PJSIP/hotdesk-7"
    service.logout(AGENT)
    service.login(AGENT)  # *51 from the agent's own phone
    assert store.endpoint(AGENT) is None
    service.close()
    db.close()


# ------------------------------------------------------------------ metrics

def test_an_agent_rejecting_the_call_keeps_its_failure_reason() -> None:
    """ARI reports a declined agent leg (cause 21) as ``rejected``; the metric keeps it."""
    metrics = ServiceMetrics(load_center(CENTER).config)
    metrics.observe(CallRequeued("c1", AGENT, "rejected", 1.0), 0.0)
    value = metrics.registry.get_sample_value(
        "acd_offer_failures_total", {"queue": "other", "reason": "rejected"})
    assert value == 1.0


# ------------------------------------------------------------------ ARI: music after the question

async def test_music_comes_back_when_an_offer_made_during_the_callback_question_fails(
) -> None:
    """An offer that arrives while the caller hears the callback question and is then withdrawn
    leaves the caller on hold with music, not in silence."""
    async with Rig() as rig:
        rig.fake.script_agent(AGENT_EP, AgentScript(answer_after=None))
        call_id = await rig.to_queue()
        await eventually(lambda: rig.in_router(call_id))
        call = rig.app.calls[call_id]
        hold = call.hold_bridge or ""
        asked = rig.prompt_count(call_id, "callback_offer")
        call.handle_command(OfferCallback(call_id, 300.0))
        await eventually(lambda: rig.prompt_count(call_id, "callback_offer") > asked)
        rig.service.login(AGENT)  # the router offers the call during the question
        await eventually(lambda: call.phase is Phase.RINGING, what="ringing")
        await rig.fake.send_dtmf(call_id, "2")  # no callback, thanks
        await eventually(lambda: call.ask_task is None, what="question over")
        rig.service.pause(AGENT, "break")  # the offer is withdrawn: back on hold
        assert call.phase is Phase.HOLD
        await eventually(lambda: rig.fake.bridges[hold].moh_class == "default",
                         timeout=1.0, what="music on hold again")


# ------------------------------------------------------------------ call records

class _Owner:
    """A call owner that accepts every command (the test drives the answers itself)."""

    def handle_command(self, command: object) -> None:
        """Nothing to carry out."""


async def test_an_adopted_call_keeps_its_wait_in_the_record(tmp_path: Path) -> None:
    """A caller re-queued with its original arrival (ARI cold start) is recorded with that
    arrival and the whole wait, as the router counts it."""
    db = open_database(tmp_path / "acd.sqlite3")
    records = CallRecords(db)
    service = RouterService(load_center(CENTER))
    service.observe(records)
    service.login(AGENT)
    service.call_arrived(_Owner(), "1795609297.5", "tech", "ru", "RU",
                         arrived_at=service.now() - 100.0)
    service.offer_answered("1795609297.5")
    service.hangup("1795609297.5")
    wait_s, arrival, answered = db.execute(
        "SELECT wait_s, arrival, answered FROM calls").fetchone()
    assert wait_s == pytest.approx(100.0, abs=1.0)
    assert answered - arrival == pytest.approx(100.0, abs=1.0)
    service.close()
    db.close()
