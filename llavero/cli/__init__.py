"""The `llavero` command. Every command but `serve` acts on the configured database directly,
through the service layer, as the local operator: no server needs to run.

Output is a table, or JSON with `--json`; an error is one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
import typer.core
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.exceptions import Abort

from llavero.cli.scan import Finding, Scanner
from llavero.config import Settings
from llavero.errors import LlaveroError
from llavero.service import Actor, Llavero
from llavero.service.pagination import every_item
from llavero.service.users import actor_for


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a missing option, bad JSON) as one line on stderr, like every other error,
    instead of Typer's usage block; exit codes stay Typer's (2 for usage)."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = (args, prog_name, complete_var, False, windows_expand_args)
        if not standalone_mode:
            return super().main(*run, **extra)
        try:
            code = super().main(*run, **extra)
        except NoArgsIsHelpError as error:
            error.show()
            code = error.exit_code
        except ClickException as error:
            err.print(f"error: {error.format_message()}", markup=False, highlight=False)
            code = error.exit_code
        except typer.Abort:
            err.print("error: aborted", markup=False, highlight=False)
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help=__doc__)
users_app = typer.Typer(no_args_is_help=True, help="Console users.")
tokens_app = typer.Typer(no_args_is_help=True, help="Management tokens for the REST API.")
projects_app = typer.Typer(no_args_is_help=True, help="Projects.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
db_app = typer.Typer(no_args_is_help=True, help="The database.")
plans_app = typer.Typer(no_args_is_help=True, help="Plans: limits per project.")
billing_app = typer.Typer(no_args_is_help=True, help="Billing accounts and project billing.")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(projects_app, name="projects")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(plans_app, name="plans")
app.add_typer(billing_app, name="billing")
webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks: signed events to your endpoints.")
app.add_typer(webhooks_app, name="webhooks")

# Piped output is for other programs and logs: do not cut cells to a guessed terminal width.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, soft_wrap=True)
CLI = Actor.system("cli")
T = TypeVar("T")

Db = Annotated[
    str | None,
    typer.Option("--db", envvar="LLAVERO_DATABASE_URL", help="Database URL (default: SQLite)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def settings_for(db: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"database_url": db}) if db else settings


@contextmanager
def service(db: str | None, *, upgrade: bool = True) -> Iterator[Llavero]:
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
        _fail(f"{error.status}: {error.message}")
    except ValidationError as error:
        if error.title != Settings.__name__:
            raise
        first = error.errors()[0]
        _fail(f"LLAVERO_{str(first['loc'][0]).upper()}: {first['msg']}")
    except ArgumentError:
        _fail("LLAVERO_DATABASE_URL (or --db): is not a database URL that SQLAlchemy can use")
    except OperationalError as error:
        reason = str(error.orig or error).strip().splitlines() or ["unknown reason"]
        _fail(f"database: {reason[0]}")
    finally:
        if llavero is not None:
            llavero.close()


def _fail(message: str) -> NoReturn:
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
        table.add_row(*(_cell(row.get(column)) for column in columns))
    out.print(table)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False) if value else ""
    return str(value)


def _pairs(values: Sequence[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r} must read NAME=VALUE", param_hint=option)
        pairs[name] = value
    return pairs


def _json_option(text: str | None, option: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"is not valid JSON: {error.msg}", param_hint=option) from None


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, err=True))
    return sys.stdin.readline().strip()


KEY_COLUMNS = ("id", "project", "display_name", "last4", "state", "environment", "create_time")


# --- serve and db -------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    db: Db = None,
    admin_email: Annotated[
        str, typer.Option(help="Email of the first admin, on an empty database.")
    ] = "admin@localhost",
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes (more than 1 needs the database or redis limiter)."
        ),
    ] = 1,
) -> None:
    """Serve the console and the API; migrate the database first."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels

    from llavero.asgi import SERVE_PID_ENV
    from llavero.edges import redaction

    # Before anything logs: granian's workers are forked from this process and keep it.
    redaction.install()
    with service(db) as llavero:
        if workers > 1 and llavero.settings.rate_limit_backend == "memory":
            _fail(
                f"--workers {workers}: with LLAVERO_RATE_LIMIT_BACKEND=memory each worker would "
                "count limits on its own and allow a full limit; use database or redis"
            )
        _fail_if_taken(host, port)
        llavero.upgrade()
        base = llavero.settings.public_url or f"http://{host}:{port}"
        first = llavero.bootstrap(admin_email)
        out.print(f"Llavero {llavero.settings.sqlalchemy_url.split('://')[0]} database ready.")
        if first is not None:
            out.print(
                f"First run: sign in as {first.email} with this one-time link (24 h):\n"
                f"  {base}/signin/link?token={first.signin_token}\n"
                "Management token for the REST API (scope admin; shown once, keep it safe):\n"
                f"  {first.management_token}",
                markup=False,
                highlight=False,
            )
        out.print(
            f"Serving the console at {base}/app/apikey and the API at {base}/v1 (docs: {base}/docs)"
        )
        # granian's worker builds the app from the environment (`llavero.asgi`), and is
        # forked: hand it the database, and no pooled connection of this process.
        if db:
            os.environ["LLAVERO_DATABASE_URL"] = db
        os.environ[SERVE_PID_ENV] = str(os.getpid())  # the workers end with this process
        llavero.db.dispose()
        level = LogLevels.__members__.get(llavero.settings.log_level.lower(), LogLevels.info)
        Granian(
            "llavero.asgi:serving_app",
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            http=HTTPModes.http1,
            websockets=False,
            workers=workers,
            log_level=level,
            # The app writes the access line itself, off the event loop (`llavero.asgi`).
            log_access=False,
        ).serve()


