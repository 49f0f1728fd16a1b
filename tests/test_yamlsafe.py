"""Safe YAML loading: plain data only, bounded aliases, no cycles, errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from configkit import run_check

from acd.config import yamlsafe
from acd.config.load import load_center
from acd.errors import EXIT_BAD_INPUT, ConfigError, Problem


def _refused(text: str, file: str = "x.yaml", path: str = "<root>") -> Problem:
    """The single problem ``loads`` reports for ``text``, at YAML path ``path``."""
    with pytest.raises(ConfigError) as info:
        yamlsafe.loads(text, file)
    assert len(info.value.problems) == 1
    problem = info.value.problems[0]
    assert problem.file == file
    assert problem.path == path
    return problem


def _bomb(levels: int, width: int) -> str:
    """A "billion laughs" document: each level holds ``width`` aliases of the one below."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


# --- tags --------------------------------------------------------------------------------------


def test_python_object_tag_refused_without_running(tmp_path: Path) -> None:
    """A python/object/apply tag is refused at its line and the call is never made."""
    target = tmp_path / "made-by-yaml"
    p = _refused(f"a: 1\nb: !!python/object/apply:os.mkdir ['{target}']\n")
    assert p.line == 2
    assert "could not determine a constructor" in p.message
    assert "python/object/apply:os.mkdir" in p.message
    assert not target.exists()


@pytest.mark.parametrize("tag", ["!!python/name:os.system", "!!python/module:os",
                                 "!!python/object:collections.OrderedDict", "!include"])
def test_other_unsafe_or_custom_tags_refused(tag: str) -> None:
    """Python name/module/object tags and custom tags such as !include are all refused."""
    p = _refused(f"center:\n  name: {tag} x\n")
    assert p.line == 2
    assert "could not determine a constructor" in p.message


def test_python_tag_in_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`acd check` on a config with a python tag exits 2 naming the file and line."""
    path = tmp_path / "evil.yaml"
    path.write_text("version: 1\ncenter: !!python/object/apply:os.getcwd []\n", encoding="utf-8")
    code, out, err = run_check(path, capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT
    assert f"{path}:2: <root>: invalid YAML" in err
    assert out == ""


# --- aliases -----------------------------------------------------------------------------------


def test_recursive_alias_in_sequence_refused() -> None:
    """``a: &a [1, *a]`` (a list containing itself) is refused at the alias."""
    p = _refused("a: &a [1, *a]\n")
    assert p.message == "invalid YAML: recursive alias *a refers to a node that contains it"
    assert p.line == 1


def test_recursive_alias_in_mapping_refused() -> None:
    """A mapping that contains an alias to itself three lines down is refused at that line."""
    p = _refused("root: &r\n  child:\n    name: x\n    again: *r\n")
    assert "recursive alias *r" in p.message
    assert p.line == 4


def test_alias_bomb_refused_quickly() -> None:
    """A billion-laughs document (9 levels of 9) is refused as too large, without expanding it."""
    p = _refused(_bomb(levels=9, width=9))
    assert "too many nodes through aliases" in p.message
    assert p.value == f">{yamlsafe.MAX_EXPANDED_NODES} nodes"


def test_too_many_aliases_refused() -> None:
    """More than MAX_ALIASES alias uses are refused at the first one past the limit."""
    limit = yamlsafe.MAX_ALIASES
    ok = "a: &a 1\nb: [" + ", ".join(["*a"] * limit) + "]\n"
    assert yamlsafe.loads(ok)["b"] == [1] * limit
    p = _refused("a: &a 1\nb: [" + ", ".join(["*a"] * (limit + 1)) + "]\n")
    assert p.message == f"invalid YAML: more than {limit} aliases"
    assert p.line == 2


def test_plain_aliases_and_merge_keys_work() -> None:
    """Ordinary anchors, aliases and ``<<`` merge keys load as expected."""
    text = ("base: &base {wrap_up_s: 30, ring_timeout_s: 15}\n"
            "tech: {<<: *base, wrap_up_s: 45}\n"
            "repair: *base\n")
    data = yamlsafe.loads(text)
    assert data["tech"] == {"wrap_up_s": 45, "ring_timeout_s": 15}
    assert data["repair"] == {"wrap_up_s": 30, "ring_timeout_s": 15}


def test_duplicate_anchors_fine() -> None:
    """A redefined anchor is allowed (YAML 1.2); an alias refers to the latest definition."""
    data = yamlsafe.loads("a: &x 1\nb: &x 2\nc: *x\n")
    assert data == {"a": 1, "b": 2, "c": 2}


# --- files -------------------------------------------------------------------------------------


def test_oversized_file_refused_before_reading(tmp_path: Path) -> None:
    """A file over MAX_FILE_BYTES is refused with its size (a sparse file: nothing is read)."""
    path = tmp_path / "huge.yaml"
    with path.open("wb") as fh:
        fh.truncate(yamlsafe.MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError) as info:
        yamlsafe.load_file(path)
    (p,) = info.value.problems
    assert p.file == str(path)
    assert p.value == yamlsafe.MAX_FILE_BYTES + 1
    assert p.message == f"file is larger than {yamlsafe.MAX_FILE_BYTES} bytes"


def test_file_at_size_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of exactly MAX_FILE_BYTES is read; one byte more is refused (limit lowered)."""
    monkeypatch.setattr(yamlsafe, "MAX_FILE_BYTES", 64)
    path = tmp_path / "big.yaml"
    body = "a: 1\n"
    path.write_text(body + "#" * (64 - len(body)), encoding="utf-8")
    assert yamlsafe.load_file(path) == {"a": 1}
    path.write_text(body + "#" * (65 - len(body)), encoding="utf-8")
    with pytest.raises(ConfigError, match="larger than 64 bytes"):
        yamlsafe.load_file(path)


