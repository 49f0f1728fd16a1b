"""Broken center configs: `acd check` exits 2 and names the file, YAML path, line and value.

Each test changes one thing in the reference center, writes it to a temporary file and checks the
problem the loader reports (path, value, line, message) and that the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from configkit import (
    REFERENCE,
    Broken,
    check_broken,
    line_after,
    reference_data,
    run_check,
    write_config,
)

from acd.config.load import load_center
from acd.errors import ConfigError

Check = Callable[[dict[str, Any]], Broken]


@pytest.fixture
def check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
          monkeypatch: pytest.MonkeyPatch) -> Check:
    """Write a mutated config, require exit 2 and every problem printed; return what was said."""
    def run(data: dict[str, Any]) -> Broken:
        return check_broken(tmp_path, data, capsys, monkeypatch)
    return run


# --- schema: unknown keys, wrong types, out-of-range values ----------------------------------


def test_unknown_top_level_key(check: Check) -> None:
    """An unknown top-level key is reported at its own path and line."""
    data = reference_data()
    data["frobnicate"] = 17
    result = check(data)
    p = result.problem("frobnicate")
    assert p.value == 17
    assert p.message.startswith("unknown key; valid: agent_groups, center, countries")
    assert p.line == line_after(result.text, "frobnicate:")
    assert len(result.problems) == 1


def test_unknown_nested_key(check: Check) -> None:
    """A misspelt key deep in a queue's routing is reported with its full path and line."""
    data = reference_data()
    data["queues"]["tech"]["routing"]["sitez"] = "all"
    result = check(data)
    p = result.problem("queues.tech.routing.sitez")
    assert p.value == "all"
    assert p.message == "unknown key; did you mean 'sites'?"
    assert p.line == line_after(result.text, "queues:", "tech:", "routing:", "sitez:")


def test_unknown_key_in_expansion_step(check: Check) -> None:
    """An unknown key inside a list item names the item's index in the path."""
    data = reference_data()
    data["queues"]["repair"]["expansion"][2]["include_newbies"] = True
    result = check(data)
    p = result.problem("queues.repair.expansion[2].include_newbies")
    assert p.value is True
    assert p.line == line_after(result.text, "queues:", "repair:", "expansion:",
                                "include_newbies:")


def test_wrong_type_count(check: Check) -> None:
    """A group count that is not a number is reported with the text given."""
    data = reference_data()
    data["agent_groups"]["msk-tech-ru"]["count"] = "many"
    result = check(data)
    p = result.problem("agent_groups.msk-tech-ru.count")
    assert p.value == "many"
    assert "valid integer" in p.message
    assert p.line == line_after(result.text, "agent_groups:", "msk-tech-ru:", "count:")


def test_wrong_type_section(check: Check) -> None:
    """A section given as a list instead of a mapping is reported at the section."""
    data = reference_data()
    data["sites"] = ["moscow", "kyiv"]
    result = check(data)
    p = result.problem("sites")
    assert p.value == ["moscow", "kyiv"]
    assert "should be a mapping" in p.message
    assert p.line == line_after(result.text, "sites:")


def test_wrong_type_languages_as_string(check: Check) -> None:
    """A group's languages given as one string instead of a list is refused."""
    data = reference_data()
    data["agent_groups"]["kyi-voc"]["languages"] = "uk, ru"
    result = check(data)
    p = result.problem("agent_groups.kyi-voc.languages")
    assert p.value == "uk, ru"
    assert "should be a list" in p.message


def test_wrong_type_boolean_count_refused(check: Check) -> None:
    """A boolean where a head count is expected is an error, not silently one agent."""
    data = reference_data()
    data["agent_groups"]["msk-voc"]["count"] = True
    result = check(data)
    p = result.problem("agent_groups.msk-voc.count")
    assert p.value is True


