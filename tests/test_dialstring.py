"""One dial-string grammar: what `acd check` accepts is exactly what the drivers dial."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from configkit import REFERENCE, check_broken, line_after, reference_data
from hypothesis import given, settings
from hypothesis import strategies as st

from acd.callbacks.dialler import dial_string, trunk_problem
from acd.config.load import center_from_data, load_center
from acd.core.dialstring import DIAL_STRING, MAX_LENGTH, dial_string_problem, is_dial_string
from acd.core.dialstring import offer_dialable as _dialable
from acd.service.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]

#: What Asterisk's channel drivers accept, one destination each.
ACCEPTED = [
    "PJSIP/1001",
    "PJSIP/1001@kyiv",
    "PJSIP/kyiv/sip:1001@10.0.0.5:5060",
    "PJSIP/kyiv/sip:1001@10.0.0.5:5060;transport=tcp",
    "PJSIP/kyiv/sips:1001@pbx.kyiv.example.com",
    "PJSIP/trunk/sip:+380441234567@[2001:db8::5]:5061",
    "PJSIP/+380441234567@trunk",
    "PJSIP/msk-tech-ru-001",
    "pjsip/1001",
    "SIP/1001",
    "SIP/1001@moscow",
    "SIP/trunk/79161234567",
    "SIP/10.0.0.5:5060/1001",
    "IAX2/kyiv/1001",
    "IAX2/acd:s3cret@kyiv.example.com:4569/1001@agents",
    "Local/1001@agents",
    "Local/1001@agents/n",
    "Local/msk-tech-ru-001@acd-agents/nj",
    "Local/*51@acd-agent-codes",
    "Local/1001",
]

#: Refused, with a word of the reason each gets.
REFUSED = [
    ("PJSIP/1001&PJSIP/1002", "'&'"),  # a second destination
    ("PJSIP/1001,30,U(x)", "','"),  # Dial()'s own arguments
    ("PJSIP/1001|30", "'|'"),  # the old argument separator
    ("Local/1001@agents/n(x)", "'('"),
    ("PJSIP/1001)", "')'"),
    ("PJSIP/1001^x", "'^'"),
    ("PJSIP/${EVIL}", "'$'"),
    ("PJSIP/$[1+1]", "'$'"),
    ('PJSIP/"1001"', "'\"'"),
    ("PJSIP/'1001'", '"\'"'),
    ("PJSIP/1001 ", "' '"),
    ("PJSIP/10 01", "' '"),
    ("PJSIP/1001\t", "'\\t'"),
    ("PJSIP/1001\r\nAction: Hangup", "'\\r'"),
    ("PJSIP/1001\x00", "'\\x00'"),
    ("PJSIP/1001\x7f", "'\\x7f'"),
    ("PJSIP/1001\\", "'\\\\'"),
    ("PJSIP/" + "1" * MAX_LENGTH, f"longer than {MAX_LENGTH}"),
    ("PJSIP/", "not a PJSIP dial string"),
    ("PJSIP", "not Technology/resource"),
    ("1001", "not Technology/resource"),
    ("", "not Technology/resource"),
    ("PSJIP/1001", "unknown technology 'PSJIP'"),
    ("DAHDI/g1/1001", "unknown technology"),
    ("PJSIP/1001@", "not a PJSIP dial string"),
    ("PJSIP/kyiv/1001", "not a PJSIP dial string"),  # a URI must be sip: or sips:
    ("PJSIP/kyiv/sip:", "not a PJSIP dial string"),
    ("Local/@agents", "not a Local dial string"),
    ("Local/1001@agents/x", "not a Local dial string"),
    ("Local/1001@agents/n/n", "not a Local dial string"),
    ("SIP/+7916@@x", "not a SIP dial string"),
    ("IAX2/", "not a IAX2 dial string"),
    ("PJSIP/1001é", "not a PJSIP dial string"),
    ("ſIP/1001", "unknown technology"),  # case-folds to "sip" in Unicode, not in Asterisk
]

#: Characters that must never reach Dial(), ARI or AMI inside one dial string.
INJECTION = set("&,|()^$\"'`\\{}<>!")


@pytest.mark.parametrize("value", ACCEPTED)
def test_accepted_dial_strings(value: str) -> None:
    """Each form Asterisk accepts for PJSIP, SIP, IAX2 and Local passes both entry points."""
    assert dial_string_problem(value) is None
    assert is_dial_string(value)


@pytest.mark.parametrize(("value", "reason"), REFUSED)
def test_refused_dial_strings_say_why(value: str, reason: str) -> None:
    """Injection characters, unknown technologies and malformed resources are refused."""
    why = dial_string_problem(value)
    assert why is not None and reason in why, why
    assert not is_dial_string(value)


@settings(max_examples=400, deadline=None)
@given(st.from_regex(DIAL_STRING, fullmatch=True))
def test_anything_the_grammar_generates_is_free_of_injection(value: str) -> None:
    """Every string of the grammar is one destination: no separators, quotes, spaces, controls."""
    if len(value) > MAX_LENGTH:
        assert not is_dial_string(value)
        return
    assert is_dial_string(value) and dial_string_problem(value) is None
    assert not INJECTION.intersection(value), value
    assert "${" not in value and "$[" not in value
    assert all(ch.isprintable() and not ch.isspace() and ch.isascii() for ch in value), value


_NASTY = st.sampled_from(sorted(INJECTION | set(" \t\r\n\x00\x1b\x7f\u2028é")))
_PLAIN = st.sampled_from(string.ascii_letters + string.digits + "/@:._-+*#;=[]")


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["PJSIP/", "SIP/", "IAX2/", "Local/", "pjsip/", ""]),
       st.lists(st.one_of(_PLAIN, _PLAIN, _PLAIN, _NASTY, st.characters()), max_size=60))
def test_both_entry_points_agree_and_refuse_injection(prefix: str, chars: list[str]) -> None:
    """On any text the two checks agree, and whatever passes holds no injection character."""
    value = prefix + "".join(chars)
    accepted = is_dial_string(value)
    assert accepted == (dial_string_problem(value) is None), value
    if accepted:
        assert not INJECTION.intersection(value), value
        assert all(ch.isprintable() and not ch.isspace() for ch in value), value


def test_every_endpoint_of_the_reference_center_is_dialable() -> None:
    """All 281 agents of config/center.yaml pass the grammar and the FastAGI path's check."""
    agents = load_center(REFERENCE).agents
    assert len(agents) == 281
    for agent in agents:
        assert dial_string_problem(agent.endpoint) is None, agent.endpoint
        assert _dialable(agent.id, agent.endpoint), agent.endpoint


