"""Safe YAML loading: plain data only, aliases bounded, cycles refused, errors with file and line.

PyYAML's SafeLoader already refuses arbitrary tags. It still accepts a recursive alias
(``a: &a [*a]``) and an "alias bomb" whose expansion is exponential; both are refused here
before any consumer walks the tree. Every other failure of PyYAML (a NUL or control
character, a 5,000-digit integer, a date such as ``2026-13-45``) becomes a problem naming
the file and line, never a traceback.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from acd.config.files import YAML_MAX_BYTES, read_text
from acd.errors import ConfigError, Problem, format_path

#: Largest number of nodes a document may expand to once aliases are followed.
MAX_EXPANDED_NODES = 1_000_000
#: Largest number of alias uses in one document.
MAX_ALIASES = 1_000
#: Largest file accepted, in bytes.
MAX_FILE_BYTES = YAML_MAX_BYTES
#: Longest integer accepted, in characters (Python refuses more than 4,300 digits anyway).
MAX_INT_CHARS = 100
_INT = "tag:yaml.org,2002:int"
#: Deepest nesting accepted (PyYAML recurses once per level).
MAX_DEPTH = 64


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and refuses an alias to an anchor still being built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()
        self._alias_uses = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            anchor = event.anchor
            if anchor in self._open_anchors:
                raise yaml.constructor.ConstructorError(
                    None, None, f"recursive alias *{anchor} refers to a node that contains it",
                    event.start_mark,
                )
            self._alias_uses += 1
            if self._alias_uses > MAX_ALIASES:
                raise yaml.constructor.ConstructorError(
                    None, None, f"more than {MAX_ALIASES} aliases", event.start_mark
                )
            return super().compose_node(parent, index)
        event = self.peek_event()
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.constructor.ConstructorError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            anchor = getattr(event, "anchor", None)
            if anchor is None:
                return super().compose_node(parent, index)
            # YAML allows an anchor to be defined again; the newest definition wins.
            self.anchors.pop(anchor, None)
            self._open_anchors.add(anchor)
            try:
                return super().compose_node(parent, index)
            finally:
                self._open_anchors.discard(anchor)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Build one value; a value Python cannot build is a ConstructorError at its line."""
        if node.tag == _INT and isinstance(node, yaml.ScalarNode) \
                and len(node.value) > MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"integer of {len(node.value)} characters (at most "
                f"{MAX_INT_CHARS}); quote it if it is text", node.start_mark)
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:
            shown = node.value if isinstance(node.value, str) else node.tag
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {shown[:60]!r}: {exc}", node.start_mark) from exc


_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"


