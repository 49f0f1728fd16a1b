"""The shipped dialplan (config/asterisk/extensions.conf) acts on every answer of the engine."""

from __future__ import annotations

import re
from collections.abc import Callable
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


#: An engine's answer to one AGI request: the variables it set (``AGISTATUS`` included,
#: ``SUCCESS`` unless said), given the address (``${ACD_AGI}`` or ``${ACD_AGI_STANDBY}``) and
#: the request as the dialplan wrote it.
Engine = Callable[[str, str], dict[str, str]]


def _globals() -> dict[str, str]:
    """The ``[globals]`` of extensions.conf."""
    out: dict[str, str] = {}
    current = ""
    for raw in DIALPLAN.read_text(encoding="utf-8").splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            current = line[1:-1]
        elif current == "globals" and "=" in line:
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def _expand(text: str, variables: dict[str, str]) -> str:
    """``${NAME}`` replaced by its value (empty when unset)."""
    return re.sub(r"\$\{(\w+)\}", lambda m: variables.get(m.group(1), ""), text)


def _holds(condition: str, variables: dict[str, str]) -> bool:
    """A GotoIf condition: ``$["${X}" = "v"]``, ``!=``, or a numeric ``$[${X} > ${Y}]``."""
    match = _COND_RE.search(condition)
    if match is not None:
        var, op, value = match.groups()
        return (variables.get(var, "") == value) == (op == "=")
    numeric = re.fullmatch(r"\$\[(.+) > (.+)\]", condition)
    assert numeric is not None, condition
    left, right = (int(_expand(side, variables)) for side in numeric.groups())
    return left > right


def _agi_request(address: str, args: list[str]) -> str:
    """``AGI(<address>/<script>,<args>)`` as Asterisk runs it (trailing empty arguments
    left out: the engine reads an absent argument as empty)."""
    while args and args[-1] == "":
        args = args[:-1]
    return f"AGI({address}/{','.join(args)})"


def _run_agi_subroutine(args: list[str], variables: dict[str, str], ran: list[str] | None,
                        engine: Engine | None) -> None:
    """``Gosub(acd-agi,s,1(args))``: run ``[acd-agi]`` with ``ARG1``.. bound."""
    lines = _extension("acd-agi", "s")
    labels = {name: i for i, (name, _) in enumerate(lines) if name}
    local = {**variables, **{f"ARG{n}": a for n, a in enumerate(args, start=1)}}
    i = 0
    while True:
        _, app = lines[i]
        if app.startswith("AGI("):
            address, _, _ = app[len("AGI("):].partition("/")
            request = _agi_request(address, [re.sub(r"\$\{ARG(\d)\}", lambda m: local.get(
                f"ARG{m.group(1)}", ""), a) for a in app[len("AGI("):-1].partition("/")[2]
                .split(",")])
            if ran is not None:
                ran.append(request)
            answer = engine(address, request) if engine is not None else {}
            variables["AGISTATUS"] = local["AGISTATUS"] = "SUCCESS"
            variables.update(answer)
            local.update(answer)
        elif app.startswith("GotoIf("):
            condition, target = app[len("GotoIf("):-1].split("?", 1)
            if _holds(condition, local):
                i = labels[target]
                continue
        elif app.startswith("Return("):
            return
        i += 1


def _dispatch_from(label: str, variables: dict[str, str], ran: list[str] | None = None,
                   engine: Engine | None = None) -> str:
    """Where ``[acd-dispatch]`` sends the caller from ``label`` on, with these variables set by
    the engine: another context, ``Hangup()``, or ``dial`` (the next Dial()). The AGI
    requests made on the way (through ``[acd-agi]``) are added to ``ran``; ``engine`` answers
    them (by default each answer sets ``variables`` again)."""
    if engine is None:
        answer = dict(variables)
        engine = lambda address, request: answer  # noqa: E731
    variables = {**_globals(), **variables}
    lines = _extension("acd-dispatch", "s")
    labels = {name: i for i, (name, _) in enumerate(lines) if name}
    i = labels[label] if label else 0
    for step in range(1000):
        name, app = lines[i]
        if name == "dial" and step > 0:
            return "dial"
        if app.startswith("GotoIf("):
            condition, target = app[len("GotoIf("):-1].split("?", 1)
            if _holds(condition, variables):
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
        elif app.startswith("Set("):
            name_, _, value = app[len("Set("):-1].partition("=")
            expression = re.fullmatch(r"\$\[(.+) \+ (\d+)\]", value)
            variables[name_] = (str(int(_expand(expression.group(1), variables))
                                    + int(expression.group(2)))
                                if expression else _expand(value, variables))
        elif app.startswith("Gosub(acd-agi,s,1("):
            args = app[len("Gosub(acd-agi,s,1("):-2].split(",")
            _run_agi_subroutine(args, variables, ran, engine)
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


