"""The reference center (config/center.yaml) loads and matches the center the documents describe."""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from configkit import REFERENCE, reference_data

from acd.config.load import LoadedCenter, center_from_data, load_center

LANGUAGES = ["ru", "uk", "be", "kk", "uz", "ky", "tg", "az", "hy", "ka", "ro", "lv"]
NATIVE = {"RU": "ru", "UA": "uk", "BY": "be", "KZ": "kk", "UZ": "uz", "KG": "ky", "TJ": "tg",
          "AZ": "az", "AM": "hy", "GE": "ka", "MD": "ro", "LV": "lv"}


@pytest.fixture(scope="module")
def center() -> LoadedCenter:
    """The reference center, loaded once for the module."""
    return load_center(REFERENCE)


def test_reference_center_size(center: LoadedCenter) -> None:
    """The reference center has 281 agents in 12 groups on the two sites, with four queues."""
    assert len(center.agents) == 281
    assert len(center.config.agent_groups) == 12
    assert set(center.config.sites) == {"moscow", "kyiv"}
    assert set(center.config.queues) == {"tech", "repair", "orders", "voc"}
    assert set(center.config.skills) == {"tech", "repair", "orders", "voc"}
    assert {a.group for a in center.agents} == set(center.config.agent_groups)


def test_sites_have_their_time_zones(center: LoadedCenter) -> None:
    """Moscow and Kyiv carry their IANA time zones, which resolve on this machine."""
    sites = center.config.sites
    assert sites["moscow"].timezone == "Europe/Moscow"
    assert sites["kyiv"].timezone == "Europe/Kyiv"
    for site in sites.values():
        ZoneInfo(site.timezone)


def test_twelve_countries_each_with_native_language_and_home_site(center: LoadedCenter) -> None:
    """Each of the 12 countries names its native language and a home site that exist."""
    cfg = center.config
    assert list(cfg.languages) == LANGUAGES
    assert {code: c.language for code, c in cfg.countries.items()} == NATIVE
    for code, country in cfg.countries.items():
        assert country.home_site in cfg.sites, code
        assert country.language in cfg.languages, code
        assert set(country.fallback_languages) <= set(cfg.languages), code


def test_every_native_language_has_speakers(center: LoadedCenter) -> None:
    """Every country's native language is spoken by at least one agent who can take its calls."""
    for code, country in center.config.countries.items():
        speakers = [a for a in center.agents if country.language in a.languages
                    and (a.countries is None or code in a.countries)]
        assert speakers, code


def test_center_defaults_and_targets(center: LoadedCenter) -> None:
    """Default language ru, default queue tech, SL 85% within 20 s, answer rate 96%."""
    c = center.config.center
    assert c.default_language == "ru"
    assert c.default_queue == "tech"
    assert c.service_level.threshold_s == 20
    assert c.service_level.target == 0.85
    assert c.answer_rate_target == 0.96
    for queue in center.config.queues:
        assert center.config.sl_for(queue).threshold_s == 20


def test_voice_of_customer_team_has_19_agents(center: LoadedCenter) -> None:
    """Exactly 19 agents hold the voc skill, split over both sites, none of them newcomers."""
    voc = [a for a in center.agents if "voc" in a.skills]
    assert len(voc) == 19
    assert Counter(a.site for a in voc) == {"moscow": 10, "kyiv": 9}
    assert not any(a.newcomer for a in voc)


def test_newcomers_present_in_most_groups(center: LoadedCenter) -> None:
    """Newcomers exist and are spread over the groups that have a newcomer share."""
    cfg = center.config
    newcomers = Counter(a.group for a in center.agents if a.newcomer)
    sharing = {name for name, g in cfg.agent_groups.items() if g.newcomer_share > 0}
    assert len(sharing) >= 10
    assert set(newcomers) == sharing
    for name in sharing:
        group = cfg.agent_groups[name]
        exact = group.count * group.newcomer_share
        assert int(exact) <= newcomers[name] <= int(exact) + 1, name


def test_agent_ids_and_extensions_unique(center: LoadedCenter) -> None:
    """No two agents share an id, an extension or an endpoint."""
    agents = center.agents
    assert len({a.id for a in agents}) == len(agents)
    assert len({a.extension for a in agents}) == len(agents)
    assert len({a.endpoint for a in agents}) == len(agents)


def test_reference_center_has_no_unexpected_warnings(center: LoadedCenter) -> None:
    """The only coverage warnings are the voc queue serving non-Russian callers in Russian."""
    for warning in center.warnings:
        assert warning.startswith("queue voc: "), warning
        assert "served only in ru" in warning, warning


def test_loading_from_data_equals_loading_from_file(center: LoadedCenter) -> None:
    """center_from_data on the parsed YAML gives the same config and roster as load_center."""
    again = center_from_data(reference_data(), str(REFERENCE))
    assert again.config == center.config
    assert again.agents == center.agents
