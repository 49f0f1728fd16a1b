"""Several channel variables in one write, as Asterisk's ``ARRAY()`` dialplan function sets
them: shared by the FastAGI (``SET VARIABLE``) and ARI (``POST /channels/{id}/variable``)
shells, so each sets what one moment decides in one round trip.

Both hand a name ending in ``)`` to the dialplan function's writer (``pbx_builtin_setvar_helper``
then ``ast_func_write``). ``ARRAY(n1,n2,...)`` (func_strings.c ``array()``, loaded by default)
splits its names and its value with ``AST_STANDARD_APP_ARGS``: on commas outside quotes,
parentheses and brackets, with quotes and backslashes removed, and sets each name to the value
in the same place (names beyond the values get ""). A name may itself be a function such as
``CHANNEL(language)`` or ``TIMEOUT(absolute)``. So a value must hold no ``,`` ``"`` ``\\`` ``(``
``)`` and only balanced brackets; dial strings, agent and call ids, numbers, language codes and
the engine's ``|``-separated records qualify, and anything else is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: A name ``ARRAY()`` may set: a variable, or a function whose argument holds no separator.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\([A-Za-z0-9_.-]*\))?")
#: Characters ``ARRAY()`` would read as structure inside a value.
_UNSAFE = frozenset(',"\\()')


def array_value(value: str) -> str:
    """``value`` if ``ARRAY()`` keeps it whole as one value, else ValueError."""
    depth = 0
    for char in value:
        if char in _UNSAFE:
            raise ValueError(f"{value[:80]!r} cannot be one value of ARRAY(): {char!r} would "
                             "split or change it.")
        depth += (char == "[") - (char == "]")
        if depth < 0:
            break
    if depth:
        raise ValueError(f"{value[:80]!r} cannot be one value of ARRAY(): unbalanced "
                         "brackets would swallow its separators.")
    return value


def array(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The name and value that set every ``(name, value)`` of ``pairs`` (two or more) in one
    write: ``("ARRAY(n1,n2)", "v1,v2")``. ValueError for a name or value ARRAY() would not
    keep whole."""
    if len(pairs) < 2:
        raise ValueError("ARRAY() is for two or more variables; set one directly.")
    for name, _ in pairs:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a name ARRAY() can set.")
    names = ",".join(name for name, _ in pairs)
    return f"ARRAY({names})", ",".join(array_value(value) for _, value in pairs)
