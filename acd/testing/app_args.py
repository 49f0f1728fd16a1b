"""How Asterisk splits a dialplan function's or application's arguments, for the fakes.

``AST_STANDARD_APP_ARGS`` (app.c ``__ast_app_separate_args``): split on commas outside double
quotes, parentheses and square brackets; quotes and backslashes are removed (a backslash keeps
the next character); a trailing comma leaves one more, empty, argument. ``ARRAY(n1,n2,...)``
(func_strings.c ``array()``) splits its names and its value this way and sets each name to the
value in the same place, names beyond the values to "".
"""

from __future__ import annotations


def app_args(text: str) -> list[str]:
    """``text`` split as ``AST_STANDARD_APP_ARGS`` splits it."""
    args: list[str] = []
    current: list[str] = []
    paren = bracket = 0
    quote = False
    chars = iter(text)
    for char in chars:
        if char == "(":
            paren += 1
        elif char == ")":
            paren = max(0, paren - 1)
        elif char == "[":
            bracket += 1
        elif char == "]":
            bracket = max(0, bracket - 1)
        elif char == '"':
            quote = not quote
            continue
        elif char == "\\":
            char = next(chars, "")
        elif char == "," and not (paren or quote or bracket):
            args.append("".join(current))
            current = []
            continue
        current.append(char)
    if current or text.endswith(","):
        args.append("".join(current))
    return args


def array_writes(name: str, value: str) -> list[tuple[str, str]] | None:
    """What writing ``value`` to ``name`` sets when ``name`` is ``ARRAY(...)``: each name with
    its value, in order; None for any other name."""
    if not (name.startswith("ARRAY(") and name.endswith(")")):
        return None
    names, values = app_args(name[6:-1]), app_args(value)
    return [(n, values[i] if i < len(values) else "") for i, n in enumerate(names)]
