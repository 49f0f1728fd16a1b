"""Problems in input files are one line each, blame the right file and line, and say what to do.

Each test makes one ordinary mistake (a typo in ``center_overrides``, a file of the wrong kind,
a misspelt ``next:``, a header-only CSV, an Excel byte order mark, ...) and checks what the
loader reports, and where the CLI's own output was at fault, what ``acd`` prints.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from acd.cli import main
from acd.config.load import load_center
from acd.config.messages import Shown, closest, shown, wrong_kind
from acd.config.yamlsafe import line_of_path
from acd.errors import ConfigError, Problem
from acd.service.settings import load_settings
from ivr.loader import load_flow
from ivr.testing import KNOWN, compile_flow, small_flow
from sim.scenario import load_scenario
from sim.traffic import QueueLogMapping, load_call_log, load_queue_log, load_traffic
from sim.traffic.arrival import NATIVE_LANGUAGE
from sim.traffic.profile import read_bank_calls

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
CENTER = CONFIG / "center.yaml"
TRAFFIC = CONFIG / "traffic" / "reference.yaml"
SCENARIO = CONFIG / "scenarios" / "reference.yaml"
QUEUES = ("tech", "repair", "orders", "voc")
LANGUAGES = tuple(sorted(set(NATIVE_LANGUAGE.values())))
COUNTRIES = tuple(NATIVE_LANGUAGE)
MAIN_TEXT = (CONFIG / "ivr" / "main.yaml").read_text(encoding="utf-8")
CALL_LOG = ("arrival,caller,language,queue,talk_s,abandon_s\n"
            "0,+79161234567,ru,tech,100,\n5,+79161234568,ru,tech,,30\n")


def problems_of(call: object, *args: object) -> list[Problem]:
    """The problems a loader raises (fails the test if it accepts its input)."""
    with pytest.raises(ConfigError) as info:
        call(*args)  # type: ignore[operator]
    return info.value.problems


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first line containing ``needle``, found without the loader."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def scenario_with(tmp_path: Path, extra: str = "", **replace: str) -> Path:
    """The reference scenario with absolute paths, ``extra`` appended and texts replaced."""
    text = (SCENARIO.read_text(encoding="utf-8")
            .replace("../center.yaml", str(CENTER))
            .replace("../traffic/reference.yaml", str(TRAFFIC)))
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "scenario.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


OVERRIDE_TYPO = """
center_overrides:
  queues:
    tech:
      wrap_up_sx: 10
