"""Flow checking: the reference flows are valid and each class of broken flow is reported."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from acd.errors import ConfigError, Problem
from ivr.loader import check_flows, load_flow, loads_flow
from ivr.testing import CALLBACK, KNOWN, MAIN, compile_flow, prompts, small_flow


def problems_of(data: dict[str, object]) -> list[Problem]:
    """Problems raised for flow data (fails the test if the flow is accepted)."""
    with pytest.raises(ConfigError) as info:
        compile_flow(data)
    return info.value.problems


def only(problems: list[Problem], path: str) -> Problem:
    """The single problem reported at ``path``."""
    found = [p for p in problems if p.path == path]
    assert len(found) == 1, problems
    return found[0]


def test_reference_flows_are_valid() -> None:
    """main.yaml and callback.yaml pass every check against the reference center."""
    assert check_flows([MAIN, CALLBACK], KNOWN) == []
    flow = load_flow(MAIN, KNOWN)
    assert flow.start == "welcome" and flow.default_queue == "tech"


def test_unknown_node_reference_is_named() -> None:
    """A next: that names no node is reported with file, path and the bad id."""
    data = small_flow(menu={"type": "menu", "prompt": "menu", "options": {"1": "nowhere"},
                            "on_fail": "q"})
    p = only(problems_of(data), "nodes.menu.options.1")
    assert (p.file, p.value) == ("test.yaml", "nowhere") and "unknown node" in p.message


def test_unreachable_node_is_reported() -> None:
    """A node no path from start reaches is an error naming that node."""
    data = small_flow(orphan={"type": "hangup", "reason": "x"})
    p = only(problems_of(data), "nodes.orphan")
    assert p.value == "orphan" and "unreachable" in p.message


def test_loop_without_caller_input_is_reported() -> None:
    """goto/branch/set nodes that can cycle without waiting for a key are an error."""
    data = small_flow(q={"type": "goto", "next": "r"},
                      r={"type": "set", "priority": 1, "next": "q"})
    p = only(problems_of(data), "nodes.q")
    assert p.value == ["q", "r"] and "loop that takes no caller input" in p.message


def test_loop_through_a_menu_is_allowed() -> None:
    """A menu that leads back to itself waits for the caller each time, so it is valid."""
    data = small_flow(menu={"type": "menu", "prompt": "menu",
                            "options": {"1": "q", "0": "again"}, "on_fail": "q"},
                      again={"type": "goto", "next": "menu"})
    assert compile_flow(data).nodes["again"].targets() == ["menu"]


def test_prompt_missing_for_selectable_language() -> None:
    """A prompt without a recording in a language the flow can select names that language."""
    data = small_flow()
    data["prompts"] = prompts("menu", languages=[lang for lang in KNOWN.languages if lang != "kk"])
    p = only(problems_of(data), "nodes.menu.prompt")
    assert p.value == "kk" and "no recording in language 'kk'" in p.message


def test_unknown_prompt_queue_language_country() -> None:
    """Names unknown to the center are each reported at their own YAML path."""
    data = small_flow(
        menu={"type": "menu", "prompt": "nope", "on_fail": "q",
              "options": {"1": {"next": "lang", "set": {"queue": "sales"}}}},
        lang={"type": "language", "prompt": "menu", "options": {"1": "en"}, "next": "check"},
        check={"type": "branch", "cases": [{"when": {"country": "US"}, "next": "q"}],
               "otherwise": "q"},
    )
    problems = problems_of(data)
    assert only(problems, "nodes.menu.prompt").value == "nope"
    assert only(problems, "nodes.menu.options.1.set.queue").value == "sales"
    assert only(problems, "nodes.lang.options.1").value == "en"
    assert only(problems, "nodes.check.cases[0].when.country").value == "US"


def test_transfer_number_must_be_e164_literal() -> None:
    """A transfer to a variable or a malformed number is refused (caller input is never dialled)."""
    for bad in ("$order_number", "8-800-555", "+7"):
        data = small_flow(q={"type": "transfer", "number": bad})
        p = only(problems_of(data), "nodes.q.number")
        assert p.value == bad and "E.164" in p.message


def test_collect_digits_are_bounded() -> None:
    """collect needs max_digits and refuses more than 32."""
    node = {"type": "collect", "prompt": "menu", "into": "n", "next": "q", "on_fail": "q"}
    data = small_flow(menu=node)
    assert "max_digits" in only(problems_of(data), "nodes.menu.max_digits").message
    data = small_flow(menu={**node, "max_digits": 1000})
    assert only(problems_of(data), "nodes.menu.max_digits").value == 1000


def test_unknown_site_and_bad_hours() -> None:
    """Business hours name a known site and well-formed spans."""
    data = small_flow()
    data["hours"] = {"orders": {"site": "berlin", "open": "always"},
                     "voc": {"site": "moscow", "weekly": {"mon-fri": "18:00-09:00"}}}
    problems = problems_of(data)
    assert only(problems, "hours.orders.site").value == "berlin"
    assert only(problems, "hours.voc.weekly.mon-fri").value == "18:00-09:00"


def test_all_problems_are_collected() -> None:
    """One ConfigError lists every problem, not just the first."""
    data = copy.deepcopy(small_flow(q={"type": "queue", "queue": "sales"}))
    data["default_queue"] = "billing"
    data["start"] = "missing"
    paths = {p.path for p in problems_of(data)}
    assert {"default_queue", "start", "nodes.q.queue"} <= paths


def test_problem_lines_point_into_the_yaml(tmp_path: Path) -> None:
    """Problems found in a file carry the line of the bad value."""
    text = (MAIN.read_text(encoding="utf-8")
            .replace("next: native_check", "next: native_chek", 1))
    with pytest.raises(ConfigError) as info:
        loads_flow(text, "main-broken.yaml", KNOWN, base_dir=MAIN.parent)
    p = only(info.value.problems, "nodes.welcome.next")
    lines = text.splitlines()
    assert p.line is not None and "native_chek" in lines[p.line - 1]
    assert p.file == "main-broken.yaml"


def test_check_flows_reports_bad_yaml_and_missing_files(tmp_path: Path) -> None:
    """check_flows returns problems for unparsable and missing files instead of raising."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n", encoding="utf-8")
    problems = check_flows([bad, tmp_path / "missing.yaml"], KNOWN)
    assert [p.file for p in problems] == [str(bad), str(tmp_path / "missing.yaml")]
    assert "invalid YAML" in problems[0].message


