"""The shipped dialplan (config/asterisk/extensions.conf) acts on every answer of the engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIALPLAN = ROOT / "config" / "asterisk" / "extensions.conf"

_PRIORITY_RE = re.compile(r"(?:exten\s*=>\s*(?P<exten>[^,]+),|same\s*=>\s*)"
                          r"(?P<prio>n\((?P<label>\w+)\)|n|\d+),(?P<app>.*)")
_COND_RE = re.compile(r'\$\["\$\{(\w+)\}" (!=|=) "([^"]*)"\]')


# ------------------------------- where the dispatch sends the caller


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


def _dispatch_from(label: str, variables: dict[str, str], ran: list[str] | None = None) -> str:
    """Where ``[acd-dispatch]`` sends the caller from ``label`` on, with these variables set by
    the engine: another context, ``Hangup()``, or ``dial`` (the next Dial()). The AGI
    applications run on the way are added to ``ran``."""
    lines = _extension("acd-dispatch", "s")
    labels = {name: i for i, (name, _) in enumerate(lines) if name}
    i = labels[label]
    for step in range(100):
        name, app = lines[i]
        if name == "dial" and step > 0:
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
        elif app.startswith("Dial(") and variables.get("DIALSTATUS") == "ANSWER" \
                and "g" not in _dial_options():
            return "h"  # without g, Asterisk hangs the caller up with the agent
        elif app.startswith("AGI(") and ran is not None:
            ran.append(app)  # the engine's answer is in ``variables``
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


def _dial_options() -> set[str]:
    """The option letters of the agent's Dial() (arguments in parentheses left out)."""
    [dial] = [app for label, app in _extension("acd-dispatch", "s") if label == "dial"]
    assert dial.startswith("Dial(") and dial.endswith(")")
    arguments = dial[len("Dial("):-1].split(",")
    assert arguments[:2] == ["${ACD_TARGET}", "${ACD_RING_TIMEOUT}"]
    options = ",".join(arguments[2:])
    while (bare := re.sub(r"\([^()]*\)", "", options)) != options:
        options = bare
    return set(options)


def test_dial_goes_on_in_the_dialplan_when_the_agent_hangs_up() -> None:
    """Dial has ``g`` (Asterisk: proceed at the next priority if the destination hangs up) and
    ``U`` (the answer report), so the documented ``talked`` branch really runs."""
    assert {"g", "U"} <= _dial_options()


def test_an_answered_call_reports_its_end_through_talked() -> None:
    """After Dial returns ANSWER (the agent hung up), the caller reaches ``talked``: the
    ``ended`` report names the call and the agent, and the engine's ``ended`` hangs up."""
    ran: list[str] = []
    assert _dispatch_from("dial", {"DIALSTATUS": "ANSWER", "ACD_RESULT": "ended"}, ran) == \
        "Hangup()"
    assert ran == ["AGI(${ACD_AGI}/ended,${ACD_CALL_ID},${ACD_AGENT})"]


def test_an_unanswered_dial_reports_the_status_and_redials_the_next_offer() -> None:
    """NOANSWER runs ``dialresult`` with the status and agent, then dials the engine's next
    offer; ``talked`` is not run for a call that was never answered."""
    ran: list[str] = []
    assert _dispatch_from("dial", {"DIALSTATUS": "NOANSWER", "ACD_TARGET": "PJSIP/1002"},
                          ran) == "dial"
    assert ran == ["AGI(${ACD_AGI}/dialresult,${ACD_CALL_ID},${DIALSTATUS},${ACD_AGENT})"]


def test_the_survey_follows_an_agents_hang_up_when_the_engine_asks() -> None:
    """With ``ACD_SURVEY=1`` after the ``ended`` report in ``talked`` the caller goes to
    ``[acd-survey]``, which runs the ``survey`` script with the call id, then hangs up."""
    ran: list[str] = []
    assert _dispatch_from("dial", {"DIALSTATUS": "ANSWER", "ACD_RESULT": "ended",
                                   "ACD_SURVEY": "1"}, ran) == "acd-survey"
    assert ran == ["AGI(${ACD_AGI}/ended,${ACD_CALL_ID},${ACD_AGENT})"]
    survey = [app for _, app in _extension("acd-survey", "s")]
    assert "AGI(${ACD_AGI}/survey,${ACD_CALL_ID})" in survey
    assert survey[-1] == "Hangup()"
    assert "Set(ACD_SURVEY=)" in [app for _, app in _extension("acd-inbound", "_X.")]
