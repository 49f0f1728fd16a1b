"""PBXs as configuration: the dial string chosen for the caller's PBX, and the checks of the
``pbxs`` settings (every agent reachable from every PBX that receives calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acd.cli import main
from acd.config.load import load_center
from acd.core.dialstring import is_dial_string
from acd.core.model import CallEnded, Offer
from acd.core.pbx import PbxMap, choose_dial_string, trunk_template_problem
from acd.errors import EXIT_BAD_INPUT, ConfigError
from acd.runtime.router_service import RouterService
from acd.service.pbxs import PbxSettings, pbx_map, pbx_of_address
from acd.service.settings import load_settings
from acd.testing.clock import ManualClock

ROOT = Path(__file__).resolve().parents[1]
TRUNKS = {("msk", "kyiv"): "PJSIP/{ext}@kyiv", ("kyiv", "msk"): "PJSIP/{ext}@moscow"}

#: Two PBXs for the reference center, each with a trunk to the other.
TWO_PBXS = """\
center: {center}
flows: {flows}
pbxs:
  - name: msk
    site: moscow
    ari: {{url: "http://10.1.0.5:8088", user_env: ACD_ARI_USER_MSK,
          password_env: ACD_ARI_PASSWORD_MSK}}
    agi_sources: [10.1.0.5]
    trunks: {{kyiv: "PJSIP/{{ext}}@kyiv"}}
  - name: kyiv
    site: kyiv
    ari: {{url: "http://10.2.0.5:8088", user_env: ACD_ARI_USER_KYIV,
          password_env: ACD_ARI_PASSWORD_KYIV}}
    agi_sources: [10.2.0.0/24]
    trunks: {{msk: "PJSIP/{{ext}}@moscow"}}
"""
ENV = {"ACD_ARI_USER_MSK": "acd", "ACD_ARI_PASSWORD_MSK": "m-secret",
       "ACD_ARI_USER_KYIV": "acd", "ACD_ARI_PASSWORD_KYIV": "k-secret"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(text.format(center=ROOT / "config" / "center.yaml",
                                flows=ROOT / "config" / "ivr"), encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, ENV)
    return [str(p) for p in info.value.problems]


# --- the pure choice ---------------------------------------------------------------------


def test_agent_on_the_callers_pbx_is_dialled_at_its_own_endpoint() -> None:
    """Same PBX: the agent's endpoint as given (roster or login), not the trunk."""
    assert choose_dial_string("PJSIP/1001", "msk", "1001", "msk", TRUNKS) == "PJSIP/1001"
    assert choose_dial_string("Local/1001@agents", "msk", "1001", "msk", TRUNKS) \
        == "Local/1001@agents"


def test_agent_on_the_other_pbx_is_dialled_through_the_trunk_with_its_extension() -> None:
    """A Moscow caller reaches a Kyiv agent through Moscow's trunk template to Kyiv."""
    assert choose_dial_string("PJSIP/2001", "kyiv", "2001", "msk", TRUNKS) == "PJSIP/2001@kyiv"
    assert choose_dial_string("PJSIP/1001", "msk", "1001", "kyiv", TRUNKS) \
        == "PJSIP/1001@moscow"


def test_unknown_pbx_keeps_the_endpoint_and_a_missing_trunk_gives_none() -> None:
    """One implicit PBX (no caller PBX) dials as before; a pair without a trunk cannot dial."""
    assert choose_dial_string("PJSIP/2001", "kyiv", "2001", None, TRUNKS) == "PJSIP/2001"
    assert choose_dial_string("PJSIP/2001", None, "2001", "msk", TRUNKS) == "PJSIP/2001"
    assert choose_dial_string("PJSIP/2001", "kyiv", "2001", "spb", TRUNKS) is None
    assert choose_dial_string("PJSIP/2001", "kyiv", None, "msk", TRUNKS) is None


def test_an_extension_that_would_break_the_grammar_gives_no_dial_string() -> None:
    """Whatever the extension, the result is one dial string of the grammar or nothing."""
    assert choose_dial_string("PJSIP/2001", "kyiv", "2001&SIP/x", "msk", TRUNKS) is None
    for ext in ("2001", "+380441234567", "2001,t", "${EXTEN}", "a b"):
        dial = choose_dial_string("PJSIP/2001", "kyiv", ext, "msk", TRUNKS)
        assert dial is None or is_dial_string(dial)