def test_the_shipped_callback_trunk_is_a_dial_string() -> None:
    """The shipped service settings' callback trunk fills in to a dial string of the grammar."""
    trunk = load_settings(ROOT / "config" / "service.yaml", {}).callbacks.trunk
    assert trunk_problem(trunk) is None
    assert is_dial_string(dial_string(trunk, "+380441234567"))


@pytest.mark.parametrize("template", ["PJSIP/{number}@trunk", "SIP/trunk/{digits}",
                                      "PJSIP/gw/sip:{digits}@10.0.0.9:5060", "Local/{digits}@out/n",
                                      "IAX2/gw/{digits}@out"])
def test_trunk_templates_of_the_grammar_dial_any_number(template: str) -> None:
    """A trunk template accepted by the settings gives a dial string for short and long numbers."""
    assert trunk_problem(template) is None
    for number in ("+380441", "+380441234567", "+123456789012345"):
        assert is_dial_string(dial_string(template, number))


@pytest.mark.parametrize(("template", "reason"), [
    ("PJSIP/trunk", "{number} or {digits}"),
    ("PJSIP/{number}@trunk,30", "','"),
    ("SIP/{number}", "not a SIP dial string"),  # a peer name cannot start with '+'
    ("PJSIP/{digits}@" + "t" * 120, "longer than"),
    ("Local/{digits}@out/n(x)", "'('"),
])
def test_trunk_templates_outside_the_grammar_are_refused(template: str, reason: str) -> None:
    """The settings refuse a trunk that dial_string would refuse at every callback attempt."""
    why = trunk_problem(template)
    assert why is not None and reason in why, why
    with pytest.raises(ValueError):
        dial_string(template, "+380441234567")


# --- acd check and run time agree -----------------------------------------------------------


@pytest.mark.parametrize("template", ["Local/{ext}@agents/n", "PJSIP/kyiv/sip:{ext}@10.0.0.5:5060",
                                      "PJSIP/{ext}@kyiv", "Local/{id}@acd-agents", "SIP/{ext}"])
def test_templates_check_accepts_are_dialled_at_run_time(template: str) -> None:
    """A group endpoint template `acd check` accepts gives endpoints the FastAGI path dials."""
    data = reference_data()
    data["agent_groups"]["kyi-voc"]["endpoint"] = template
    agents = [a for a in center_from_data(data, "center.yaml").agents if a.group == "kyi-voc"]
    assert agents
    for agent in agents:
        assert _dialable(agent.id, agent.endpoint), agent.endpoint


@pytest.mark.parametrize(("template", "reason"), [
    ("PJSIP/{ext}&PJSIP/9999", "'&'"),
    ("Local/{ext}@agents/n,30", "','"),
    ("PJSIP/{ext} ", "' '"),
    ("PJSIP/${{ext}}", "'$'"),
    ("PSJIP/{ext}", "unknown technology 'PSJIP'"),
    ("PJSIP/{id}/{ext}", "not a PJSIP dial string"),
])
def test_check_refuses_templates_run_time_could_not_dial(
        template: str, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`acd check` exits 2 and prints file:line: path: message (got value) for the template."""
    data: dict[str, Any] = reference_data()
    data["agent_groups"]["kyi-voc"]["endpoint"] = template
    result = check_broken(tmp_path, data, capsys, monkeypatch)
    assert len(result.problems) == 1
    p = result.problem("agent_groups.kyi-voc.endpoint")
    assert p.value == template
    assert reason in p.message and "kyi-voc-001" in p.message
    assert p.line == line_after(result.text, "agent_groups:", "kyi-voc:", "endpoint:")
    printed = f"{result.path}:{p.line}: agent_groups.kyi-voc.endpoint: "
    assert printed in result.stderr
    # The run-time check refuses the same endpoint: no config reaches an offer it cannot dial.
    endpoint = template.format(id="kyi-voc-001", ext="1")
    assert not _dialable("kyi-voc-001", endpoint)
