"""`users`: console users and their sign-in throttles."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llavero.cli.shared import CLI, Db, Json, emit, fail, opened

app = typer.Typer(no_args_is_help=True, help="Console users.")


@app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email to sign in with.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an admin.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a console user (prompts for the password)."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else _prompt_password()
    with opened(db) as llavero:
        user = llavero.users.create(CLI, email, password, role="admin" if admin else "member")
        emit(user, as_json, ("id", "email", "role", "create_time"))


def _prompt_password() -> str:
    """Ask twice on the terminal; with nothing to read (a script, a CI job) say what to pipe."""
    try:
        # Prompts go to stderr so that stdout stays the table or the JSON.
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    except typer.Abort:
        if sys.stdin.isatty():
            raise
        fail(
            "password: no terminal to ask on; pipe it in with --password-stdin, e.g. "
            "printf '%s\\n' \"$PASSWORD\" | llavero users create --email E --password-stdin"
        )


@app.command("list")
def users_list(db: Db = None, as_json: Json = False) -> None:
    """List console users."""
    with opened(db) as llavero:
        emit(llavero.users.list(CLI), as_json, ("id", "email", "role", "disabled", "create_time"))


@app.command("throttles")
def users_throttles(
    email: Annotated[str | None, typer.Option(help="Only this email.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List sign-in attempts counted in the last day, per email and client address."""
    with opened(db) as llavero:
        emit(
            list(llavero.users.throttles(CLI, email)),
            as_json,
            ("email", "ip", "failures", "last_failure_time", "retry_time"),
        )


@app.command("unthrottle")
def users_unthrottle(
    email: Annotated[str, typer.Argument(help="Email whose counted sign-in attempts to clear.")],
    ip: Annotated[
        str | None, typer.Option(help="Clear this client address only (default: every one).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Let a user sign in again at once: clear their sign-in throttle."""
    with opened(db) as llavero:
        cleared = llavero.users.clear_throttle(CLI, email, ip)
        emit({"email": email.strip().lower(), "cleared": cleared}, as_json, ("email", "cleared"))
