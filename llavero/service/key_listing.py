"""How keys are listed: the orders of `keys.list` (keyset paging, page tokens) and the filter
terms (a small AIP-160 subset)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, func, or_

from llavero.core.codes import State
from llavero.errors import InvalidArgument
from llavero.store import tables


@dataclass(frozen=True, slots=True)
class _Term:
    """One column of an order: what the database sorts by, and in which direction."""

    expression: SQLColumnExpression[Any]
    descending: bool = False
    is_time: bool = False


@dataclass(frozen=True, slots=True)
class _Order:
    """A listing order whose last term is unique (the id), so that a page token can name the
    last row seen and the next page starts strictly after it (keyset paging).

    The token holds the values the database itself sorted by (selected with the rows), not
    values recomputed in Python: `lower()` differs between SQLite, PostgreSQL and Python for
    names outside ASCII, and a recomputed value would skip or repeat rows."""

    token_kind: str
    terms: tuple[_Term, ...]

    def clauses(self) -> list[ColumnElement[Any]]:
        return [
            term.expression.desc() if term.descending else term.expression.asc()
            for term in self.terms
        ]

    def position(self, values: Sequence[Any]) -> tuple[str, ...]:
        return tuple(
            value.isoformat() if term.is_time else str(value)
            for term, value in zip(self.terms, values, strict=True)
        )

    def after(self, token_values: tuple[Any, ...]) -> ColumnElement[bool]:
        """Rows strictly past the token's row in this order: past it on the first term, or
        equal on the first terms and past it on the next one."""
        values = self._parsed(token_values)
        beyond: list[ColumnElement[bool]] = []
        for index, term in enumerate(self.terms):
            equal = [
                earlier.expression == value
                for earlier, value in zip(self.terms[:index], values, strict=False)
            ]
            value = values[index]
            past = term.expression < value if term.descending else term.expression > value
            beyond.append(and_(*equal, past))
        return or_(*beyond)

    def _parsed(self, token_values: tuple[Any, ...]) -> list[Any]:
        if len(token_values) != len(self.terms) or not all(
            isinstance(value, str) for value in token_values
        ):
            raise InvalidArgument("is not a page token of this list", field="page_token")
        try:
            return [
                datetime.fromisoformat(value) if term.is_time else value
                for term, value in zip(self.terms, token_values, strict=True)
            ]
        except ValueError:
            raise InvalidArgument("is not a page token of this list", field="page_token") from None


_CREATED = _Term(tables.Key.create_time, is_time=True)
_NEWEST = _Term(tables.Key.create_time, descending=True, is_time=True)
ORDERS: Final[Mapping[str, _Order]] = {
    # The default keeps the token kind of the time before `order_by`, so its tokens still work.
    "create_time desc": _Order("keys", (_NEWEST, _Term(tables.Key.id, descending=True))),
    "create_time": _Order("keys:create_time", (_CREATED, _Term(tables.Key.id))),
    "display_name": _Order(
        "keys:display_name", (_Term(func.lower(tables.Key.display_name)), _Term(tables.Key.id))
    ),
    # Within a project, newest first: the order the keys page shows a project's keys in.
    "project": _Order(
        "keys:project",
        (_Term(tables.Key.project_id), _NEWEST, _Term(tables.Key.id, descending=True)),
    ),
}
DEFAULT_ORDER: Final = "create_time desc"


def order_for(order_by: str | None) -> _Order:
    """AIP-132 style: a field, then ` desc` or ` asc` (the default); spacing is free."""
    if order_by is None or not order_by.strip():
        return ORDERS[DEFAULT_ORDER]
    words = order_by.split()
    if len(words) == 2 and words[1] == "asc":
        words = words[:1]
    order = ORDERS.get(" ".join(words))
    if order is None:
        raise InvalidArgument(f"must be one of: {', '.join(ORDERS)}", field="order_by")
    return order


FILTER_FIELDS = (
    "display_name",
    "name",
    "state",
    "environment",
    "expiring_within_days",
    "leaked",
)


def apply_filter(query: Select[Any], text: str | None, now: datetime) -> Select[Any]:
    """A small AIP-160 subset: `state=ACTIVE environment=production name:gemini`, AND-ed."""
    for term in (text or "").replace(" AND ", " ").split():
        field, sep, value = term.partition("=") if "=" in term else term.partition(":")
        if not sep or not value:
            raise InvalidArgument("each term must read field=value", field="filter")
        if field in ("display_name", "name"):
            pattern = "%" + value.lower().replace("%", r"\%").replace("_", r"\_") + "%"
            query = query.where(func.lower(tables.Key.display_name).like(pattern, escape="\\"))
        elif field == "state":
            if value.upper() not in State.__members__:
                raise InvalidArgument(f"state must be one of {', '.join(State)}", field="filter")
            query = query.where(tables.Key.state == value.upper())
        elif field == "environment":
            query = query.where(tables.Key.environment == value)
        elif field == "expiring_within_days":
            # ASCII digits only: str.isdigit() is true of '²', which int() refuses.
            if not (value.isascii() and value.isdigit()) or int(value) > 3650:
                raise InvalidArgument("expiring_within_days must be 0-3650", field="filter")
            horizon = now + timedelta(days=int(value))
            query = query.where(tables.Key.expire_time.is_not(None))
            query = query.where(tables.Key.expire_time <= horizon)
        elif field == "leaked":
            if value not in ("true", "false"):
                raise InvalidArgument("leaked must be true or false", field="filter")
            leak = tables.Key.leak_time
            query = query.where(leak.is_not(None) if value == "true" else leak.is_(None))
        else:
            # The unknown name is not echoed: it may be a key string pasted into the filter.
            raise InvalidArgument(
                f"names an unknown field; use one of {', '.join(FILTER_FIELDS)}", field="filter"
            )
    return query