def _fail_if_taken(host: str, port: int) -> None:
    """A clear error when something listens on the port already. granian binds with
    SO_REUSEPORT, so a second `llavero serve` would otherwise start and share the port with the
    first: two processes, each counting limits apart. This probe sets no SO_REUSEPORT, so it
    fails on any socket bound there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            _fail(f"cannot listen on {host}:{port}: {error.strerror} (is Llavero already running?)")


@app.command()
def gateway(
    upstream: Annotated[
        str,
        typer.Option(
            envvar="LLAVERO_GATEWAY_UPSTREAM",
            help="Base URL of the upstream API, e.g. https://generativelanguage.googleapis.com",
        ),
    ],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    upstream_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable with the upstream's key (GEMINI_API_KEY)."),
    ] = None,
    upstream_key_header: Annotated[
        str | None,
        typer.Option(help="Header for the upstream's key (x-goog-api-key; or authorization)."),
    ] = None,
    db: Db = None,
) -> None:
    """Verify keys in front of an upstream API; forward with the upstream's own key."""
    import uvicorn

    from llavero.edges import gateway as gateway_module
    from llavero.edges.logs import configure_logging, install_access_log_filter

    with service(db) as llavero:
        configure_logging(llavero.settings.log_level, llavero.settings.log_format)
        _fail_if_taken(host, port)
        proxy = gateway_module.from_settings(
            llavero, upstream, key_env=upstream_key_env, key_header=upstream_key_header
        )
        out.print(f"Gateway at http://{host}:{port} in front of {upstream}", markup=False)
        install_access_log_filter()
        uvicorn.run(
            proxy.app(lifespans=[lambda: llavero.start("gateway")]),
            host=host,
            port=port,
            log_level=llavero.settings.log_level,
            # Proxy trust is LLAVERO_TRUSTED_PROXIES alone (llavero.proxy_trust); uvicorn's
            # own handling would trust any local process and let it fake the client IP.
            proxy_headers=False,
        )