def test_sim_probabilities_are_checked() -> None:
    """Per-node sim choices must be answers the node takes and add up to at most 1."""
    data = small_flow(menu={"type": "menu", "prompt": "menu", "options": {"1": "q"},
                            "on_fail": "q", "sim": {"choices": {"1": 0.7, "5": 0.1},
                                                    "timeout": 0.5}})
    problems = problems_of(data)
    assert only(problems, "nodes.menu.sim.choices.5").value == "5"
    assert only(problems, "nodes.menu.sim").value == 1.3


def test_prompt_set_file_problems_name_that_file(tmp_path: Path) -> None:
    """A bad prompt-set file is reported under its own name and line; a missing one too."""
    (tmp_path / "prompts.yaml").write_text(
        "prompts:\n  menu: {seconds: 2, languages: [ru, xx]}\n", encoding="utf-8")
    flow = tmp_path / "flow.yaml"
    text = MAIN.read_text(encoding="utf-8")
    flow.write_text(text, encoding="utf-8")
    problems = check_flows([flow], KNOWN)
    bad = [p for p in problems if p.file == str(tmp_path / "prompts.yaml")]
    assert bad and bad[0].path == "prompts.menu.languages[1]" and bad[0].value == "xx"
    assert bad[0].line == 2
    (tmp_path / "prompts.yaml").unlink()
    problems = check_flows([flow], KNOWN)
    assert problems[0].file == str(tmp_path / "prompts.yaml")
    assert "cannot read file" in problems[0].message
