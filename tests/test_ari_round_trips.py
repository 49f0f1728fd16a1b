"""REST requests per routed call over ARI, and the ARRAY() writes that save some of them."""

from __future__ import annotations

import re

import pytest
from arikit import RU_CALLER, Rig, eventually
from hypothesis import given
from hypothesis import strategies as st

from acd.asterisk import variables
from acd.asterisk.ari.calls import HOLD_PREFIX
from acd.testing.app_args import app_args, array_writes
from acd.testing.fake_ari import FakeRequest

AGENT = "msk-tech-ru-001"
_IDS = re.compile(r"acd-(?:hold|talk|agent)-[A-Za-z0-9.-]+|[0-9]{6,}\.[0-9]+")


def kind(request: FakeRequest) -> str:
    """The request with its ids replaced, and the variable it sets if any."""
    variable = request.params.get("variable")
    return f"{request.method} {_IDS.sub('{id}', request.path)}" + (
        f" {variable}" if variable else "")


async def test_routed_call_makes_exactly_these_requests_after_the_ivr() -> None:
    """From the hold to the clean-up a routed call costs 11 REST requests: the queue marks in
    one ARRAY() write, no music stop before the holding bridge goes, and the talking mark
    with the cleared timeout in one ARRAY() write."""
    async with Rig() as rig:
        rig.service.login(AGENT)
        call_id = await rig.to_queue(RU_CALLER)
        await eventually(lambda: rig.talking(call_id), what="caller and agent bridged")
        caller = rig.fake.channels[call_id]
        await eventually(lambda: "ACD_TALKING" in caller.variables, what="talking mark")
        assert caller.variables["ACD_TALKING"].startswith(f"{AGENT}|")
        assert call_id not in rig.fake.absolute_timers
        assert caller.variables["ACD_QUEUED"].startswith("tech|ru|RU|")
        assert caller.variables["CHANNEL(language)"] == "ru"
        leg = rig.leg_of(call_id)
        assert leg is not None
        rig.fake.hangup(leg)
        await eventually(lambda: call_id not in rig.fake.channels and not rig.fake.bridges,
                         what="call cleaned up")
        requests = rig.fake.requests
        start = next(i for i, r in enumerate(requests)
                     if r.method == "POST" and r.path == "/bridges")
        sent = [kind(r) for r in requests[start:]]
    assert requests[start].params["name"].startswith(HOLD_PREFIX)
    # Music on the bridge and the marks on the channel go out together: either order.
    assert sorted(sent[2:4]) == ["POST /bridges/{id}/moh",
                                 "POST /channels/{id}/variable ARRAY(ACD_QUEUED,CHANNEL(language))"]
    assert sent[:2] + sent[4:] == [
        "POST /bridges", "POST /bridges/{id}/addChannel",
        "POST /channels",
        "POST /bridges", "POST /bridges/{id}/removeChannel", "DELETE /bridges/{id}",
        "POST /bridges/{id}/addChannel",
        "POST /channels/{id}/variable ARRAY(ACD_TALKING,TIMEOUT(absolute))",
        "DELETE /channels/{id}", "DELETE /bridges/{id}"]


async def test_fake_array_write_sets_each_variable_with_its_own_event() -> None:
    """The fake ARI applies ARRAY() as Asterisk does: each plain variable set (with its
    ChannelVarset), TIMEOUT(absolute) as a timer, no event for ARRAY itself."""
    async with Rig() as rig:
        call_id = rig.fake.inject_call(RU_CALLER)
        await rig.client.set_channel_var(call_id, "ARRAY(ACD_A,ACD_B,TIMEOUT(absolute))",
                                         "x|1,,30")
        varsets = [(e["variable"], e["value"]) for e in rig.fake.event_log
                   if e["type"] == "ChannelVarset"]
        assert varsets[-2:] == [("ACD_A", "x|1"), ("ACD_B", "")]
        assert call_id in rig.fake.absolute_timers
        assert not any(v.startswith("ARRAY") for v, _ in varsets)


_SAFE_TEXT = st.text(st.sampled_from("abcXYZ019_.@/:;=+*#|- "), max_size=12)


@given(st.lists(_SAFE_TEXT, min_size=2, max_size=6))
def test_array_write_sets_exactly_the_pairs(values: list[str]) -> None:
    """Whatever safe values, Asterisk's splitting of the ARRAY() write gives back each pair."""
    pairs = [(f"ACD_V{i}", v) for i, v in enumerate(values)]
    name, value = variables.array(pairs)
    assert array_writes(name, value) == pairs


def test_array_write_keeps_an_ipv6_dial_string_whole() -> None:
    """Brackets in a dial string's IPv6 host are balanced, so its commas-free value stays one."""
    pairs = [("ACD_TARGET", "PJSIP/kyiv/sip:1001@[2001:db8::5]:5060"), ("CHANNEL(language)", "uk")]
    assert array_writes(*variables.array(pairs)) == pairs


@pytest.mark.parametrize("value", ["a,b", '"q"', "back\\slash", "f(x)", "[open", "shut]"])
def test_array_refuses_values_asterisk_would_split(value: str) -> None:
    """A value ARRAY() would split, unquote or unescape is refused, never sent."""
    with pytest.raises(ValueError):
        variables.array([("ACD_A", "1"), ("ACD_B", value)])


def test_app_args_follows_asterisk_quoting() -> None:
    """Quotes group and vanish, a backslash keeps the next character, parentheses nest, and a
    trailing comma is one more empty argument (app.c)."""
    assert app_args('a,"b,c",d\\,e,f(g,h),') == ["a", "b,c", "d,e", "f(g,h)", ""]
