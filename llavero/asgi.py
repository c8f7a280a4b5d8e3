"""The app `llavero serve` runs, built from the LLAVERO_* settings inside the server's worker.

granian (see `llavero.cli.serve`) imports its app by name in a worker process, so the app is
made here by a factory rather than handed over as an object; any ASGI server can use it too:
`granian --interface asgi --factory llavero.asgi:serving_app`.
"""

from __future__ import annotations

import os
from typing import Any, cast

from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from llavero.api import create_app
from llavero.config import Settings
from llavero.service import Llavero

TRUSTED_PROXIES_DEFAULT = "127.0.0.1,::1"


def serving_app() -> ASGIApp:
    """The console and the API, with the change feed and the usage flusher running.

    granian does not read `X-Forwarded-For` / `X-Forwarded-Proto`; uvicorn's middleware does,
    from the addresses in `FORWARDED_ALLOW_IPS` (same variable and default as uvicorn), so the
    client address, the `Secure` cookie flag and docs/deployment.md stay as they were.
    """
    app = create_app(Llavero(Settings()), background=True)
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", TRUSTED_PROXIES_DEFAULT)
    # uvicorn types ASGI apps with its own TypedDicts, Starlette with plain mappings: the same
    # protocol, spelled twice.
    return cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=trusted))
