"""`usage`: requests and units of a key or a project over time."""

from __future__ import annotations

import csv
import sys
from typing import Annotated

import typer

from llavero.cli.shared import CLI, Db, Json, emit, opened


def usage(
    key: Annotated[str | None, typer.Option(help="Key id.")] = None,
    project: Annotated[str | None, typer.Option(help="Project id.")] = None,
    granularity: Annotated[str, typer.Option(help="minute, hour or day.")] = "hour",
    start: Annotated[
        str | None, typer.Option(help="RFC 3339 (default: 1 h, 1 day or 30 days before end).")
    ] = None,
    end: Annotated[str | None, typer.Option(help="RFC 3339 (default: now).")] = None,
    db: Db = None,
    as_json: Json = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")] = False,
) -> None:
    """Requests by outcome and units of a key or a project, per minute, hour or day.

    Counts reach the database at the server's next usage flush (every second by default)."""
    if (key is None) == (project is None):
        raise typer.BadParameter("give exactly one of --key and --project", param_hint="--key")
    if as_json and as_csv:
        raise typer.BadParameter("give at most one of --json and --csv", param_hint="--csv")
    with opened(db) as llavero:
        if key is not None:
            series = llavero.usage.key_series(CLI, key, start, end, granularity)
        else:
            series = llavero.usage.project_series(CLI, str(project), start, end, granularity)
    if as_json:
        emit(series, True)
        return
    rows = series.rows()
    columns = ["start_time", *series.totals.requests, "units"]
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    total = {"start_time": "total", **series.totals.requests, "units": series.totals.units}
    emit([*rows, total], False, columns, title=f"{series.target} by {series.granularity}")
