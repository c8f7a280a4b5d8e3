"""No text that cannot be stored and answered reaches a row: the check every writer (API,
console, CLI, background work) goes through, since every write is a flush of a session.

The API refuses such text earlier, in its request bodies and parameters, with the same rule
(`llavero.core.text`); this guard is what makes the rule hold for every other caller too."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from llavero.core import text


def guard_text(session: Session, _context: Any, _instances: Any) -> None:
    """`before_flush`: raises `InvalidArgument` naming the column (and the path inside a JSON
    column); the transaction then rolls back and nothing is written."""
    for row in (*session.new, *session.dirty):
        state = inspect(row)
        for column in state.mapper.column_attrs:
            value = state.dict.get(column.key)
            if isinstance(value, str | dict | list):
                text.check_tree(value, column.key)
