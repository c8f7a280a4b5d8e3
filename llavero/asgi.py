"""The app `llavero serve` runs, built from the LLAVERO_* settings inside the server's worker.

granian (see `llavero.cli.serve`) imports its app by name in a worker process, so the app is
made here by a factory rather than handed over as an object; any ASGI server can use it too:
`granian --interface asgi --factory llavero.asgi:serving_app`.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from llavero import redaction
from llavero.api import create_app
from llavero.config import Settings
from llavero.service import Llavero


def serving_app() -> ASGIApp:
    """The console and the API, with the change feed and the usage flusher running.

    granian reads no `X-Forwarded-For` / `X-Forwarded-Proto`; the app does, from the proxies in
    `LLAVERO_TRUSTED_PROXIES` only (`llavero.proxy_trust`, docs/security.md). Every log line
    of the worker goes through the key redaction (`llavero.redaction`).
    """
    redaction.install()
    return create_app(Llavero(Settings()), background=True)
