"""Names a flow may use, as the center configuration defines them (sites, queues, languages).

:func:`known_from_center` builds them from a validated center config; :func:`reference_known`
holds the reference center's names for tests that need no config file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from acd.config.schema import CenterConfig


@dataclass(frozen=True)
class Site:
    """A contact-center site: its IANA time zone and the country whose holidays it keeps."""

    timezone: str
    country: str


@dataclass(frozen=True)
class KnownNames:
    """Everything a flow is checked against: sites, queues, languages, countries."""

    sites: Mapping[str, Site]
    queues: frozenset[str]
    languages: frozenset[str]
    #: ISO alpha-2 country -> the native language its callers are served in.
    countries: Mapping[str, str]
    default_language: str = "ru"
    #: Country recorded for callers whose number gives no known country.
    default_country: str = "other"
    #: Region used to read national-format caller numbers (no ``+``, no ``00``).
    national_region: str = "RU"
    #: Queue -> site, for queues whose hours the flow does not declare a site for.
    queue_sites: Mapping[str, str] = field(default_factory=dict)


REFERENCE_COUNTRIES: dict[str, str] = {
    "RU": "ru", "UA": "uk", "BY": "be", "KZ": "kk", "UZ": "uz", "KG": "ky",
    "TJ": "tg", "AZ": "az", "AM": "hy", "GE": "ka", "MD": "ro", "LV": "lv",
}


def known_from_center(config: CenterConfig) -> KnownNames:
    """The names a flow may use, taken from a validated center configuration."""
    sites = {}
    for name, site in config.sites.items():
        country = site.country or next(
            (code for code, c in config.countries.items() if c.home_site == name), "")
        sites[name] = Site(site.timezone, country)
    home_region = next(iter(config.countries), "RU")
    return KnownNames(
        sites=sites,
        queues=frozenset(config.queues),
        languages=frozenset(config.languages),
        countries={code: c.language for code, c in config.countries.items()},
        default_language=config.center.default_language,
        national_region=home_region,
    )


def reference_known() -> KnownNames:
    """The reference center (Moscow + Kyiv, four queues, twelve countries and languages)."""
    return KnownNames(
        sites={"moscow": Site("Europe/Moscow", "RU"), "kyiv": Site("Europe/Kyiv", "UA")},
        queues=frozenset({"tech", "repair", "orders", "voc"}),
        languages=frozenset(REFERENCE_COUNTRIES.values()),
        countries=dict(REFERENCE_COUNTRIES),
    )