def test_non_utf8_file_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A Latin-1 file is refused as not UTF-8, by the loader and by `acd check` (exit 2)."""
    path = tmp_path / "latin1.yaml"
    path.write_bytes("center:\n  name: Caf\u00e9 support\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        yamlsafe.load_file(path)
    (p,) = info.value.problems
    assert p.file == str(path)
    assert p.message.startswith("file is not UTF-8")
    code, _, err = run_check(path, capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT
    assert "file is not UTF-8" in err


def test_utf8_bom_and_non_latin_text_accepted(tmp_path: Path) -> None:
    """A UTF-8 file with a byte-order mark and Cyrillic text loads unchanged."""
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffsupervisor: Ирина Волкова\n".encode())
    assert yamlsafe.load_file(path) == {"supervisor": "Ирина Волкова"}


def test_missing_file_refused(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the path, not an OSError."""
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        yamlsafe.load_file(path)
    (p,) = info.value.problems
    assert p.file == str(path)
    assert p.message == "cannot read file: No such file or directory"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_document(tmp_path: Path, text: str) -> None:
    """An empty file parses to None, and as a center config it is refused as not a mapping."""
    assert yamlsafe.loads(text) is None
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_center(path)
    (p,) = info.value.problems
    assert p.file == str(path)
    assert p.path == "<root>"
    assert p.message == "the center config must be a mapping"


@pytest.mark.parametrize(("text", "kind"), [("- tech\n- repair\n", "list"),
                                            ("just a sentence\n", "str"),
                                            ("42\n", "int")])
def test_non_mapping_root_refused(tmp_path: Path, text: str, kind: str) -> None:
    """A list or scalar at the root of a center config is refused, naming what it was."""
    path = tmp_path / "root.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_center(path)
    (p,) = info.value.problems
    assert p.value == kind
    assert p.message == "the center config must be a mapping"
    assert p.line == 1


def test_duplicate_mapping_key_refused() -> None:
    """A key given twice in one mapping (a copied group left unrenamed) is an error at line 3."""
    p = _refused("agent_groups:\n  msk-voc: {count: 10}\n  msk-voc: {count: 9}\n",
                 path="agent_groups.msk-voc")
    assert "appears twice (first on line 2)" in p.message
    assert p.line == 3


def test_deeply_nested_document_refused_cleanly() -> None:
    """500 nested lists (a 1 KB file) are a ConfigError naming the file, not a RecursionError."""
    with pytest.raises(ConfigError) as info:
        yamlsafe.loads("[" * 500 + "]" * 500, "deep.yaml")
    assert info.value.problems[0].file == "deep.yaml"


