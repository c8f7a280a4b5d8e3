"""The HTTP application: the REST API under `/v1` (OpenAPI at `/openapi.json`, docs at `/docs`)
and the console, on one ASGI app."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
from llavero.edges.proxy_trust import ClientAddress, ProxyTrust
from llavero.edges.security import SecurityHeaders
from llavero.service import Llavero

NO_STORE = (b"cache-control", b"no-store")


class NoStore:
    """`Cache-Control: no-store` on every API answer: most carry key data, none should linger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if not any(name == NO_STORE[0] for name, _ in headers):
                    message["headers"] = [*headers, NO_STORE]
            await send(message)

        await self.app(scope, receive, send_no_store)


class LlaveroApp(FastAPI):
    """FastAPI, with `POST /v1/keys:verify` answered in front of every layer when it can be
    (`llavero.api.fast_verify`): those layers cost a cached verify more than the verify.

    `SecurityHeaders` and `NoStore` wrap everything, outermost: Starlette answers a 500 from
    its outermost layer and the fast path answers before any, so headers set further in would
    miss both (docs/security.md, "What errors and headers give away")."""

    def __init__(self, llavero: Llavero, **options: Any) -> None:
        super().__init__(**options)
        self._front = SecurityHeaders(NoStore(VerifyFastPath(super().__call__, llavero)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)


def create_app(llavero: Llavero, *, background: bool = False) -> FastAPI:
    """`background` starts the change feed (and later the usage flusher) with the app."""

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
