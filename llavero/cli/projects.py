"""`projects` and `projects members`."""

from __future__ import annotations

from typing import Annotated

import typer

from llavero.cli.shared import CLI, Db, Json, emit, fail, opened
from llavero.service import Actor, Llavero
from llavero.service.pagination import every_item
from llavero.service.users import actor_for

app = typer.Typer(no_args_is_help=True, help="Projects.")

PROJECT_COLUMNS = ("id", "number", "display_name", "plan", "billing_account", "create_time")


@app.command("create")
def projects_create(
    display_name: Annotated[str, typer.Argument(help='e.g. "Gemini API"')],
    project_id: Annotated[str | None, typer.Option("--id", help="Slug id (derived).")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a project."""
    with opened(db) as llavero:
        emit(llavero.projects.create(CLI, display_name, project_id), as_json, PROJECT_COLUMNS)


@app.command("list")
def projects_list(db: Db = None, as_json: Json = False) -> None:
    """List projects."""
    with opened(db) as llavero:
        emit(
            every_item(lambda token: llavero.projects.list(CLI, page_token=token)),
            as_json,
            PROJECT_COLUMNS,
        )


@app.command("update")
def projects_update(
    project: Annotated[str, typer.Argument(help="Project id.")],
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    leak_policy: Annotated[
        str | None,
        typer.Option(help="What a reported leak does to a key: revoke, disable or notify."),
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Rename a project or set its leak policy (docs/leaks.md)."""
    if name is None and leak_policy is None:
        raise typer.BadParameter("give --name or --leak-policy", param_hint="--leak-policy")
    with opened(db) as llavero:
        updated = llavero.projects.update(CLI, project, display_name=name, leak_policy=leak_policy)
        emit(updated, as_json, PROJECT_COLUMNS + ("leak_policy",))


members_app = typer.Typer(no_args_is_help=True, help="Project members and invitations.")
app.add_typer(members_app, name="members")
MEMBER_COLUMNS = ("email", "role", "invited")
Role = Annotated[str, typer.Option("--role", help="owner, editor or viewer.")]
AsUser = Annotated[
    str | None,
    typer.Option("--as", help="Act as this console user, with their role (default: as admin)."),
]


def _acting(llavero: Llavero, as_user: str | None) -> Actor:
    """The local operator, or a named user whose project role then decides."""
    if as_user is None:
        return CLI
    address = as_user.strip().lower()
    for user in llavero.users.list(CLI):
        if user.email == address and not user.disabled:
            return actor_for(user)
    fail("--as: no active console user with this email")


@members_app.command("list")
def members_list(
    project: str, as_user: AsUser = None, db: Db = None, as_json: Json = False
) -> None:
    """List a project's members and pending invitations."""
    with opened(db) as llavero:
        emit(llavero.members.list(_acting(llavero, as_user), project), as_json, MEMBER_COLUMNS)


@members_app.command("add")
def members_add(
    project: str,
    email: str,
    role: Role = "viewer",
    as_user: AsUser = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Add a member; an address without an account is invited until its first sign-in."""
    with opened(db) as llavero:
        member = llavero.members.add(_acting(llavero, as_user), project, email, role)
        emit(member, as_json, MEMBER_COLUMNS)


@members_app.command("set")
def members_set(
    project: str,
    email: str,
    role: Role,
    as_user: AsUser = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a member's role (a project keeps at least one owner)."""
    with opened(db) as llavero:
        member = llavero.members.set_role(_acting(llavero, as_user), project, email, role)
        emit(member, as_json, MEMBER_COLUMNS)


@members_app.command("remove")
def members_remove(
    project: str, email: str, as_user: AsUser = None, db: Db = None, as_json: Json = False
) -> None:
    """Remove a member or an invitation (a project keeps at least one owner)."""
    with opened(db) as llavero:
        llavero.members.remove(_acting(llavero, as_user), project, email)
        emit({"removed": email.strip().lower()}, as_json, ("removed",))