def test_pbx_map_looks_up_the_agents_pbx_and_extension() -> None:
    """The map the router service asks: agent id -> PBX and extension."""
    m = PbxMap({"kyi-1": "kyiv", "msk-1": "msk"}, {"kyi-1": "2001", "msk-1": "1001"}, TRUNKS)
    assert m.dial_string("kyi-1", "PJSIP/2001", "msk") == "PJSIP/2001@kyiv"
    assert m.dial_string("msk-1", "PJSIP/1001", "msk") == "PJSIP/1001"


@pytest.mark.parametrize("template, fragment", [
    ("PJSIP/kyiv", "exactly once"),
    ("PJSIP/{ext}@{ext}", "exactly once"),
    ("PJSIP/{ext}@{site}", "only placeholder"),
    ("PJSIP/{ext}&SIP/{x}", "only placeholder"),
    ("PJSIP/{ext}@kyiv,60", "not allowed"),
    ("Dial/{ext}", "unknown technology"),
])
def test_bad_trunk_templates_are_refused_with_the_reason(template: str, fragment: str) -> None:
    """A trunk template is one dial string of the grammar with {ext} exactly once."""
    why = trunk_template_problem(template)
    assert why is not None and fragment in why


@pytest.mark.parametrize("template", ["PJSIP/{ext}@kyiv", "SIP/kyiv/{ext}",
                                      "IAX2/kyiv/{ext}@agents", "Local/{ext}@from-moscow"])
def test_good_trunk_templates_pass(template: str) -> None:
    """The usual trunk shapes of each technology are accepted."""
    assert trunk_template_problem(template) is None


# --- the settings ------------------------------------------------------------------------


def test_two_pbx_settings_resolve_credentials_agents_and_sources(tmp_path: Path) -> None:
    """Each PBX gets its own ARI credentials; agents sit on their site's PBX; FastAGI peers
    map to PBXs by address."""
    settings = load_settings(_write(tmp_path, TWO_PBXS), ENV)
    msk, kyiv = settings.pbxs
    assert (msk.name, msk.site, msk.ari_password) == ("msk", "moscow", "m-secret")
    assert (kyiv.name, kyiv.ari_password) == ("kyiv", "k-secret")
    assert "secret" not in repr(settings.pbxs)
    pbxs = [p.settings for p in settings.pbxs]
    assert pbx_of_address(pbxs, "10.1.0.5") == "msk"
    assert pbx_of_address(pbxs, "10.2.0.77") == "kyiv"
    assert pbx_of_address(pbxs, "::ffff:10.2.0.9") == "kyiv"
    assert pbx_of_address(pbxs, "10.1.0.6") is None
    assert pbx_of_address(pbxs, None) is None


def test_settings_without_pbxs_keep_one_implicit_pbx(tmp_path: Path) -> None:
    """Today's single-PBX settings load unchanged, with no PBX list."""
    path = tmp_path / "service.yaml"
    path.write_text("ari: {url: 'http://127.0.0.1:8088'}\n", encoding="utf-8")
    settings = load_settings(path, {"ACD_ARI_USER": "a", "ACD_ARI_PASSWORD": "b"})
    assert settings.pbxs == ()
    assert settings.ari.url == "http://127.0.0.1:8088"


def test_a_pbx_without_a_trunk_to_the_other_is_refused_naming_the_pair(tmp_path: Path) -> None:
    """Kyiv receives calls but cannot reach Moscow's agents: file, line, path and value."""
    path = _write(tmp_path, TWO_PBXS.replace('    trunks: {{msk: "PJSIP/{{ext}}@moscow"}}\n', ""))
    (problem,) = _problems(path)
    assert problem.startswith(f"{path}:")
    assert "pbxs[1].trunks" in problem and "'msk'" in problem
    assert "cannot reach the agents on PBX 'msk'" in problem


def test_unknown_site_pbx_and_homeless_agents_are_refused(tmp_path: Path) -> None:
    """A PBX's site must be a site of the center, its trunks name PBXs of the list, and every
    site's agents need a PBX."""
    text = TWO_PBXS.replace("    site: kyiv\n", "    site: kiev\n").replace(
        "{{kyiv: ", "{{kyiv: \"PJSIP/{{ext}}@kyiv\", spb: ")
    problems = _problems(_write(tmp_path, text))
    assert any("pbxs[1].site" in p and "valid: moscow, kyiv" in p for p in problems)
    assert any("pbxs[0].trunks.spb" in p and "not a PBX of the list" in p for p in problems)
    assert any("site 'kyiv' has no PBX" in p for p in problems)


