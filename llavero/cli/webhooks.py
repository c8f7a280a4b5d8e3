"""`webhooks`: signed events to your endpoints, and their delivery log."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llavero.cli.shared import CLI, Db, Json, emit, opened, out
from llavero.service.pagination import every_item

app = typer.Typer(no_args_is_help=True, help="Webhooks: signed events to your endpoints.")
WEBHOOK_COLUMNS = ("id", "project", "url", "events", "disabled", "description")
DELIVERY_COLUMNS = ("event_id", "type", "status", "attempts", "last_status", "create_time")
EventOption = Annotated[
    list[str] | None,
    typer.Option("--event", help="An event type to send (repeat it); '*' or none: every one."),
]


@app.command("create")
def webhooks_create(
    url: Annotated[str, typer.Argument(help="http or https URL of the endpoint.")],
    event: EventOption = None,
    project: Annotated[
        str | None, typer.Option(help="Project whose events it gets (default: every project).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What it is for.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Add a webhook; prints its signing secret once."""
    with opened(db) as llavero:
        created = llavero.webhooks.create(
            CLI, url, event or ["*"], project=project, description=description
        )
        if as_json:
            emit(created, True)
            return
        emit(created.webhook, False, WEBHOOK_COLUMNS)
        out.print(f"Signing secret (shown once): {created.secret}", markup=False, highlight=False)


@app.command("list")
def webhooks_list(
    project: Annotated[str | None, typer.Option(help="Only this project's webhooks.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List webhooks."""
    with opened(db) as llavero:
        hooks = every_item(
            lambda token: llavero.webhooks.list(CLI, project=project, page_token=token)
        )
        emit(hooks, as_json, WEBHOOK_COLUMNS)


@app.command("show")
def webhooks_show(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Show one webhook."""
    with opened(db) as llavero:
        emit(llavero.webhooks.get(CLI, webhook_id), as_json, WEBHOOK_COLUMNS)


@app.command("update")
def webhooks_update(
    webhook_id: str,
    url: Annotated[str | None, typer.Option(help="New URL.")] = None,
    event: EventOption = None,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Stop sending to it.")] = False,
    enable: Annotated[
        bool, typer.Option("--enable", help="Send again, waiting events first.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a webhook: only the options given change."""
    if disable and enable:
        raise typer.BadParameter("give one of them", param_hint="--disable / --enable")
    changes: dict[str, Any] = {
        name: value
        for name, value in (("url", url), ("events", event), ("description", description))
        if value is not None
    }
    if disable or enable:
        changes["disabled"] = disable
    with opened(db) as llavero:
        emit(llavero.webhooks.update(CLI, webhook_id, changes), as_json, WEBHOOK_COLUMNS)


@app.command("delete")
def webhooks_delete(webhook_id: str, db: Db = None) -> None:
    """Delete a webhook and its delivery log."""
    with opened(db) as llavero:
        llavero.webhooks.delete(CLI, webhook_id)
        out.print(f"Deleted webhook {webhook_id}.", markup=False, highlight=False)


@app.command("test")
def webhooks_test(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Queue a webhook.test event for this webhook (a serving instance, or `deliver`, sends it)."""
    with opened(db) as llavero:
        emit(llavero.webhooks.send_test(CLI, webhook_id), as_json, ("event_id",))


@app.command("rotate-secret")
def webhooks_rotate_secret(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Give a webhook a new signing secret; prints it once."""
    with opened(db) as llavero:
        rotated = llavero.webhooks.rotate_secret(CLI, webhook_id)
        if as_json:
            emit(rotated, True)
            return
        out.print(f"Signing secret (shown once): {rotated.secret}", markup=False, highlight=False)


@app.command("deliveries")
def webhooks_deliveries(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """The delivery log of a webhook, newest first."""
    with opened(db) as llavero:
        log = every_item(
            lambda token: llavero.webhooks.deliveries(CLI, webhook_id, page_token=token)
        )
        emit(log, as_json, DELIVERY_COLUMNS)


@app.command("deliver")
def webhooks_deliver(db: Db = None) -> None:
    """Send the events that are due now, without a server (as `serve` does every second)."""
    with opened(db) as llavero:
        llavero.alerts.check()
        sent = llavero.dispatcher.run_once()
        out.print(f"{sent} delivery attempts.", markup=False, highlight=False)