"""


# --- center_overrides: the scenario is blamed, at its own line --------------------------------


def test_override_typo_is_blamed_on_the_scenario_line(tmp_path: Path) -> None:
    """A typo under center_overrides names the scenario file, its line and the full YAML path."""
    scenario = scenario_with(tmp_path, OVERRIDE_TYPO)
    (p,) = problems_of(load_scenario, scenario)
    text = scenario.read_text(encoding="utf-8")
    assert (p.file, p.path, p.line) == (str(scenario), "center_overrides.queues.tech.wrap_up_sx",
                                        line_of(text, "wrap_up_sx:"))
    assert p.message == "unknown key; did you mean 'wrap_up_s'?" and p.value == 10


def test_override_typo_cli_names_the_scenario_not_the_center(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`acd sim run` prints the scenario's file:line for an override typo, not center.yaml."""
    scenario = scenario_with(tmp_path, OVERRIDE_TYPO)
    line = line_of(scenario.read_text(encoding="utf-8"), "wrap_up_sx:")
    assert main(["sim", "run", str(scenario), "-q", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{scenario}:{line}: center_overrides.queues.tech.wrap_up_sx: unknown key" in err
    assert "center.yaml" not in err


def test_problem_outside_the_overrides_still_blames_the_center_file(tmp_path: Path) -> None:
    """With overrides present, a mistake in the center file itself keeps the center's line."""
    center = tmp_path / "center.yaml"
    text = CENTER.read_text(encoding="utf-8").replace("  tech:\n    skill: tech\n",
                                                      "  tech:\n    skil: tech\n", 1)
    assert "skil: tech" in text
    center.write_text(text, encoding="utf-8")
    scenario = scenario_with(tmp_path, "center_overrides:\n  queues:\n    repair:\n"
                             "      wrap_up_s: 10\n", **{str(CENTER): str(center)})
    problems = problems_of(load_scenario, scenario)
    p = next(p for p in problems if p.path == "queues.tech.skil")
    assert (p.file, p.line) == (str(center), line_of(text, "skil: tech"))
    assert p.message == "unknown key; did you mean 'skill'?"


def test_override_with_a_bad_value_is_blamed_on_the_scenario(tmp_path: Path) -> None:
    """An override naming an unknown skill (a cross-check) is reported in the scenario file."""
    scenario = scenario_with(tmp_path, "center_overrides:\n  queues:\n    tech:\n"
                             "      skill: tehc\n")
    (p,) = problems_of(load_scenario, scenario)
    assert (p.file, p.path, p.value) == (str(scenario), "center_overrides.queues.tech.skill",
                                         "tehc")
    assert p.line == line_of(scenario.read_text(encoding="utf-8"), "skill: tehc")


# --- unknown and missing keys: named, never the whole mapping ---------------------------------


def test_missing_key_is_named_without_dumping_the_file(tmp_path: Path) -> None:
    """A missing required section names the key and carries no value (it used to dump the file)."""
    data = yaml.safe_load(CENTER.read_text(encoding="utf-8"))
    del data["sites"]
    path = tmp_path / "center.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    problems = problems_of(load_center, path)
    p = next(p for p in problems if p.path == "sites")
    assert p.message == "missing required key 'sites'" and p.value is None
    assert max(len(str(p)) for p in problems) < 300


def test_unknown_key_without_a_close_match_lists_the_valid_keys(tmp_path: Path) -> None:
    """An unknown key nothing resembles lists every key valid at that place."""
    data = yaml.safe_load(CENTER.read_text(encoding="utf-8"))
    data["queues"]["tech"]["routing"]["zzz"] = 1
    path = tmp_path / "center.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    (p,) = problems_of(load_center, path)
    assert p.path == "queues.tech.routing.zzz"
    assert p.message == ("unknown key; valid: agent_selection, call_selection, min_level, "
                         "newcomers, site_affinity, sites")


def test_long_values_are_summarised() -> None:
    """A value too long for one line is summarised by its size and first keys or items."""
    big = {f"key{i}": list(range(20)) for i in range(12)}
    assert repr(shown(big)) == "a mapping of 12 key(s): key0, key1, key2, key3, ..."
    assert repr(shown(list(range(50)))) == "[0, 1, 2, 3, ...] (50 items)"
    assert shown(17) == 17 and isinstance(shown("x" * 200), Shown)
    assert len(repr(shown("x" * 200))) <= 80


def test_closest_finds_typos_and_case_only() -> None:
    """closest() finds a misspelling and a case difference, and nothing for an unrelated word."""
    assert closest("wrap_up_sx", ["wrap_up_s", "priority"]) == "wrap_up_s"
    assert closest("TECH", ["tech", "repair"]) == "tech"
    assert closest("zzz", ["tech", "repair"]) is None


# --- a file of the wrong kind is one line -----------------------------------------------------


def test_scenario_given_as_center_config_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`acd check <scenario>` says the file is a scenario in one line, exit 2."""
    (p,) = problems_of(load_center, SCENARIO)
    assert p.message.startswith("this looks like a scenario, not a center config")
    assert (p.file, p.line) == (str(SCENARIO), 1)
    assert main(["check", str(SCENARIO)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "looks like a scenario" in err


def test_center_given_as_scenario_is_one_short_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`acd sim run <center>` used to print 28 KB; now one line saying it is a center config."""
    (p,) = problems_of(load_scenario, CENTER)
    assert p.message.startswith("this looks like a center config, not a scenario")
    for days in ([], ["--days", "0.1"]):  # a command-line value must not hide the kind
        assert main(["sim", "run", str(CENTER), "-q", *days,
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert len(err) < 400 and "looks like a center config" in err


@pytest.mark.parametrize(
    ("load", "path", "found", "expected"),
    [
        (lambda p: load_traffic(p, QUEUES, LANGUAGES, COUNTRIES), CENTER, "center config",
         "traffic file"),
        (lambda p: load_flow(p, KNOWN), CENTER, "center config", "call flow"),
        (lambda p: load_flow(p, KNOWN), CONFIG / "ivr" / "prompts.yaml", "prompt set",
         "call flow"),
        (load_settings, SCENARIO, "scenario", "service settings file"),
        (load_center, TRAFFIC, "traffic file", "center config"),
    ],
)
def test_every_loader_names_a_file_of_the_wrong_kind(
        load: object, path: Path, found: str, expected: str) -> None:
    """Traffic, flow, settings and center loaders each say which kind of file they were given."""
    (p,) = problems_of(load, path)
    assert p.message.startswith(f"this looks like a {found}, not a")
    assert expected in p.message and p.file == str(path)


def test_real_file_with_typos_is_not_called_another_kind() -> None:
    """A center config with typos in shared keys is still reported key by key."""
    assert wrong_kind({"sites": {}, "staffing": 1}, "center config") is None
    assert wrong_kind({"center": "c.yaml", "staffing": {}}, "center config") is not None


# --- flows: the cause, not its knock-on problems ----------------------------------------------


def test_one_bad_next_is_one_problem_in_the_reference_flow(tmp_path: Path) -> None:
    """A misspelt next: in main.yaml is 1 problem with a suggestion, not 29."""
    flows = tmp_path / "ivr"
    shutil.copytree(CONFIG / "ivr", flows)
    main_flow = flows / "main.yaml"
    text = main_flow.read_text(encoding="utf-8").replace("next: native_check",
                                                         "next: native_chek", 1)
    main_flow.write_text(text, encoding="utf-8")
    (p,) = problems_of(load_flow, main_flow, KNOWN)
    assert (p.path, p.value, p.line) == ("nodes.welcome.next", "native_chek",
                                         line_of(text, "native_chek"))
    assert p.message == "unknown node; did you mean 'native_check'?"


def test_unguessable_bad_next_gives_one_summary_of_stranded_nodes() -> None:
    """A next: like nothing known is reported, and the nodes it strands are one problem."""
    data = small_flow(menu={"type": "menu", "prompt": "menu", "options": {"1": "zzzz"},
                            "on_fail": "zzzz"},
                      more={"type": "goto", "next": "q"})
    problems = problems_of(compile_flow, data)
    assert [p.path for p in problems] == ["nodes.menu.options.1", "nodes.menu.on_fail",
                                          "nodes.q"]
    stranded = problems[2]
    assert stranded.value == ["q", "more"] and stranded.message.startswith("2 node(s) unreachable")


def test_a_real_orphan_is_still_reported_next_to_a_typo() -> None:
    """A node nothing points to stays an error even when a typo elsewhere is corrected."""
    data = small_flow(menu={"type": "menu", "prompt": "menu", "options": {"1": "qq"},
                            "on_fail": "q"},
                      orphan={"type": "hangup", "reason": "x"})
    problems = problems_of(compile_flow, data)
    assert [(p.path, p.value) for p in problems] == [("nodes.menu.options.1", "qq"),
                                                     ("nodes.orphan", "orphan")]
    assert "did you mean 'q'?" in problems[0].message


def test_unknown_node_key_suggests_the_right_key() -> None:
    """A misspelt key of a node names the key it probably meant."""
    data = small_flow(q={"type": "queue", "queu": "tech"})
    (p,) = problems_of(compile_flow, data)
    assert p.path == "nodes.q.queu" and p.message == ("unknown key for a queue node; "
                                                      "did you mean 'queue'?")


# --- acd ivr check: directories ---------------------------------------------------------------


def test_ivr_check_missing_flow_dir_exits_2_naming_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`acd ivr check --flow-dir <missing>` exits 2 naming the directory (it exited 0 silently)."""
    missing = tmp_path / "missing"
    assert main(["ivr", "check", "--flow-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"<command line>: --flow-dir: no such directory (got '{missing}')" in err


def test_ivr_check_of_a_directory_checks_its_flows(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`acd ivr check <dir>` checks every flow in it (it said "no such flow file")."""
    assert main(["ivr", "check", str(CONFIG / "ivr")]) == 0
    out = capsys.readouterr().out
    assert "main.yaml" in out and "callback.yaml" in out and "prompts.yaml" not in out


def test_ivr_check_of_a_directory_without_flows_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory with no flow files is refused rather than passing with nothing checked."""
    assert main(["ivr", "check", str(tmp_path)]) == 2
    assert f"{tmp_path}: no call flows" in capsys.readouterr().err


def test_ivr_trace_of_a_directory_says_it_is_a_directory(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`acd ivr trace <dir>` says the argument is a directory and points to --flow-dir."""
    assert main(["ivr", "trace", str(CONFIG / "ivr"), "--caller", "+79161234567"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_ivr_check_misspelt_flow_name_suggests_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A flow name that is nearly right is suggested."""
    assert main(["ivr", "check", "mian"]) == 2
    assert "did you mean 'main'?" in capsys.readouterr().err


# --- CSVs and queue_logs: nothing to replay, byte order marks ---------------------------------


def test_header_only_call_log_is_refused(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A call log with only its header has no calls: exit 2 naming the file (it ran as 1970)."""
    log = tmp_path / "calls.csv"
    log.write_text(CALL_LOG.splitlines()[0] + "\n", encoding="utf-8")
    (p,) = problems_of(load_call_log, log, QUEUES, LANGUAGES, COUNTRIES)
    assert p.file == str(log) and p.message.startswith("no calls")
    assert main(["sim", "run", str(SCENARIO), "--replay", str(log), "-q",
                 "--out", str(tmp_path / "out")]) == 2
    assert f"{log}:1: <rows>: no calls" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_empty_queue_log_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty queue_log has no events: exit 2 naming the file."""
    log = tmp_path / "queue_log"
    log.write_text("\n", encoding="utf-8")
    (p,) = problems_of(load_queue_log, log, QueueLogMapping({}), QUEUES, LANGUAGES, COUNTRIES)
    assert p.file == str(log) and p.message.startswith("no queue_log events")
    assert main(["sim", "run", str(SCENARIO), "--queue-log", str(log), "-q",
                 "--out", str(tmp_path / "out")]) == 2
    assert f"{log}: <root>: no queue_log events" in capsys.readouterr().err


def test_header_only_traffic_profile_csv_is_refused(tmp_path: Path) -> None:
    """The bank CSV behind the traffic profile is refused when it has no rows."""
    csv = tmp_path / "bank.csv"
    csv.write_text("rownames,DateTime,Calls\n", encoding="utf-8")
    (p,) = problems_of(read_bank_calls, csv)
    assert p.file == str(csv) and "no calls" in p.message


def test_call_log_with_a_byte_order_mark_reads_like_without(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" (a byte order mark) gives the same calls as plain UTF-8."""
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    plain.write_text(CALL_LOG, encoding="utf-8")
    bom.write_bytes(b"\xef\xbb\xbf" + CALL_LOG.encode("utf-8"))
    assert load_call_log(bom, QUEUES, LANGUAGES, COUNTRIES).calls == \
        load_call_log(plain, QUEUES, LANGUAGES, COUNTRIES).calls


def test_bank_csv_and_queue_log_with_a_byte_order_mark_are_read(tmp_path: Path) -> None:
    """The traffic-profile CSV and a queue_log starting with a byte order mark are read."""
    csv = tmp_path / "bank.csv"
    csv.write_bytes(b"\xef\xbb\xbfrownames,DateTime,Calls\n1,2003-03-03T07:00:00Z,111\n")
    assert read_bank_calls(csv) == {date(2003, 3, 3): {420: 111}}
    sample = (ROOT / "tests" / "data" / "queue_log.sample").read_bytes()
    log = tmp_path / "queue_log"
    log.write_bytes(b"\xef\xbb\xbf" + sample)
    mapping = QueueLogMapping({"support_tech": "tech", "support_tech_uk": "tech",
                               "support_repair": "repair", "sales": "orders", "voc": "voc"})
    with_bom = load_queue_log(log, mapping, QUEUES, LANGUAGES, COUNTRIES)
    without = load_queue_log(ROOT / "tests" / "data" / "queue_log.sample", mapping, QUEUES,
                             LANGUAGES, COUNTRIES)
    assert with_bom.calls == without.calls and with_bom.staffing == without.staffing


# --- traffic files and scenario cross-checks carry lines --------------------------------------


def test_traffic_file_problem_has_its_line_and_a_suggestion(tmp_path: Path) -> None:
    """A misspelt queue in a traffic file is file:line: queues.tehc with 'did you mean'."""
    text = TRAFFIC.read_text(encoding="utf-8").replace("\n  tech:", "\n  tehc:", 1)
    path = tmp_path / "traffic.yaml"
    path.write_text(text, encoding="utf-8")
    problems = problems_of(load_traffic, path, QUEUES, LANGUAGES, COUNTRIES)
    p = next(p for p in problems if p.path == "queues.tehc")
    assert p.line == line_of(text, "  tehc:")
    assert p.message == "unknown queue; valid: orders, repair, tech, voc; did you mean 'tech'?"
    assert str(p).startswith(f"{path}:{p.line}: queues.tehc: unknown queue")


def test_scenario_cross_checks_carry_lines(tmp_path: Path) -> None:
    """Unknown sites, groups and pause reasons in a scenario name their line and a suggestion."""
    scenario = scenario_with(
        tmp_path, **{"reason: lunch}": "reason: lnch}", "    kyiv:\n": "    kyivv:\n"})
    text = scenario.read_text(encoding="utf-8")
    problems = {p.path: p for p in problems_of(load_scenario, scenario)}
    site = problems["staffing.shifts.kyivv"]
    assert site.line == line_of(text, "kyivv:")
    assert site.message == "unknown site; valid: kyiv, moscow; did you mean 'kyiv'?"
    reason = problems["staffing.breaks[1].reason"]
    assert reason.line == line_of(text, "lnch") and "did you mean 'lunch'?" in reason.message
    assert problems["staffing.shifts"].line == line_of(text, "  shifts:")


def test_scenario_missing_traffic_file_blames_its_traffic_line(tmp_path: Path) -> None:
    """A scenario naming a traffic file that does not exist is reported at its traffic: line."""
    scenario = scenario_with(tmp_path, **{str(TRAFFIC): "nope.yaml"})
    (p,) = problems_of(load_scenario, scenario)
    assert (p.file, p.path, p.value) == (str(scenario), "traffic", "nope.yaml")
    assert p.line == line_of(scenario.read_text(encoding="utf-8"), "traffic: nope.yaml")


def test_line_of_path_follows_written_paths_and_dotted_keys() -> None:
    """line_of_path reads a.b[1].c paths and keys that contain dots."""
    text = "a:\n  x.y:\n    - 1\n    - b: 2\nc: 3\n"
    assert line_of_path(text, "a.x.y[1].b") == 4
    assert line_of_path(text, "c") == 5
    assert line_of_path(text, "a.missing") == 1
    assert line_of_path(text, "<root>") is None


# --- found on the way: empty files, missing prompt sets, unmapped queue_log queues ------------


def test_empty_files_say_they_are_empty(tmp_path: Path) -> None:
    """An empty center, scenario, flow or traffic file says so, not "got 'NoneType'"."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    for problems in (problems_of(load_center, empty), problems_of(load_scenario, empty),
                     problems_of(load_flow, empty, KNOWN),
                     problems_of(load_traffic, empty, QUEUES, LANGUAGES, COUNTRIES)):
        assert len(problems) == 1 and str(problems[0]).endswith("(got an empty file)")


def test_scenario_naming_an_empty_center_is_one_problem(tmp_path: Path) -> None:
    """A scenario whose center file is empty gets one problem naming that file (not 7)."""
    empty = tmp_path / "center.yaml"
    empty.write_text("", encoding="utf-8")
    scenario = scenario_with(tmp_path, **{str(CENTER): str(empty)})
    (p,) = problems_of(load_scenario, scenario)
    assert p.file == str(empty) and str(p).endswith("(got an empty file)")


def test_missing_prompt_set_file_is_one_problem(tmp_path: Path) -> None:
    """A flow whose prompt-set file is missing gets one problem, not one per prompt used."""
    flow = tmp_path / "main.yaml"
    flow.write_text(MAIN_TEXT, encoding="utf-8")
    (p,) = problems_of(load_flow, flow, KNOWN)
    assert p.file == str(tmp_path / "prompts.yaml") and "cannot read file" in p.message


def test_flow_given_as_prompt_set_is_blamed_on_the_prompts_line(tmp_path: Path) -> None:
    """`prompts: main.yaml` (a flow, not a prompt set) is one problem at the prompts: line."""
    flow = tmp_path / "flow.yaml"
    text = MAIN_TEXT.replace("prompts: prompts.yaml", "prompts: other.yaml")
    flow.write_text(text, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(MAIN_TEXT, encoding="utf-8")
    (p,) = problems_of(load_flow, flow, KNOWN)
    assert (p.file, p.path, p.line) == (str(flow), "prompts", line_of(text, "prompts: other"))
    assert p.message.startswith("the file looks like a call flow, not a prompt set")


def test_unmapped_queue_log_queue_says_how_to_map_it(tmp_path: Path) -> None:
    """A queue_log queue with no mapping names --queue-map and the configured queues."""
    log = tmp_path / "queue_log"
    log.write_text("1740981600|1.1|weird_q|NONE|ENTERQUEUE||+79161234567|1\n"
                   "1740981610|1.1|weird_q|NONE|ABANDON|1|1|10\n", encoding="utf-8")
    (p,) = problems_of(load_queue_log, log, QueueLogMapping({}), QUEUES, LANGUAGES, COUNTRIES)
    assert (p.path, p.value, p.line) == ("queuename", "weird_q", 1)
    assert "--queue-map weird_q=QUEUE (queues: orders, repair, tech, voc)" in p.message


def test_misspelt_required_key_is_one_problem(tmp_path: Path) -> None:
    """A required key written misspelt is one "did you mean" problem, not also "missing"."""
    cases = [
        (CENTER, "\nagent_groups:", "\nagent_group:", load_center, "agent_groups"),
        (TRAFFIC, "\nvolume:", "\nvolum:",
         lambda p: load_traffic(p, QUEUES, LANGUAGES, COUNTRIES), "volume"),
        (CONFIG / "ivr" / "main.yaml", "\nnodes:", "\nnode:", lambda p: load_flow(p, KNOWN),
         "nodes"),
        (CONFIG / "ivr" / "main.yaml", "\nstart:", "\nstrat:", lambda p: load_flow(p, KNOWN),
         "start"),
    ]
    for source, old, new, load, meant in cases:
        text = source.read_text(encoding="utf-8")
        assert old in text
        path = tmp_path / source.name
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        if source.parent.name == "ivr":
            shutil.copy(CONFIG / "ivr" / "prompts.yaml", tmp_path / "prompts.yaml")
        (p,) = problems_of(load, path)
        assert p.message == f"unknown {'top-level ' * (source.parent.name == 'ivr')}key; " \
            f"did you mean {meant!r}?", p
        assert p.line == line_of(path.read_text(encoding="utf-8"), new.strip())


def test_traffic_distribution_and_share_problems_carry_lines(tmp_path: Path) -> None:
    """Problems inside a queue's talk distribution and in the share sums name their lines."""
    doc = yaml.safe_load(TRAFFIC.read_text(encoding="utf-8"))
    doc["queues"]["tech"]["talk"]["mean"] = -390
    doc["queues"]["tech"]["share"] = 0.9
    path = tmp_path / "traffic.yaml"
    text = yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    problems = {p.path: p for p in problems_of(load_traffic, path, QUEUES, LANGUAGES, COUNTRIES)}
    assert problems["queues.tech.talk.mean"].line == line_of(text, "mean: -390")
    assert problems["queues"].line == line_of(text, "queues:")