def test_bad_template_overlapping_sources_and_unknown_agents_are_refused(tmp_path: Path) -> None:
    """The template grammar, one PBX per source address, and listed agents on the roster."""
    bad_template = TWO_PBXS.replace('"PJSIP/{{ext}}@kyiv"', '"PJSIP/{{ext}}@kyiv&SIP/1"')
    (problem,) = _problems(_write(tmp_path, bad_template))
    assert "pbxs.0.trunks" in problem or "pbxs[0].trunks" in problem
    assert "not allowed in a dial string" in problem
    overlap = TWO_PBXS.replace("[10.2.0.0/24]", "[10.1.0.0/16]")
    problems = _problems(_write(tmp_path, overlap))
    assert any("pbxs[1].agi_sources[0]" in p and "overlaps 10.1.0.5/32" in p for p in problems)
    listed = TWO_PBXS.replace("    agi_sources: [10.1.0.5]\n",
                              "    agi_sources: [10.1.0.5]\n    agents: [nobody-001]\n")
    problems = _problems(_write(tmp_path, listed))
    assert any("pbxs[0].agents[0]" in p and "nobody-001" in p for p in problems)


def test_an_agent_group_can_be_placed_on_the_other_sites_pbx(tmp_path: Path) -> None:
    """A group listed under a PBX's agents is dialled there, whatever its site."""
    text = TWO_PBXS.replace("    agi_sources: [10.1.0.5]\n",
                            "    agi_sources: [10.1.0.5]\n    agents: [kyi-voc]\n")
    settings = load_settings(_write(tmp_path, text), ENV)
    center = load_center(settings.center)
    m = pbx_map([p.settings for p in settings.pbxs], center.agents)
    assert m is not None
    assert m.agent_pbx["kyi-voc-001"] == "msk"
    assert m.agent_pbx["kyi-tech-uk-001"] == "kyiv"
    assert m.dial_string("kyi-voc-001", "PJSIP/x", "msk") == "PJSIP/x"


def test_pbxs_and_a_top_level_ari_url_together_are_refused(tmp_path: Path) -> None:
    """With a PBX list every ARI belongs to a PBX: a top-level ari.url is a mistake."""
    path = _write(tmp_path, TWO_PBXS + "ari: {{url: 'http://127.0.0.1:8088'}}\n")
    problems = _problems(path)
    assert any("ari.url" in p and "each PBX has its own ari settings" in p for p in problems)


def test_acd_check_with_service_settings_exits_2_on_an_unreachable_agent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`acd check --service` checks the PBXs: 0 when every agent is reachable, 2 otherwise."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "1000")
    good = _write(tmp_path, TWO_PBXS)
    assert main(["check", str(ROOT / "config" / "center.yaml"), "--service", str(good)]) == 0
    assert "msk (moscow), kyiv (kyiv)" in capsys.readouterr().out
    bad = _write(tmp_path, TWO_PBXS.replace('    trunks: {{kyiv: "PJSIP/{{ext}}@kyiv"}}\n', ""))
    assert main(["check", str(ROOT / "config" / "center.yaml"), "--service", str(bad)]) \
        == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "pbxs[0].trunks" in err and "cannot reach the agents on PBX 'kyiv'" in err


# --- the router service ------------------------------------------------------------------


class _Owner:
    """A call owner that keeps the commands it is given."""

    def __init__(self) -> None:
        self.commands: list[object] = []

    def handle_command(self, command: object) -> None:
        self.commands.append(command)


def _service(trunks: dict[str, dict[str, str]]) -> RouterService:
    center = load_center(ROOT / "config" / "center.yaml")
    pbxs = [PbxSettings(name="msk", site="moscow", agi_sources=["10.1.0.5"],
                        trunks=trunks.get("msk", {})),
            PbxSettings(name="kyiv", site="kyiv", agi_sources=["10.2.0.5"],
                        trunks=trunks.get("kyiv", {}))]
    service = RouterService(center, ManualClock())
    service.pbx_map = pbx_map(pbxs, center.agents)
    return service