@pytest.mark.parametrize(("where", "value", "yaml_path", "keys"), [
    (("agent_groups", "msk-tech-ru", "skills", "tech"), 11,
     "agent_groups.msk-tech-ru.skills.tech", ("agent_groups:", "msk-tech-ru:", "skills:",
                                              "tech:")),
    (("queues", "voc", "routing", "min_level"), 11,
     "queues.voc.routing.min_level", ("queues:", "voc:", "routing:", "min_level:")),
    (("queues", "tech", "wrap_up_s"), -5,
     "queues.tech.wrap_up_s", ("queues:", "tech:", "wrap_up_s:")),
    (("queues", "orders", "expansion", 0, "after_s"), -1,
     "queues.orders.expansion[0].after_s", ("queues:", "orders:", "expansion:", "- after_s:")),
    (("center", "service_level", "target"), 1.5,
     "center.service_level.target", ("center:", "service_level:", "target:")),
    (("center", "short_abandon_s"), -0.5,
     "center.short_abandon_s", ("center:", "short_abandon_s:")),
    (("agent_groups", "kyi-west", "newcomer_share"), 1.2,
     "agent_groups.kyi-west.newcomer_share", ("agent_groups:", "kyi-west:", "newcomer_share:")),
])
def test_out_of_range_values(check: Check, where: tuple[str | int, ...], value: float,
                             yaml_path: str, keys: tuple[str, ...]) -> None:
    """Levels above 10, negative seconds and shares above 1 are refused with path and line."""
    data = reference_data()
    node: Any = data
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    result = check(data)
    p = result.problem(yaml_path)
    assert p.value == value
    assert "less than or equal" in p.message or "greater than or equal" in p.message
    assert p.line == line_after(result.text, *keys)
    assert len(result.problems) == 1


def test_unsupported_version(check: Check) -> None:
    """A config version other than 1 is refused."""
    data = reference_data()
    data["version"] = 2
    p = check(data).problem("version")
    assert p.value == 2


# --- cross-references -------------------------------------------------------------------------


def test_unknown_skill_in_queue(check: Check) -> None:
    """A queue whose skill is not defined names the skill and lists the valid ones."""
    data = reference_data()
    data["queues"]["repair"]["skill"] = "plumbing"
    result = check(data)
    p = result.problem("queues.repair.skill")
    assert p.value == "plumbing"
    assert p.message == "unknown skill; valid: orders, repair, tech, voc"
    assert p.line == line_after(result.text, "queues:", "repair:", "skill:")


def test_unknown_skill_in_group(check: Check) -> None:
    """A group with a skill that is not defined is reported at that skill's key."""
    data = reference_data()
    data["agent_groups"]["msk-voc"]["skills"]["escalations"] = 7
    result = check(data)
    p = result.problem("agent_groups.msk-voc.skills.escalations")
    assert p.value == "escalations"
    assert p.line == line_after(result.text, "agent_groups:", "msk-voc:", "escalations:")


def test_unknown_language_in_country(check: Check) -> None:
    """A country whose native language is not defined is reported with the bad code."""
    data = reference_data()
    data["countries"]["KZ"]["language"] = "kz"
    result = check(data)
    p = result.problem("countries.KZ.language")
    assert p.value == "kz"
    assert p.message.startswith("unknown language; valid: az, be, hy, ka, kk")
    assert p.line == line_after(result.text, "countries:", "KZ:", "language:")


def test_unknown_fallback_language_in_country(check: Check) -> None:
    """An undefined fallback language names its index in the country's list."""
    data = reference_data()
    data["countries"]["UA"]["fallback_languages"] = ["rus"]
    result = check(data)
    p = result.problem("countries.UA.fallback_languages[0]")
    assert p.value == "rus"
    assert p.line == line_after(result.text, "countries:", "UA:", "- rus")


def test_unknown_language_in_group(check: Check) -> None:
    """An undefined language in a group's languages names the group and the list index."""
    data = reference_data()
    data["agent_groups"]["kyi-tech-uk"]["languages"] = ["uk", "russian"]
    result = check(data)
    p = result.problem("agent_groups.kyi-tech-uk.languages[1]")
    assert p.value == "russian"
    assert "unknown language" in p.message
    assert p.line == line_after(result.text, "agent_groups:", "kyi-tech-uk:", "- russian")


