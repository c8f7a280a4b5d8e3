"""What every command module shares: the two consoles, the `--db` and `--json` options, a
service on the configured database, and the table-or-JSON output."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import ArgumentError, OperationalError

from llavero.config import Settings
from llavero.errors import LlaveroError
from llavero.service import Actor, Llavero

# Piped output is for other programs and logs: do not cut cells to a guessed terminal width.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, soft_wrap=True)
CLI = Actor.system("cli")

Db = Annotated[
    str | None,
    typer.Option("--db", envvar="LLAVERO_DATABASE_URL", help="Database URL (default: SQLite)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings_for(db: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"database_url": db}) if db else settings


@contextmanager
def opened(db: str | None, *, upgrade: bool = True) -> Iterator[Llavero]:
    """A service on an up-to-date database (unless `upgrade` is False). Domain errors, a bad
    setting and an unreachable database become one line and exit code 1; a database URL is never
    echoed (it may hold a password)."""
    llavero: Llavero | None = None
    try:
        llavero = Llavero(settings_for(db))
        if upgrade and llavero.db.needs_upgrade():
            llavero.upgrade()
        yield llavero
    except LlaveroError as error:
        fail(f"{error.status}: {error.message}")
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        first = error.errors()[0]
        fail(f"LLAVERO_{str(first['loc'][0]).upper()}: {first['msg']}")
    except ArgumentError:
        fail("LLAVERO_DATABASE_URL (or --db): is not a database URL that SQLAlchemy can use")
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines() or ["unknown reason"]
        fail(f"database: {reason[0]}")
    finally:
        if llavero is not None:
            llavero.close()


def fail(message: str) -> NoReturn:
    err.print(f"error: {message}", markup=False, highlight=False)
    raise typer.Exit(1) from None


def emit(value: Any, as_json: bool, columns: Sequence[str] = (), title: str | None = None) -> None:
    """JSON of a model or list of models, or a table of `columns`."""
    data = _plain(value)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    rows = data if isinstance(data, list) else [data]
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(cell(row.get(column)) for column in columns))
    out.print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False) if value else ""
    return str(value)