def _check_keys(node: yaml.Node, path: tuple[str | int, ...], file: str, seen: set[int]) -> None:
    """Refuse keys YAML reads as booleans or null (``NO:``, ``on:``) and keys given twice."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _check_keys(child, (*path, i), file, seen)
    elif isinstance(node, yaml.MappingNode):
        first: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if not isinstance(k, yaml.ScalarNode) or k.tag == _MERGE:
                continue
            if k.tag in (_BOOL, _NULL):
                raise ConfigError([Problem(
                    file, format_path(path), k.value,
                    f"key {k.value!r} is read by YAML as "
                    f"{'a boolean' if k.tag == _BOOL else 'null'}; quote it (\"{k.value}\")",
                    k.start_mark.line + 1)])
            if k.value in first:
                raise ConfigError([Problem(
                    file, format_path((*path, k.value)), k.value,
                    f"key appears twice (first on line {first[k.value].start_mark.line + 1})",
                    k.start_mark.line + 1)])
            first[k.value] = k
            _check_keys(v, (*path, k.value), file, seen)


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo)
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo) + _expanded_size(v, memo)
    memo[key] = size
    if size > MAX_EXPANDED_NODES:
        raise _TooLarge(size)
    return size


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def loads(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document of plain data, or raise ConfigError naming the file and line."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader refuses NUL and control characters here
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            _expanded_size(node, {})
        except _TooLarge as exc:
            raise ConfigError(
                [Problem(file, "<root>", f">{MAX_EXPANDED_NODES} nodes",
                         "document expands to too many nodes through aliases (alias bomb?)")]
            ) from exc
        _check_keys(node, (), file, set())
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = " ".join(str(x) for x in (exc.context, exc.problem) if x)
        raise ConfigError([Problem(file, "<root>", None, f"invalid YAML: {msg}", line)]) from exc
    except yaml.reader.ReaderError as exc:
        raise ConfigError([_reader_problem(text, file, exc)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file, "<root>", None, f"invalid YAML: {exc}")]) from exc
    except RecursionError as exc:
        raise ConfigError([Problem(file, "<root>", None, "invalid YAML: nested too deeply")]) \
            from exc
    finally:
        if loader is not None:
            loader.dispose()


def _reader_problem(text: str, file: str, exc: yaml.reader.ReaderError) -> Problem:
    """A character YAML does not allow (NUL, a control character), with its line."""
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    char = exc.character
    code = f"U+{char:04X}" if exc.encoding == "unicode" else f"byte 0x{char:02x}"
    return Problem(file, "<root>", None, f"invalid YAML: character {code} is not allowed "
                   "(NUL and control characters other than tab and newline)", line)


def read_yaml(path: str | Path) -> tuple[Any, str]:
    """The parsed document and the text of the YAML file ``path`` (read once, regular files
    only, at most :data:`MAX_FILE_BYTES`); every problem is a ConfigError naming the file."""
    text = read_text(path, MAX_FILE_BYTES)
    return loads(text, str(path)), text


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file with :func:`loads`; unreadable, special or huge files are
    ConfigErrors."""
    return read_yaml(path)[0]


@functools.lru_cache(maxsize=4)
def _composed(text: str) -> yaml.Node | None:
    """The node tree of ``text``, kept for the few files whose problems are being located."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        return loader.get_single_node()
    except yaml.YAMLError:
        return None
    finally:
        if loader is not None:
            loader.dispose()


def line_of(text: str, loc: tuple[str | int, ...] | list[str | int]) -> int | None:
    """The 1-based line of the node at ``loc`` in ``text`` (the nearest parent found), or None.

    The text is parsed once however many problems are located in it.
    """
    node = _composed(text)
    if node is None:
        return None
    line: int = node.start_mark.line + 1
    for part in loc:
        found = _child(node, part)
        if found is None:
            break
        node, line = found
    return line


def line_of_path(text: str, path: str) -> int | None:
    """:func:`line_of` for a path written as in problems (``queues.tech.talk``, ``a[2].b``).

    Keys may themselves hold dots: the longest run of parts that is a key of the mapping wins.
    """
    node = _composed(text)
    if node is None or path.startswith("<"):
        return None
    parts: list[str | int] = []
    for token in re.split(r"(\[\d+\])", path):
        if token.startswith("[") and token.endswith("]"):
            parts.append(int(token[1:-1]))
        elif token:
            parts += token.split(".")
    parts = [p for p in parts if p != ""]
    line: int = node.start_mark.line + 1
    i = 0
    while i < len(parts):
        found = None
        for j in range(len(parts), i, -1):  # longest dotted key first
            chunk = parts[i:j]
            if len(chunk) > 1 and not all(isinstance(x, str) for x in chunk):
                continue
            key: str | int = ".".join(str(x) for x in chunk) if len(chunk) > 1 else chunk[0]
            found = _child(node, key)
            if found is not None:
                i = j
                break
        if found is None:
            break
        node, line = found
    return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, int] | None:
    """The child of ``node`` at key or index ``part`` and the line where it is written."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                return v, k.start_mark.line + 1
    elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
          and 0 <= part < len(node.value)):
        child = node.value[part]
        return child, child.start_mark.line + 1
    return None