@db_app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Apply the database migrations."""
    with service(db, upgrade=False) as llavero:
        current, head = llavero.db.revisions()
        if current == head:
            out.print(f"database is up to date (revision {head})", markup=False)
            return
        llavero.upgrade()
        before = f"revision {current}" if current else "an empty database"
        out.print(f"database upgraded from {before} to revision {head}", markup=False)


@db_app.command("purge")
def db_purge(db: Db = None) -> None:
    """Remove keys deleted more than 30 days ago and sign-in attempts counted more than a day
    ago (serve does this every hour)."""
    with service(db) as llavero:
        out.print(f"purged {llavero.purge()} keys")


# --- users and tokens ---------------------------------------------------------------------


@users_app.command("create")
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
    with service(db) as llavero:
        user = llavero.users.create(CLI, email, password, role="admin" if admin else "member")
        emit(user, as_json, ("id", "email", "role", "create_time"))


def _prompt_password() -> str:
    """Ask twice on the terminal; with nothing to read (a script, a CI job) say what to pipe."""
    try:
        # Prompts go to stderr so that stdout stays the table or the JSON.
        return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True))
    except Abort:
        if sys.stdin.isatty():
            raise
        _fail(
            "password: no terminal to ask on; pipe it in with --password-stdin, e.g. "
            "printf '%s\\n' \"$PASSWORD\" | llavero users create --email E --password-stdin"
        )


@users_app.command("list")
def users_list(db: Db = None, as_json: Json = False) -> None:
    """List console users."""
    with service(db) as llavero:
        emit(llavero.users.list(CLI), as_json, ("id", "email", "role", "disabled", "create_time"))


@users_app.command("throttles")
def users_throttles(
    email: Annotated[str | None, typer.Option(help="Only this email.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List sign-in attempts counted in the last day, per email and client address."""
    with service(db) as llavero:
        emit(
            list(llavero.users.throttles(CLI, email)),
            as_json,
            ("email", "ip", "failures", "last_failure_time", "retry_time"),
        )