def test_unknown_language_in_language_mix(check: Check) -> None:
    """An undefined language inside a language_mix block names block and index."""
    data = reference_data()
    data["agent_groups"]["msk-caucasus"]["language_mix"][1]["languages"][0] = "am"
    result = check(data)
    p = result.problem("agent_groups.msk-caucasus.language_mix[1].languages[0]")
    assert p.value == "am"
    assert "unknown language" in p.message
    assert p.line == line_after(result.text, "agent_groups:", "msk-caucasus:", "- am")


def test_unknown_home_site(check: Check) -> None:
    """A country whose home site is not defined lists the valid sites."""
    data = reference_data()
    data["countries"]["MD"]["home_site"] = "chisinau"
    result = check(data)
    p = result.problem("countries.MD.home_site")
    assert p.value == "chisinau"
    assert p.message == "unknown site; valid: kyiv, moscow"
    assert p.line == line_after(result.text, "countries:", "MD:", "home_site:")


def test_unknown_group_site(check: Check) -> None:
    """A group placed at an undefined site is reported at the group's site key."""
    data = reference_data()
    data["agent_groups"]["msk-voc"]["site"] = "minsk"
    result = check(data)
    p = result.problem("agent_groups.msk-voc.site")
    assert p.value == "minsk"
    assert p.message == "unknown site; valid: kyiv, moscow"
    assert p.line == line_after(result.text, "agent_groups:", "msk-voc:", "site:")


@pytest.mark.parametrize("zone", ["Europe/Atlantis", "../../etc/passwd", "UTC+3", ""])
def test_bad_time_zone(check: Check, zone: str) -> None:
    """A site time zone that is not an IANA zone (or tries a path) is refused."""
    data = reference_data()
    data["sites"]["kyiv"]["timezone"] = zone
    result = check(data)
    p = result.problem("sites.kyiv.timezone")
    assert p.value == zone
    assert "time zone" in p.message
    assert p.line == line_after(result.text, "sites:", "kyiv:", "timezone:")


def test_overflow_to_unknown_queue(check: Check) -> None:
    """A queue overflowing to a queue that does not exist lists the valid targets."""
    data = reference_data()
    data["queues"]["orders"]["overflow"] = "sales"
    result = check(data)
    p = result.problem("queues.orders.overflow")
    assert p.value == "sales"
    assert "callback" in p.message and "voicemail" in p.message and "tech" in p.message
    assert p.line == line_after(result.text, "queues:", "orders:", "overflow:")


def test_overflow_to_itself(check: Check) -> None:
    """A queue overflowing to itself is refused, and itself is not offered as a valid target."""
    data = reference_data()
    data["queues"]["orders"]["overflow"] = "orders"
    result = check(data)
    p = result.problem("queues.orders.overflow")
    assert p.value == "orders"
    assert "orders" not in p.message.partition("valid:")[2]


@pytest.mark.parametrize("target", ["sales", "tech"])
def test_expansion_step_overflow_unknown_or_self(check: Check, target: str) -> None:
    """An expansion step overflowing to an unknown queue or to its own queue is refused."""
    data = reference_data()
    data["queues"]["tech"]["expansion"].append({"after_s": 300, "overflow": target})
    result = check(data)
    p = result.problem("queues.tech.expansion[5].overflow")
    assert p.value == target
    assert p.line == line_after(result.text, "queues:", "tech:", "expansion:",
                                f"overflow: {target}")


def test_expansion_steps_out_of_order(check: Check) -> None:
    """Expansion steps not in increasing after_s order are refused, listing the times."""
    data = reference_data()
    data["queues"]["tech"]["expansion"][0]["after_s"] = 20
    result = check(data)
    p = result.problem("queues.tech")
    assert "increasing after_s order" in p.message
    assert "[20.0, 12.0, 15.0, 25.0, 150.0]" in p.message
    assert p.line == line_after(result.text, "queues:", "tech:")


