"""`tokens`: management tokens for the REST API."""

from __future__ import annotations

from typing import Annotated

import typer

from llavero.cli.shared import CLI, Db, Json, emit, opened, out

app = typer.Typer(no_args_is_help=True, help="Management tokens for the REST API.")


@app.command("create")
def tokens_create(
    scope: Annotated[
        list[str],
        typer.Option(help="keys:read, keys:write, keys:verify, projects:write or admin."),
    ],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "management token",
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a management token; it is shown once."""
    with opened(db) as llavero:
        created = llavero.tokens.create(CLI, scope, display_name=name)
        if as_json:
            emit(created, True)
            return
        emit(created.token_info, False, ("id", "display_name", "scopes", "create_time"))
        out.print(f"token (shown once): {created.token}", markup=False, highlight=False)


@app.command("list")
def tokens_list(db: Db = None, as_json: Json = False) -> None:
    """List management tokens (never their secrets)."""
    with opened(db) as llavero:
        columns = ("id", "display_name", "last4", "scopes", "create_time", "revoke_time")
        emit(llavero.tokens.list(CLI), as_json, columns)


@app.command("revoke")
def tokens_revoke(token_id: str, db: Db = None, as_json: Json = False) -> None:
    """Revoke a management token at once."""
    with opened(db) as llavero:
        emit(llavero.tokens.revoke(CLI, token_id), as_json, ("id", "display_name", "revoke_time"))
