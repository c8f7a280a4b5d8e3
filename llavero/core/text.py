"""The one rule for text from outside: well-formed Unicode without NUL (docs/security.md).

A lone surrogate (`"\\ud800"`) is a valid Python string and valid JSON, but it cannot be
encoded as UTF-8: stored, it breaks every later answer that contains it. PostgreSQL cannot
store NUL in text at all. Request bodies, query and path parameters and every row written
(console and CLI included) go through `check`/`check_tree`, so such text is a 400 naming the
field before anything is written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from llavero.errors import InvalidArgument

# A name this short and plain cannot be a key or token string (38 random characters after a
# prefix), so it may be shown; anything else a client sent as a name is not echoed.
SHOWABLE_NAME: Final = re.compile(r"[a-z][a-z0-9_]{0,31}")


def child(field: str, name: object) -> str:
    """The path of `name` under `field` for an error message: the name itself only when it
    is `SHOWABLE_NAME` (e.g. `colour`), else just the parent, so a pasted key is not echoed."""
    if isinstance(name, str) and SHOWABLE_NAME.fullmatch(name):
        return f"{field}.{name}" if field else name
    return field or "body"


def problem(value: str) -> str | None:
    """Why `value` cannot be stored and answered, or None when it can."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not well-formed Unicode (it holds a lone surrogate)"
    return None


def check(value: str, field: str) -> str:
    reason = problem(value)
    if reason is not None:
        raise InvalidArgument(reason, field=field)
    return value


def check_tree(value: Any, field: str) -> None:
    """Every string in a JSON-like value, keys included; the error names the path to it."""
    if isinstance(value, str):
        check(value, field)
    elif isinstance(value, Mapping):
        for name, item in value.items():
            if isinstance(name, str):
                check(name, field or "body")
                check_tree(item, child(field, name))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            check_tree(item, f"{field}[{index}]")