@pytest.mark.parametrize("step", [{"after_s": 12},
                                  {"after_s": 12, "include_newcomers": False,
                                   "accept_fallback_languages": False}])
def test_expansion_step_that_does_nothing(check: Check, step: dict[str, Any]) -> None:
    """An expansion step that neither relaxes nor acts is refused at its index."""
    data = reference_data()
    data["queues"]["repair"]["expansion"][1] = step
    result = check(data)
    p = result.problem("queues.repair.expansion[1]")
    assert "must relax something or act" in p.message
    assert p.line == line_after(result.text, "queues:", "repair:", "expansion:", "- after_s: 8",
                                "- after_s: 12")


def test_language_mix_counts_must_add_up(check: Check) -> None:
    """language_mix block counts that do not sum to the group count are refused with both sums."""
    data = reference_data()
    data["agent_groups"]["kyi-west"]["language_mix"][2]["count"] = 3
    result = check(data)
    p = result.problem("agent_groups.kyi-west")
    assert "add up to 13, not the group count 14" in p.message
    assert p.line == line_after(result.text, "agent_groups:", "kyi-west:")


def test_duplicate_agent_ids_across_groups(check: Check) -> None:
    """Two groups with the same id_prefix produce duplicate ids, each reported with its value."""
    data = reference_data()
    data["agent_groups"]["msk-voc"]["id_prefix"] = "voc"
    data["agent_groups"]["kyi-voc"]["id_prefix"] = "voc"
    result = check(data)
    dup = [p for p in result.problems if "agent id produced by two groups" in p.message]
    # msk-voc has 10 agents and kyi-voc 9, so voc-001..voc-009 clash.
    assert sorted(str(p.value) for p in dup) == [f"voc-{n:03d}" for n in range(1, 10)]
    assert all(p.path == "agent_groups" for p in dup)
    assert all(p.line == line_after(result.text, "agent_groups:") for p in dup)
    assert len(result.problems) == 9


def test_duplicate_extensions(check: Check) -> None:
    """Overlapping extension ranges are reported once per clashing extension."""
    data = reference_data()
    data["agent_groups"]["kyi-voc"]["first_extension"] = 1040
    result = check(data)
    # msk-tech-ru holds 1001..1046, so kyi-voc's 1040..1048 clash on 1040..1046.
    assert sorted(str(p.value) for p in result.problems) == [str(n) for n in range(1040, 1047)]
    assert all("extension used by two agents" in p.message for p in result.problems)


def test_rona_pause_reason_must_be_a_pause_reason(check: Check) -> None:
    """The RONA pause reason must be one of pause_reasons, which are listed."""
    data = reference_data()
    data["rona"]["pause_reason"] = "ring_no_answer"
    result = check(data)
    p = result.problem("rona.pause_reason")
    assert p.value == "ring_no_answer"
    assert "break" in p.message and "rona" in p.message
    assert p.line == line_after(result.text, "rona:", "pause_reason:")


def test_default_rona_reason_missing_from_pause_reasons(check: Check) -> None:
    """Dropping 'rona' from pause_reasons while RONA still pauses with it is refused."""
    data = reference_data()
    data["pause_reasons"].remove("rona")
    del data["rona"]
    p = check(data).problem("rona.pause_reason")
    assert p.value == "rona"


def test_unknown_default_language(check: Check) -> None:
    """An undefined center default language is reported at center.default_language."""
    data = reference_data()
    data["center"]["default_language"] = "en"
    result = check(data)
    p = result.problem("center.default_language")
    assert p.value == "en"
    assert p.line == line_after(result.text, "center:", "default_language:")


def test_unknown_default_queue(check: Check) -> None:
    """An undefined center default queue is reported at center.default_queue."""
    data = reference_data()
    data["center"]["default_queue"] = "support"
    result = check(data)
    p = result.problem("center.default_queue")
    assert p.value == "support"
    assert p.message == "unknown queue; valid: orders, repair, tech, voc"
    assert p.line == line_after(result.text, "center:", "default_queue:")