# ------------------------------- two sites: the inter-site trunk samples

ASTERISK = ROOT / "config" / "asterisk"


def _sections(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """(section, type) -> its settings, of an Asterisk config file with repeated sections."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    name, body = "", {}
    for raw in [*path.read_text(encoding="utf-8").splitlines(), "[]"]:
        line = raw.split(";", 1)[0].strip()
        if line.startswith("["):
            if name:
                out[name, body.get("type", "")] = body
            name, body = line[1:-1], {}
        elif "=" in line:
            key, _, value = line.partition("=")
            body[key.strip()] = value.strip()
    return out


def test_the_two_site_samples_agree_on_the_trunk() -> None:
    """The Moscow PBX's trunk template names the endpoint of the pjsip sample, whose calls
    enter a context that only rings a local extension; the two-site settings pass the check."""
    from acd.service.settings import load_settings

    env = {f"ACD_ARI_{kind}_{site}": "x" for kind in ("USER", "PASSWORD")
           for site in ("MSK", "KYIV")}
    settings = load_settings(ROOT / "config" / "service-two-sites.yaml", env)
    msk = next(p for p in settings.pbxs if p.name == "msk")
    endpoint = msk.settings.trunks["kyiv"].partition("@")[2]
    pjsip = _sections(ASTERISK / "pjsip-intersite.conf")
    assert pjsip[endpoint, "endpoint"]["context"] == "acd-intersite"
    assert pjsip[endpoint, "aor"]["contact"].startswith("sip:")
    assert pjsip[endpoint, "identify"]["endpoint"] == endpoint
    dialplan = [line.split(";", 1)[0].strip() for line in
                (ASTERISK / "extensions-intersite.conf").read_text(encoding="utf-8").splitlines()]
    body = dialplan[dialplan.index("[acd-intersite]") + 1:]
    assert [line for line in body if line.startswith("exten")] == [
        "exten => _X.,1,NoOp(ACD: agent ${EXTEN} rung from the other site)"]
    assert "same => n,Dial(PJSIP/${EXTEN})" in body


# ------------------------------- two routers: the active one, then the standby

STANDBY = {"ACD_AGI_STANDBY": "agi://10.0.0.2:4573"}


def test_a_request_the_router_cannot_take_goes_to_the_standby() -> None:
    """When nothing answers at ``ACD_AGI`` (AGISTATUS FAILURE) the same request goes to
    ``ACD_AGI_STANDBY``, and its answer is acted on (here: the next offer is dialled)."""
    ran: list[str] = []

    def engine(address: str, request: str) -> dict[str, str]:
        if address == "${ACD_AGI}":
            return {"AGISTATUS": "FAILURE"}
        return {"ACD_TARGET": "PJSIP/1002"}

    where = _dispatch_from("dial", {**STANDBY, "DIALSTATUS": "NOANSWER"}, ran, engine)
    assert where == "dial"
    assert ran == ["AGI(${ACD_AGI}/dialresult,${ACD_CALL_ID},${DIALSTATUS},${ACD_AGENT})",
                   "AGI(${ACD_AGI_STANDBY}/dialresult,${ACD_CALL_ID},${DIALSTATUS},"
                   "${ACD_AGENT})"]


def test_an_engine_that_answered_is_never_asked_twice() -> None:
    """A router that answered and decided nothing (SUCCESS) is not retried at the standby:
    a call without a call id goes to the fallback."""
    ran: list[str] = []
    assert _dispatch_from("", STANDBY, ran, lambda address, request: {}) == "acd-fallback"
    assert ran == []  # nothing decided, no call id: nothing to re-enter


def test_a_held_caller_whose_router_died_re_enters_at_the_standby() -> None:
    """The router died holding the call (nothing decided, ``ACD_CALL_ID`` set): ``route``
    is asked again with the call id and arrival, once a second while the standby takes
    over, and the standby's offer is dialled."""
    ran: list[str] = []
    tries = iter(range(100))

    def engine(address: str, request: str) -> dict[str, str]:
        if address == "${ACD_AGI}" or next(tries) < 2:  # dead; the standby starts up
            return {"AGISTATUS": "FAILURE"}
        return {"ACD_TARGET": "PJSIP/1002", "ACD_AGENT": "msk-tech-ru-002"}

    held = {**STANDBY, "ACD_CALL_ID": "1795609297.13", "ACD_ARRIVAL": "1795609290",
            "ACD_REENTRY": "0"}
    assert _dispatch_from("", held, ran, engine) == "dial"
    reentry = "route,,${ACD_CALL_ID},${ACD_ARRIVAL}"
    assert ran == [f"AGI(${{ACD_AGI}}/{reentry})", f"AGI(${{ACD_AGI_STANDBY}}/{reentry})"] * 3


def test_a_re_entry_nobody_takes_ends_in_the_fallback() -> None:
    """Re-entry is bounded: with neither router answering the caller reaches the fallback
    after ``ACD_REENTRY_TRIES`` tries; a router that does not know the call empties
    ``ACD_CALL_ID`` and the caller goes to the fallback at once."""
    ran: list[str] = []
    held = {**STANDBY, "ACD_CALL_ID": "1795609297.13", "ACD_ARRIVAL": "1795609290",
            "ACD_REENTRY": "0"}
    down = _dispatch_from("", held, ran, lambda address, request: {"AGISTATUS": "FAILURE"})
    assert down == "acd-fallback"
    assert len(ran) == 2 * int(_globals()["ACD_REENTRY_TRIES"])
    ran.clear()
    unknown = _dispatch_from("", held, ran, lambda address, request: {"ACD_CALL_ID": ""})
    assert unknown == "acd-fallback" and len(ran) == 1


def test_without_a_standby_a_held_caller_of_a_dead_router_goes_to_the_fallback() -> None:
    """With one router (``ACD_AGI_STANDBY`` empty) a caller whose router died holding them
    takes the fallback at once, with no re-entry, as before there were two routers."""
    ran: list[str] = []
    held = {"ACD_CALL_ID": "1795609297.13", "ACD_ARRIVAL": "1795609290", "ACD_REENTRY": "0"}
    assert _dispatch_from("", held, ran, lambda address, request: {}) == "acd-fallback"
    assert ran == []


def test_inbound_calls_carry_their_arrival_into_route() -> None:
    """``[acd-inbound]`` sets ``ACD_ARRIVAL`` (the call's entry into the ACD) and the re-entry
    counter before the first ``route`` request, which goes through ``[acd-agi]``."""
    apps = [app for _, app in _extension("acd-inbound", "_X.")]
    route = apps.index("Gosub(acd-agi,s,1(route,${EXTEN}))")
    assert "Set(ACD_ARRIVAL=${EPOCH})" in apps[:route]
    assert "Set(ACD_REENTRY=0)" in apps[:route]
    assert _globals()["ACD_AGI_STANDBY"] == ""  # one router unless configured


def test_the_survey_follows_an_agents_hang_up_when_the_engine_asks() -> None:
    """With ``ACD_SURVEY=1`` after the ``ended`` report in ``talked`` the caller goes to
    ``[acd-survey]``, which runs the ``survey`` script with the call id, then hangs up."""
    ran: list[str] = []
    assert _dispatch_from("dial", {"DIALSTATUS": "ANSWER", "ACD_RESULT": "ended",
                                   "ACD_SURVEY": "1"}, ran) == "acd-survey"
    assert ran == ["AGI(${ACD_AGI}/ended,${ACD_CALL_ID},${ACD_AGENT})"]
    survey = [app for _, app in _extension("acd-survey", "s")]
    assert "Gosub(acd-agi,s,1(survey,${ACD_CALL_ID}))" in survey
    assert survey[-1] == "Hangup()"
    assert "Set(ACD_SURVEY=)" in [app for _, app in _extension("acd-inbound", "_X.")]