def test_router_service_gives_each_offer_the_dial_string_of_the_callers_pbx() -> None:
    """The owner of a Moscow call gets the trunk string for a Kyiv agent, of a Kyiv call the
    agent's endpoint; the call's PBX is known to observers of its end, then forgotten."""
    service = _service({"msk": {"kyiv": "PJSIP/{ext}@kyiv"}})
    seen_at_end: list[str | None] = []
    service.observe(lambda o, _w: seen_at_end.append(service.pbx_of(o.call_id))
                    if isinstance(o, CallEnded) else None)
    service.login("kyi-support-ru-001")
    moscow, kyiv = _Owner(), _Owner()
    service.call_arrived(moscow, "m1", "tech", "uk", "UA", pbx="msk")
    (offer,) = [c for c in moscow.commands if isinstance(c, Offer)]
    assert offer.endpoint == "PJSIP/2301@kyiv"
    assert service.pbx_of("m1") == "msk"
    service.offer_answered("m1", "kyi-support-ru-001")
    service.hangup("m1")
    assert seen_at_end == ["msk"] and service.pbx_of("m1") is None
    service.ready("kyi-support-ru-001")
    service.call_arrived(kyiv, "k1", "tech", "uk", "UA", pbx="kyiv")
    (offer,) = [c for c in kyiv.commands if isinstance(c, Offer)]
    assert offer.endpoint == "PJSIP/2301"


def test_an_offer_with_no_trunk_for_the_pair_has_no_dial_string() -> None:
    """Without a trunk (a configuration the check refuses) the offer carries an empty dial
    string, which every driver reports undialable instead of ringing a wrong phone."""
    service = _service({})
    service.login("kyi-support-ru-001")
    owner = _Owner()
    service.call_arrived(owner, "m1", "tech", "uk", "UA", pbx="msk")
    (offer,) = [c for c in owner.commands if isinstance(c, Offer)]
    assert offer.endpoint == "" and not is_dial_string(offer.endpoint)


def test_a_reload_that_leaves_agents_without_a_pbx_is_refused_and_a_good_one_applies(
        tmp_path: Path) -> None:
    """A new site with agents but no PBX refuses the reload (file, path, value); a new group
    on a site with its PBX is dialled through the trunk after the reload."""
    from configkit import reference_data

    from acd.config.load import center_from_data
    from acd.runtime.ivrsetup import load_ivr
    from acd.service.pbx_links import PbxLinks

    settings = load_settings(_write(tmp_path, TWO_PBXS), ENV)
    center = load_center(ROOT / "config" / "center.yaml")
    service = RouterService(center, ManualClock())
    setup = load_ivr(center, ROOT / "config" / "ivr")
    links = PbxLinks(service, setup, settings.pbxs, settings.file)
    data = reference_data()
    data["sites"]["spb"] = {"name": "Saint Petersburg", "timezone": "Europe/Moscow",
                            "country": "RU"}
    group = dict(data["agent_groups"]["kyi-voc"], site="spb", first_extension=7001)
    data["agent_groups"]["spb-voc"] = group
    with pytest.raises(ConfigError) as info:
        links.check(center_from_data(data, "center.yaml"))
    (problem,) = info.value.problems
    assert (problem.path, problem.value) == ("pbxs", "spb")
    assert "site 'spb' has no PBX" in problem.message
    group["site"] = "kyiv"
    grown = center_from_data(data, "center.yaml")
    links.check(grown)
    links.reconfigure(grown, setup)
    assert service.pbx_map is not None
    assert service.pbx_map.dial_string("spb-voc-001", "PJSIP/7001", "msk") == "PJSIP/7001@kyiv"
    assert links.outage.agent_pbx["spb-voc-001"] == "kyiv"


def test_a_duplicate_call_id_from_the_other_pbx_does_not_take_over_the_calls_pbx() -> None:
    """Two PBXs without distinct systemnames can send the same id: the router refuses the
    second, and the first call's offers still go to its own owner with its PBX's dial
    strings."""
    from acd.core.model import DuplicateCall

    service = _service({"msk": {"kyiv": "PJSIP/{ext}@kyiv"}})
    first = _Owner()
    service.call_arrived(first, "1795609000.1", "tech", "uk", "UA", pbx="msk")
    with pytest.raises(DuplicateCall):
        service.call_arrived(_Owner(), "1795609000.1", "tech", "uk", "UA", pbx="kyiv")
    assert service.pbx_of("1795609000.1") == "msk"
    service.login("kyi-support-ru-001")
    (offer,) = [c for c in first.commands if isinstance(c, Offer)]
    assert offer.endpoint == "PJSIP/2301@kyiv"