# --- line numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("a: 1\nb: 2\n  c: 3\n", 3, "mapping values are not allowed here"),
    ("a:\n\tb: 1\n", 2, "cannot start any token"),
    ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
    ("a: 1\nb: 'unterminated\n", 3, "found unexpected end of stream"),
])
def test_syntax_errors_carry_line(text: str, line: int, fragment: str) -> None:
    """Syntax errors name the 1-based line where the parser found the problem."""
    p = _refused(text)
    assert p.line == line
    assert p.message.startswith("invalid YAML: ")
    assert fragment in p.message


def test_line_of_finds_nested_keys_and_items() -> None:
    """line_of returns the line of a nested key, of a list item, and of the root."""
    text = ("center:\n"           # 1
            "  name: x\n"         # 2
            "queues:\n"           # 3
            "  tech:\n"           # 4
            "    expansion:\n"    # 5
            "      - {after_s: 8, min_level: 2}\n"  # 6
            "      - after_s: 12\n"                 # 7
            "        add_sites: all\n")             # 8
    assert yamlsafe.line_of(text, ()) == 1
    assert yamlsafe.line_of(text, ("center", "name")) == 2
    assert yamlsafe.line_of(text, ("queues", "tech")) == 4
    assert yamlsafe.line_of(text, ("queues", "tech", "expansion", 0)) == 6
    assert yamlsafe.line_of(text, ("queues", "tech", "expansion", 1, "add_sites")) == 8


def test_line_of_falls_back_to_nearest_parent() -> None:
    """A path that goes past what exists returns the line of the deepest part found."""
    text = "queues:\n  tech:\n    skill: tech\n"
    assert yamlsafe.line_of(text, ("queues", "tech", "missing", "deeper")) == 2
    assert yamlsafe.line_of(text, ("queues", "tech", "skill", 3)) == 3
    assert yamlsafe.line_of("a: [1, 2]\n", ("a", 7)) == 1


def test_line_of_on_broken_or_empty_text() -> None:
    """line_of gives None for text that does not parse or is empty."""
    assert yamlsafe.line_of("a: [1, 2\n", ("a",)) is None
    assert yamlsafe.line_of("", ("a",)) is None


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a: 1\nb: \"x\x00y\"\n", 2, "invalid YAML: character U+0000 is not allowed"),
    ("a: 1\nb: x\x07y\n", 2, "invalid YAML: character U+0007 is not allowed"),
    ("a: 1\n\nb: \x9b\n", 3, "invalid YAML: character U+009B is not allowed"),
    ("a:\n  b: " + "9" * 5000 + "\n", 2, "invalid YAML: integer of 5000 characters (at most "
     "100); quote it if it is text"),
    ("a:\n  - 1\n  - 0x" + "f" * 200 + "\n", 3, "invalid YAML: integer of 202 characters"),
    ("when: 2026-13-45\n", 1, "invalid YAML: cannot read '2026-13-45': month must be in 1..12"),
    ("when: 0000-01-01\n", 1, "invalid YAML: cannot read '0000-01-01': year 0 is out of range"),
])
def test_unreadable_characters_and_values_are_problems_with_a_line(text: str, line: int,
                                                                   message: str) -> None:
    """NUL, control characters, oversized integers and impossible dates are ConfigErrors with
    the file and line, never a ReaderError or ValueError traceback."""
    with pytest.raises(ConfigError) as info:
        yamlsafe.loads(text, "f.yaml")
    (p,) = info.value.problems
    assert (p.file, p.line, p.path) == ("f.yaml", line, "<root>")
    assert p.message.startswith(message)


def test_quoted_long_number_and_tab_are_fine() -> None:
    """A long number written as a quoted string, and tabs inside text, are still read."""
    assert yamlsafe.loads('id: "' + "9" * 5000 + '"\nnote: "a\tb"\n') == {
        "id": "9" * 5000, "note": "a\tb"}


def test_line_of_on_text_with_a_nul_is_none() -> None:
    """Locating a path in text the reader refuses gives None instead of raising."""
    assert yamlsafe.line_of("a: \x00\n", ("a",)) is None
