"""`plans` and `billing`: the plans' limits, billing accounts and project billing."""

from __future__ import annotations

from typing import Annotated

import typer

from llavero.cli.shared import CLI, Db, Json, emit, opened
from llavero.service.pagination import every_item

plans_app = typer.Typer(no_args_is_help=True, help="Plans: limits per project.")
app = typer.Typer(no_args_is_help=True, help="Billing accounts and project billing.")

PLAN_COLUMNS = ("name", "display_name", "rpm", "rpd", "upm", "upd")
ACCOUNT_COLUMNS = ("id", "display_name", "currency", "open", "create_time", "update_time")
BILLING_INFO_COLUMNS = ("project", "billing_account", "plan", "limits")


@plans_app.command("list")
def plans_list(db: Db = None, as_json: Json = False) -> None:
    """List the plans and their limits (requests and units per minute and per UTC day)."""
    with opened(db) as llavero:
        plans = llavero.plans.list()
    if as_json:
        emit(plans, True)
        return
    rows = [
        {name: "unlimited" if value is None else value for name, value in plan} for plan in plans
    ]
    emit(rows, False, PLAN_COLUMNS)


@app.command("create")
def billing_create(
    display_name: Annotated[str, typer.Argument(help='e.g. "Acme Corp"')],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    closed: Annotated[bool, typer.Option("--closed", help="Create it closed.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a billing account."""
    with opened(db) as llavero:
        account = llavero.billing.create(CLI, display_name, currency, open=not closed)
        emit(account, as_json, ACCOUNT_COLUMNS)


@app.command("list")
def billing_list(db: Db = None, as_json: Json = False) -> None:
    """List billing accounts."""
    with opened(db) as llavero:
        accounts = every_item(lambda token: llavero.billing.list(CLI, page_token=token))
        emit(accounts, as_json, ACCOUNT_COLUMNS)


@app.command("link")
def billing_link(
    project: Annotated[str, typer.Argument(help="Project id.")],
    account: Annotated[str, typer.Argument(help="Billing account id (an open one).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Link a project to an open billing account: it moves to the paid plan at once."""
    with opened(db) as llavero:
        emit(llavero.billing.link(CLI, project, account), as_json, BILLING_INFO_COLUMNS)


@app.command("unlink")
def billing_unlink(
    project: Annotated[str, typer.Argument(help="Project id.")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Unlink a project from its billing account: it moves back to the free plan at once."""
    with opened(db) as llavero:
        emit(llavero.billing.unlink(CLI, project), as_json, BILLING_INFO_COLUMNS)


@app.command("close")
def billing_close(account: str, db: Db = None, as_json: Json = False) -> None:
    """Close a billing account: its projects stay linked but fall back to the free plan."""
    with opened(db) as llavero:
        emit(llavero.billing.close(CLI, account), as_json, ACCOUNT_COLUMNS)


@app.command("reopen")
def billing_reopen(account: str, db: Db = None, as_json: Json = False) -> None:
    """Reopen a closed billing account: its linked projects return to the paid plan."""
    with opened(db) as llavero:
        emit(llavero.billing.reopen(CLI, account), as_json, ACCOUNT_COLUMNS)