@users_app.command("unthrottle")
def users_unthrottle(
    email: Annotated[str, typer.Argument(help="Email whose counted sign-in attempts to clear.")],
    ip: Annotated[
        str | None, typer.Option(help="Clear this client address only (default: every one).")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Let a user sign in again at once: clear their sign-in throttle."""
    with service(db) as llavero:
        cleared = llavero.users.clear_throttle(CLI, email, ip)
        emit({"email": email.strip().lower(), "cleared": cleared}, as_json, ("email", "cleared"))


@tokens_app.command("create")
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
    with service(db) as llavero:
        created = llavero.tokens.create(CLI, scope, display_name=name)
        if as_json:
            emit(created, True)
            return
        emit(created.token_info, False, ("id", "display_name", "scopes", "create_time"))
        out.print(f"token (shown once): {created.token}", markup=False, highlight=False)


@tokens_app.command("list")
def tokens_list(db: Db = None, as_json: Json = False) -> None:
    """List management tokens (never their secrets)."""
    with service(db) as llavero:
        columns = ("id", "display_name", "last4", "scopes", "create_time", "revoke_time")
        emit(llavero.tokens.list(CLI), as_json, columns)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, db: Db = None, as_json: Json = False) -> None:
    """Revoke a management token at once."""
    with service(db) as llavero:
        emit(llavero.tokens.revoke(CLI, token_id), as_json, ("id", "display_name", "revoke_time"))


# --- projects -----------------------------------------------------------------------------

PROJECT_COLUMNS = ("id", "number", "display_name", "plan", "billing_account", "create_time")


@projects_app.command("create")
def projects_create(
    display_name: Annotated[str, typer.Argument(help='e.g. "Gemini API"')],
    project_id: Annotated[str | None, typer.Option("--id", help="Slug id (derived).")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a project."""
    with service(db) as llavero:
        emit(llavero.projects.create(CLI, display_name, project_id), as_json, PROJECT_COLUMNS)


@projects_app.command("list")
def projects_list(db: Db = None, as_json: Json = False) -> None:
    """List projects."""
    with service(db) as llavero:
        emit(
            every_item(lambda token: llavero.projects.list(CLI, page_token=token)),
            as_json,
            PROJECT_COLUMNS,
        )


@projects_app.command("update")
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
    with service(db) as llavero:
        updated = llavero.projects.update(CLI, project, display_name=name, leak_policy=leak_policy)
        emit(updated, as_json, PROJECT_COLUMNS + ("leak_policy",))


members_app = typer.Typer(no_args_is_help=True, help="Project members and invitations.")
projects_app.add_typer(members_app, name="members")
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
    _fail("--as: no active console user with this email")


@members_app.command("list")
def members_list(
    project: str, as_user: AsUser = None, db: Db = None, as_json: Json = False
) -> None:
    """List a project's members and pending invitations."""
    with service(db) as llavero:
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
    with service(db) as llavero:
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
    with service(db) as llavero:
        member = llavero.members.set_role(_acting(llavero, as_user), project, email, role)
        emit(member, as_json, MEMBER_COLUMNS)


@members_app.command("remove")
def members_remove(
    project: str, email: str, as_user: AsUser = None, db: Db = None, as_json: Json = False
) -> None:
    """Remove a member or an invitation (a project keeps at least one owner)."""
    with service(db) as llavero:
        llavero.members.remove(_acting(llavero, as_user), project, email)
        emit({"removed": email.strip().lower()}, as_json, ("removed",))


# --- keys ---------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="Project id.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    environment: Annotated[str | None, typer.Option(help="e.g. production.")] = None,
    expire_time: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    restrictions: Annotated[str | None, typer.Option(help="Restrictions as JSON.")] = None,
    annotation: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")] = None,
    limit: Annotated[list[str] | None, typer.Option(help="rpm=N etc., repeatable.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a key; the key string is shown once."""
    with service(db) as llavero:
        created = llavero.keys.create(
            CLI,
            project,
            display_name=name,
            environment=environment,
            expire_time=expire_time,
            restrictions=_json_option(restrictions, "--restrictions"),
            annotations=_pairs(annotation or [], "--annotation"),
            limits=_limit_pairs(limit or []),
        )
        if as_json:
            emit(created, True)
            return
        emit(created.key, False, KEY_COLUMNS)
        out.print(f"key (shown once): {created.key_string}", markup=False, highlight=False)


def _limit_pairs(values: Sequence[str]) -> dict[str, Any]:
    pairs: dict[str, Any] = {}
    for name, value in _pairs(values, "--limit").items():
        pairs[name] = int(value) if value.isdigit() else value
    return pairs


@keys_app.command("list")
def keys_list(
    project: Annotated[str, typer.Option(help="Project id, or - for all.")] = "-",
    show_deleted: Annotated[bool, typer.Option("--show-deleted")] = False,
    filter: Annotated[
        str | None, typer.Option(help="e.g. 'state=ACTIVE environment=production name:gemini'.")
    ] = None,
    environment: Annotated[str | None, typer.Option(help="Only keys bound to it.")] = None,
    expiring_within_days: Annotated[
        int | None,
        typer.Option(min=0, max=3650, help="Only keys that expire within N days (or have)."),
    ] = None,
    order_by: Annotated[
        str,
        typer.Option(
            help="'create_time desc' (newest first), 'create_time', 'display_name' or 'project'."
        ),
    ] = "create_time desc",
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List keys (masked: only the last 4 characters), newest first unless --order-by."""
    terms = [filter or ""]
    if environment is not None:
        terms.append(f"environment={environment}")
    if expiring_within_days is not None:
        terms.append(f"expiring_within_days={expiring_within_days}")
    with service(db) as llavero:
        keys = every_item(
            lambda token: llavero.keys.list(
                CLI,
                project,
                show_deleted=show_deleted,
                filter=" ".join(terms).strip() or None,
                page_token=token,
                page_size=1000,
                order_by=order_by,
            )
        )
        emit(keys, as_json, KEY_COLUMNS + ("expire_time",))


@keys_app.command("show")
def keys_show(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Show one key."""
    with service(db) as llavero:
        key = llavero.keys.get(CLI, key_id)
        if as_json:
            emit(key, True)
            return
        table = Table(show_header=False)
        for name, value in key.model_dump(mode="json").items():
            table.add_row(name, _leak_cell(value) if name == "leak" else _cell(value))
        out.print(table)


def _leak_cell(leak: dict[str, Any] | None) -> str:
    """A leak in words: when, where and who found it (rotate the key: docs/leaks.md)."""
    if leak is None:
        return ""
    where = f" at {leak['url']}" if leak.get("url") else ""
    source = f" (reported by {leak['source']})" if leak.get("source") else ""
    return f"LEAKED {leak['time']}{where}{source}"


@keys_app.command("update")
def keys_update(
    key_id: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    restrictions: Annotated[
        str | None, typer.Option(help="The complete new restrictions as JSON; '{}' lifts them.")
    ] = None,
    environment: Annotated[
        str | None, typer.Option(help="Bind to an environment; '' unbinds.")
    ] = None,
    expire_time: Annotated[str | None, typer.Option(help="RFC 3339 time.")] = None,
    no_expire: Annotated[bool, typer.Option("--no-expire", help="Remove the expiry.")] = False,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="A disabled key fails verify.")
    ] = None,
    annotation: Annotated[
        list[str] | None, typer.Option(help="NAME=VALUE, repeatable; replaces all annotations.")
    ] = None,
    limit: Annotated[
        list[str] | None, typer.Option(help="rpm=N etc., repeatable; replaces the key's limits.")
    ] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Change a key; only the options given change."""
    if expire_time is not None and no_expire:
        raise typer.BadParameter("give --expire-time or --no-expire, not both")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["display_name"] = name
    if restrictions is not None:
        changes["restrictions"] = _json_option(restrictions, "--restrictions")
    if environment is not None:
        changes["environment"] = environment
    if expire_time is not None or no_expire:
        changes["expire_time"] = expire_time
    if enable is not None:
        changes["state"] = "ACTIVE" if enable else "DISABLED"
    if annotation:
        changes["annotations"] = _pairs(annotation, "--annotation")
    if limit:
        changes["limits"] = _limit_pairs(limit)
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    with service(db) as llavero:
        key = llavero.keys.update(CLI, key_id, changes)
        emit(key, as_json, KEY_COLUMNS + ("expire_time", "restrictions"))


@keys_app.command("delete")
def keys_delete(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Delete a key: it stops verifying at once; undelete within 30 days."""
    with service(db) as llavero:
        emit(llavero.keys.delete(CLI, key_id), as_json, KEY_COLUMNS + ("purge_time",))


@keys_app.command("undelete")
def keys_undelete(key_id: str, db: Db = None, as_json: Json = False) -> None:
    """Restore a deleted key."""
    with service(db) as llavero:
        emit(llavero.keys.undelete(CLI, key_id), as_json, KEY_COLUMNS)


@keys_app.command("rotate")
def keys_rotate(
    key_id: str,
    grace_period: Annotated[
        int, typer.Option("--grace-period", help="Seconds the old string keeps working.")
    ] = 0,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """A new key string for the same key; the old one works for the grace period."""
    with service(db) as llavero:
        created = llavero.keys.rotate(CLI, key_id, grace_period)
        if as_json:
            emit(created, True)
            return
        emit(created.key, False, KEY_COLUMNS + ("previous_expire_time",))
        out.print(f"new key (shown once): {created.key_string}", markup=False, highlight=False)


# The request context shared by `keys verify` and `keys test`.
Ip = Annotated[str | None, typer.Option(help="Client IP.")]
Referrer = Annotated[str | None, typer.Option(help="Referer header.")]
AndroidPackage = Annotated[str | None, typer.Option(help="Android package name.")]
AndroidCert = Annotated[str | None, typer.Option(help="SHA-1 of the app's signing certificate.")]
IosBundleId = Annotated[str | None, typer.Option(help="iOS bundle identifier.")]
ServiceName = Annotated[str | None, typer.Option("--service", help="API service.")]
Method = Annotated[str | None, typer.Option(help="API method.")]
Environment = Annotated[str | None, typer.Option(help="Verifier's environment.")]


@keys_app.command("verify")
def keys_verify(
    key: Annotated[
        str | None, typer.Argument(help="The key; read from stdin when omitted (safer).")
    ] = None,
    ip: Ip = None,
    referrer: Referrer = None,
    android_package: AndroidPackage = None,
    android_cert: AndroidCert = None,
    ios_bundle_id: IosBundleId = None,
    service_name: ServiceName = None,
    method: Method = None,
    environment: Environment = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Verify a key as the hot path would; exit code 0 only when VALID."""
    from llavero.core.verify import VerifyRequest

    secret = key if key not in (None, "-") else _read_secret("Key")
    with service(db) as llavero:
        request = VerifyRequest(
            key=secret or "",
            ip=ip,
            referrer=referrer,
            android_package=android_package,
            android_cert=android_cert,
            ios_bundle_id=ios_bundle_id,
            service=service_name,
            method=method,
            environment=environment,
        )
        result = llavero.verifier.verify(request).to_dict()
        emit(result, as_json, ("valid", "code", "key_id", "project", "plan", "environment"))
    if not result["valid"]:
        raise typer.Exit(3)


@keys_app.command("test")
def keys_test(
    key_id: str,
    ip: Ip = None,
    referrer: Referrer = None,
    android_package: AndroidPackage = None,
    android_cert: AndroidCert = None,
    ios_bundle_id: IosBundleId = None,
    service_name: ServiceName = None,
    method: Method = None,
    environment: Environment = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Dry-run a verify context against a key: which rule allows or refuses it, and why.
    Counts no usage; exit code 0 only when the request would be allowed."""
    context = {
        "ip": ip,
        "referrer": referrer,
        "android_package": android_package,
        "android_cert": android_cert,
        "ios_bundle_id": ios_bundle_id,
        "service": service_name,
        "method": method,
        "environment": environment,
    }
    with service(db) as llavero:
        result = llavero.keys.test_restrictions(CLI, key_id, context)
        if as_json:
            emit(result, True)
        else:
            emit(result.checks, False, ("restriction", "allowed", "matched_rule", "reason"))
            verdict = "allowed" if result.allowed else f"refused: {result.code}"
            out.print(f"verdict: {verdict}", markup=False, highlight=False)
    if not result.allowed:
        raise typer.Exit(3)


# --- usage --------------------------------------------------------------------------------


@app.command()
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
    with service(db) as llavero:
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


# --- leaks --------------------------------------------------------------------------------


@app.command()
def scan(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files and directories (default: .).")
    ] = None,
    git: Annotated[
        bool, typer.Option("--git", help="Scan every commit of the git repositories at PATH.")
    ] = False,
    stdin: Annotated[bool, typer.Option("--stdin", help="Scan standard input.")] = False,
    no_ignore: Annotated[
        bool, typer.Option("--no-ignore", help="Scan what .gitignore leaves out too.")
    ] = False,
    db: Db = None,
    as_json: Json = False,
    as_sarif: Annotated[bool, typer.Option("--sarif", help="Print SARIF 2.1.0.")] = False,
) -> None:
    """Find Llavero keys and tokens (valid checksum only); exit 0 none, 1 found, 2 error.

    With a database (--db, LLAVERO_DATABASE_URL or the default SQLite file) each key found is
    named by its project, id and state. A whole key string is never printed."""
    from llavero.cli import scan_report
    from llavero.cli.scan import GitError, Scanner

    if as_json and as_sarif:
        raise typer.BadParameter("give one of --json and --sarif", param_hint="--sarif")
    settings = settings_for(db)
    scanner = Scanner(settings.key_prefix)
    targets = paths or ([] if stdin else [Path(".")])
    try:
        findings = list(scanner.scan_stream(sys.stdin.buffer)) if stdin else []
        findings += _scan_targets(scanner, targets, git=git, gitignore=not no_ignore)
    except (OSError, GitError) as error:
        err.print(f"error: {_scan_error(error)}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    findings = _identified(findings, settings, explicit=db is not None)
    if as_json or as_sarif:
        document = scan_report.as_sarif(findings) if as_sarif else scan_report.as_json(findings)
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for finding in findings:
            where = f"{finding.path}:{finding.line}"
            if finding.commit:
                where = f"{finding.commit[:12]}:{where}"
            out.print(f"{where}: {scan_report.describe(finding)}", markup=False, highlight=False)
        err.print(f"{len(findings)} found", markup=False, highlight=False)
    raise typer.Exit(1 if findings else 0)


def _scan_targets(
    scanner: Scanner, targets: Sequence[Path], *, git: bool, gitignore: bool
) -> list[Finding]:
    """Scan with a progress bar on a terminal (on stderr, so piped output stays clean)."""
    from rich.progress import Progress

    from llavero.cli.scan import git_blobs, total_size

    for target in targets:
        if not target.exists():
            raise FileNotFoundError(2, "No such file or directory", str(target))
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        found: list[Finding] = []
        for target in targets:
            if git:
                blobs = git_blobs(target)
                task = progress.add_task(f"{target} (git)", total=len(blobs))
                step = partial(progress.advance, task)
                found += scanner.scan_git(target, progress=step, blobs=blobs)
            else:
                size = total_size([target], gitignore=gitignore) if err.is_terminal else None
                task = progress.add_task(str(target), total=size)
                step = partial(progress.advance, task)
                found += scanner.scan_paths([target], gitignore=gitignore, progress=step)
        return found


def _scan_error(error: Exception) -> str:
    if isinstance(error, OSError) and error.filename is not None:
        return f"{error.filename}: {error.strerror}"
    return str(error)


def _identified(findings: list[Finding], settings: Settings, *, explicit: bool) -> list[Finding]:
    """Findings named by key, project and state, when there is a database to ask; a scan goes
    on (with a warning) when the database cannot be read."""
    default_file = settings.data_dir / "llavero.sqlite3"
    configured = explicit or settings.database_url is not None or default_file.exists()
    if not findings or not configured:
        return findings
    try:
        llavero = Llavero(settings)
    except (ValidationError, ArgumentError, ValueError, OSError) as error:
        err.print(f"warning: no key lookup: {type(error).__name__}", markup=False)
        return findings
    try:
        known = llavero.leaks.identify(CLI, [f.secret for f in findings if f.kind == "key"])
    except (LlaveroError, OperationalError, ProgrammingError) as error:
        err.print(f"warning: no key lookup: {type(error).__name__}", markup=False)
        return findings
    finally:
        llavero.close()
    return [
        finding.identified(hit.key, hit.project, hit.state)
        if (hit := known.get(finding.secret))
        else finding
        for finding in findings
    ]


# --- plans and billing --------------------------------------------------------------------

PLAN_COLUMNS = ("name", "display_name", "rpm", "rpd", "upm", "upd")
ACCOUNT_COLUMNS = ("id", "display_name", "currency", "open", "create_time", "update_time")
BILLING_INFO_COLUMNS = ("project", "billing_account", "plan", "limits")


@plans_app.command("list")
def plans_list(db: Db = None, as_json: Json = False) -> None:
    """List the plans and their limits (requests and units per minute and per UTC day)."""
    with service(db) as llavero:
        plans = llavero.plans.list()
    if as_json:
        emit(plans, True)
        return
    rows = [
        {name: "unlimited" if value is None else value for name, value in plan} for plan in plans
    ]
    emit(rows, False, PLAN_COLUMNS)


@billing_app.command("create")
def billing_create(
    display_name: Annotated[str, typer.Argument(help='e.g. "Acme Corp"')],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "USD",
    closed: Annotated[bool, typer.Option("--closed", help="Create it closed.")] = False,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Create a billing account."""
    with service(db) as llavero:
        account = llavero.billing.create(CLI, display_name, currency, open=not closed)
        emit(account, as_json, ACCOUNT_COLUMNS)


@billing_app.command("list")
def billing_list(db: Db = None, as_json: Json = False) -> None:
    """List billing accounts."""
    with service(db) as llavero:
        accounts = every_item(lambda token: llavero.billing.list(CLI, page_token=token))
        emit(accounts, as_json, ACCOUNT_COLUMNS)


@billing_app.command("link")
def billing_link(
    project: Annotated[str, typer.Argument(help="Project id.")],
    account: Annotated[str, typer.Argument(help="Billing account id (an open one).")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Link a project to an open billing account: it moves to the paid plan at once."""
    with service(db) as llavero:
        emit(llavero.billing.link(CLI, project, account), as_json, BILLING_INFO_COLUMNS)


@billing_app.command("unlink")
def billing_unlink(
    project: Annotated[str, typer.Argument(help="Project id.")],
    db: Db = None,
    as_json: Json = False,
) -> None:
    """Unlink a project from its billing account: it moves back to the free plan at once."""
    with service(db) as llavero:
        emit(llavero.billing.unlink(CLI, project), as_json, BILLING_INFO_COLUMNS)


@billing_app.command("close")
def billing_close(account: str, db: Db = None, as_json: Json = False) -> None:
    """Close a billing account: its projects stay linked but fall back to the free plan."""
    with service(db) as llavero:
        emit(llavero.billing.close(CLI, account), as_json, ACCOUNT_COLUMNS)


@billing_app.command("reopen")
def billing_reopen(account: str, db: Db = None, as_json: Json = False) -> None:
    """Reopen a closed billing account: its linked projects return to the paid plan."""
    with service(db) as llavero:
        emit(llavero.billing.reopen(CLI, account), as_json, ACCOUNT_COLUMNS)


# --- webhooks -----------------------------------------------------------------------------

WEBHOOK_COLUMNS = ("id", "project", "url", "events", "disabled", "description")
DELIVERY_COLUMNS = ("event_id", "type", "status", "attempts", "last_status", "create_time")
EventOption = Annotated[
    list[str] | None,
    typer.Option("--event", help="An event type to send (repeat it); '*' or none: every one."),
]


@webhooks_app.command("create")
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
    with service(db) as llavero:
        created = llavero.webhooks.create(
            CLI, url, event or ["*"], project=project, description=description
        )
        if as_json:
            emit(created, True)
            return
        emit(created.webhook, False, WEBHOOK_COLUMNS)
        out.print(f"Signing secret (shown once): {created.secret}", markup=False, highlight=False)


@webhooks_app.command("list")
def webhooks_list(
    project: Annotated[str | None, typer.Option(help="Only this project's webhooks.")] = None,
    db: Db = None,
    as_json: Json = False,
) -> None:
    """List webhooks."""
    with service(db) as llavero:
        hooks = every_item(
            lambda token: llavero.webhooks.list(CLI, project=project, page_token=token)
        )
        emit(hooks, as_json, WEBHOOK_COLUMNS)


@webhooks_app.command("show")
def webhooks_show(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Show one webhook."""
    with service(db) as llavero:
        emit(llavero.webhooks.get(CLI, webhook_id), as_json, WEBHOOK_COLUMNS)


@webhooks_app.command("update")
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
    with service(db) as llavero:
        emit(llavero.webhooks.update(CLI, webhook_id, changes), as_json, WEBHOOK_COLUMNS)


@webhooks_app.command("delete")
def webhooks_delete(webhook_id: str, db: Db = None) -> None:
    """Delete a webhook and its delivery log."""
    with service(db) as llavero:
        llavero.webhooks.delete(CLI, webhook_id)
        out.print(f"Deleted webhook {webhook_id}.", markup=False, highlight=False)


@webhooks_app.command("test")
def webhooks_test(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Queue a webhook.test event for this webhook (a serving instance, or `deliver`, sends it)."""
    with service(db) as llavero:
        emit(llavero.webhooks.send_test(CLI, webhook_id), as_json, ("event_id",))


@webhooks_app.command("rotate-secret")
def webhooks_rotate_secret(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """Give a webhook a new signing secret; prints it once."""
    with service(db) as llavero:
        rotated = llavero.webhooks.rotate_secret(CLI, webhook_id)
        if as_json:
            emit(rotated, True)
            return
        out.print(f"Signing secret (shown once): {rotated.secret}", markup=False, highlight=False)


@webhooks_app.command("deliveries")
def webhooks_deliveries(webhook_id: str, db: Db = None, as_json: Json = False) -> None:
    """The delivery log of a webhook, newest first."""
    with service(db) as llavero:
        log = every_item(
            lambda token: llavero.webhooks.deliveries(CLI, webhook_id, page_token=token)
        )
        emit(log, as_json, DELIVERY_COLUMNS)


@webhooks_app.command("deliver")
def webhooks_deliver(db: Db = None) -> None:
    """Send the events that are due now, without a server (as `serve` does every second)."""
    with service(db) as llavero:
        llavero.alerts.check()
        sent = llavero.dispatcher.run_once()
        out.print(f"{sent} delivery attempts.", markup=False, highlight=False)


def main() -> None:
    app()
