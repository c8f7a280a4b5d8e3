"""`serve`, `gateway` and `db`: run Llavero, run the gateway, migrate and purge the database."""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from llavero.cli.shared import Db, fail, opened, out

app = typer.Typer(no_args_is_help=True, help="The database.")


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
    with opened(db) as llavero:
        if workers > 1 and llavero.settings.rate_limit_backend == "memory":
            fail(
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
            fail(f"cannot listen on {host}:{port}: {error.strerror} (is Llavero already running?)")


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

    from llavero.edges.gateway import from_settings
    from llavero.edges.logs import configure_logging, install_access_log_filter

    with opened(db) as llavero:
        configure_logging(llavero.settings.log_level, llavero.settings.log_format)
        _fail_if_taken(host, port)
        proxy = from_settings(
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


@app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Apply the database migrations."""
    with opened(db, upgrade=False) as llavero:
        current, head = llavero.db.revisions()
        if current == head:
            out.print(f"database is up to date (revision {head})", markup=False)
            return
        llavero.upgrade()
        before = f"revision {current}" if current else "an empty database"
        out.print(f"database upgraded from {before} to revision {head}", markup=False)


@app.command("purge")
def db_purge(db: Db = None) -> None:
    """Remove keys deleted more than 30 days ago and sign-in attempts counted more than a day
    ago (serve does this every hour)."""
    with opened(db) as llavero:
        out.print(f"purged {llavero.purge()} keys")
