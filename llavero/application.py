"""The HTTP application: the REST API under `/v1` (OpenAPI at `/openapi.json`, docs at `/docs`)
and the console, on one ASGI app."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from llavero import __version__
from llavero.api import (
    audit,
    billing,
    docs,
    errors,
    keys,
    leaks,
    members,
    projects,
    proxy_auth,
    throttles,
    usage,
    usage_report,
    verification,
    webhooks,
)
from llavero.api.fast_verify import VerifyFastPath
from llavero.console.app import install_console
from llavero.edges.access_log import AccessLog, AccessLogWriter
from llavero.edges.proxy_trust import ClientAddress, ProxyTrust
from llavero.edges.security import NoStore, SecurityHeaders
from llavero.service import Llavero


class LlaveroApp(FastAPI):
    """FastAPI, with `POST /v1/keys:verify` answered in front of every layer when it can be
    (`llavero.api.fast_verify`): those layers cost a cached verify more than the verify.

    Behind the fast path, `SecurityHeaders` and `NoStore` wrap everything else, outermost:
    Starlette answers a 500 from its outermost layer, so headers set further in would miss it
    (docs/security.md, "What errors and headers give away"); the access log, when on, wraps
    them. The fast path gives its own answers the same headers and access lines."""

    def __init__(
        self, llavero: Llavero, access_log: AccessLogWriter | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        behind: ASGIApp = SecurityHeaders(NoStore(super().__call__))
        if access_log is not None:
            behind = AccessLog(behind, access_log)
        self._front = VerifyFastPath(behind, llavero, access_log)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(
    llavero: Llavero, *, background: bool = False, access_log: AccessLogWriter | None = None
) -> FastAPI:
    """`background` starts the change feed (and later the usage flusher) with the app;
    `access_log` writes one line per HTTP request (`llavero.edges.access_log`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if background:
            llavero.start()
            # The app's ~150,000 long-lived objects (routes, models, templates) out of the
            # collector's reach: a full collection walking them took 140 ms, which was the
            # verify p99 under load; only objects made while serving are scanned now.
            gc.freeze()
        try:
            yield
        finally:
            aclose = getattr(llavero.limiter, "aclose", None)
            if aclose is not None:  # Redis connections of this event loop
                await aclose()
            if background:
                llavero.close()
                gc.unfreeze()  # an app served in a longer-lived process (tests) lets go

    app = LlaveroApp(
        llavero,
        access_log,
        title="Llavero",
        version=__version__,
        summary="API keys: create, restrict, rotate, revoke, verify, meter.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=errors.RESPONSES,
    )
    app.state.llavero = llavero
    errors.install(app)
    docs.install(app)
    parameters = [Depends(errors.well_formed_parameters)]
    for module in (
        projects,
        leaks,
        members,
        keys,
        verification,
        audit,
        billing,
        usage_report,
        usage,
        throttles,
        webhooks,
    ):
        app.include_router(module.router, dependencies=parameters)
    app.include_router(proxy_auth.router)
    install_console(app, llavero)
    # Around the routes (the fast path sits in front and reads no client address): every layer
    # and route sees the client `LLAVERO_TRUSTED_PROXIES` vouch for.
    app.add_middleware(ClientAddress, trust=ProxyTrust(llavero.settings.trusted_proxies))
    return app
