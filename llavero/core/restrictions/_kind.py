"""What every restriction kind module declares (`Kind`), and the validation helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from llavero.core import text
from llavero.core.codes import Code
from llavero.core.context import RequestContext
from llavero.errors import InvalidArgument

MAX_ENTRIES: Final = 100
MAX_LENGTH: Final = 255
DNS_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One line of a dry-run explanation."""

    restriction: str
    allowed: bool
    matched_rule: str | None
    reason: str


class Matcher(Protocol):
    """One kind's entries of one key, compiled for the hot path."""

    def allows(self, ctx: RequestContext) -> bool: ...

    def explain(self, ctx: RequestContext) -> RuleCheck: ...


@dataclass(frozen=True, slots=True)
class Kind:
    """A restriction kind: the field of `restrictions` it is stored under, the code a refusal
    answers, whether it is one of the application restrictions (a key takes at most one), how
    an entry is normalised and the entries compiled, the context fields a request must carry
    for it, and how the console edits it (`lines`: a text area, one entry per line; `rows`:
    rows of inputs) and names its badge."""

    name: str
    code: Code
    application: bool
    normalize_entry: Callable[[Any, str], Any]
    compile: Callable[[list[Any]], Matcher]
    context: tuple[str, ...]
    form: Literal["lines", "rows"]
    badge: str
    description: str


def refused(restriction: str, reason: str) -> RuleCheck:
    return RuleCheck(restriction, False, None, reason)


def entries(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise InvalidArgument("must be a list", field=field)
    if len(value) > MAX_ENTRIES:
        raise InvalidArgument(
            f"has {len(value)} entries, at most {MAX_ENTRIES} allowed", field=field
        )
    return list(value)


def dedupe(values: list[Any]) -> list[Any]:
    unique: list[Any] = []
    for value in values:
        if value not in unique:
            unique.append(value)
    return unique


def string(value: Any, field: str, max_length: int = MAX_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidArgument("must be a string", field=field)
    stripped = value.strip()
    if not stripped:
        raise InvalidArgument("must not be empty", field=field)
    if len(stripped) > max_length:
        raise InvalidArgument(f"is longer than {max_length} characters", field=field)
    return stripped


def record(value: Any, field: str, required: str, optional: frozenset[str]) -> Mapping[str, Any]:
    """An entry that is an object with one required field and some optional ones."""
    if not isinstance(value, Mapping):
        raise InvalidArgument("must be an object", field=field)
    for name in value:
        if name != required and name not in optional:
            raise InvalidArgument("is not a known field", field=text.child(field, name))
    if value.get(required) is None:
        raise InvalidArgument("is required", field=f"{field}.{required}")
    return value