# --- coverage: demand no agent can take ----------------------------------------------------


def test_uncovered_demand_without_overflow_is_an_error(check: Check) -> None:
    """Latvian callers the voc queue cannot serve (no lv speaker, no fallback) are an error."""
    data = reference_data()
    data["countries"]["LV"]["fallback_languages"] = []
    result = check(data)
    p = result.problem("queues.voc")
    assert p.value == "LV/lv"
    assert "no agent can take this queue's calls from this country" in p.message
    assert p.line == line_after(result.text, "queues:", "voc:")
    assert len(result.problems) == 1


def test_uncovered_demand_with_overflow_is_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same gap with an overflow step in the queue loads, with a warning that is printed."""
    data = reference_data()
    data["countries"]["LV"]["fallback_languages"] = []
    data["queues"]["voc"]["expansion"].append({"after_s": 120, "overflow": "callback"})
    path = write_config(tmp_path, data)
    center = load_center(path)
    assert "queue voc: no agent for LV (lv); calls will overflow" in center.warnings
    code, out, err = run_check(path, capsys, monkeypatch)
    assert code == 0, err
    assert "warning: queue voc: no agent for LV (lv); calls will overflow" in out


def test_country_restricted_groups_leave_a_gap(check: Check) -> None:
    """Restricting the only Georgian speakers to Armenia leaves Georgia uncovered: an error."""
    data = reference_data()
    data["countries"]["GE"]["fallback_languages"] = []
    data["agent_groups"]["msk-caucasus"]["countries"] = ["AZ", "AM"]
    result = check(data)
    assert {(p.path, p.value) for p in result.problems} == {
        ("queues.tech", "GE/ka"), ("queues.repair", "GE/ka"), ("queues.orders", "GE/ka"),
        ("queues.voc", "GE/ka")}


# --- several problems at once ----------------------------------------------------------------


def test_several_cross_reference_problems_reported_together(check: Check) -> None:
    """Three unrelated cross-reference mistakes are all reported in one run, each with its line."""
    data = reference_data()
    data["countries"]["KZ"]["language"] = "kz"
    data["agent_groups"]["msk-voc"]["site"] = "minsk"
    data["queues"]["repair"]["skill"] = "plumbing"
    result = check(data)
    assert {p.path for p in result.problems} == {
        "countries.KZ.language", "agent_groups.msk-voc.site", "queues.repair.skill"}
    assert len({p.line for p in result.problems}) == 3
    assert "error: 3 problem(s):" in result.stderr


def test_several_schema_problems_reported_together(check: Check) -> None:
    """An unknown key, a level of 11 and a negative wrap-up are all reported in one run."""
    data = reference_data()
    data["frobnicate"] = 1
    data["agent_groups"]["msk-tech-ru"]["skills"]["tech"] = 11
    data["queues"]["voc"]["wrap_up_s"] = -1
    result = check(data)
    assert {p.path for p in result.problems} == {
        "frobnicate", "agent_groups.msk-tech-ru.skills.tech", "queues.voc.wrap_up_s"}
    assert "error: 3 problem(s):" in result.stderr


def test_country_code_read_as_boolean_is_located(tmp_path: Path) -> None:
    """An unquoted ``NO:`` (Norway, YAML 1.1 false) is reported at its own line, not as ``[0]``."""
    text = REFERENCE.read_text(encoding="utf-8").replace(
        "  LV: {name: Latvia", "  NO: {name: Norway, language: ru, home_site: kyiv}\n"
        "  LV: {name: Latvia")
    path = tmp_path / "center.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_center(path)
    (p,) = info.value.problems
    assert p.value == "NO"
    assert "quote it" in p.message
    assert p.path.startswith("countries")
    assert "[0]" not in p.path
    assert p.line == line_after(text, "countries:", "NO: {name: Norway,")
