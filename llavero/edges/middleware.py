"""Key verification inside a Python web app, against the same store as `llavero serve`, with no
HTTP hop: ASGI middleware (Starlette, FastAPI), WSGI middleware (Flask, Django) and a FastAPI
dependency that hands a route the verified key.

    app.add_middleware(LlaveroMiddleware, llavero=Llavero(), service="api.example.com")

    @app.get("/v1/things")
    def things(key: VerifiedKey) -> ...: key.project, key.key_id, key.limits

Refusals answer the same Google-style errors as the gateway (`llavero.edges.answers`); allowed
answers carry `RateLimit-*` headers. The verdict sits in the ASGI scope's state
(`request.state.llavero_key`) or the WSGI environ (`environ["llavero.key"]`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Final

import anyio
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llavero.core.verify import VerifyRequest, VerifyResult
from llavero.edges import answers, credentials
from llavero.edges.answers import Refusal
from llavero.edges.proxy_trust import ProxyTrust, joined_headers
from llavero.service import Llavero

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

STATE_KEY: Final = "llavero_key"
ENVIRON_KEY: Final = "llavero.key"
JSON: Final = "application/json; charset=UTF-8"
REASONS: Final = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}


class KeyGate:
    """The decision both middlewares share: the request's key and context, verified."""

    def __init__(
        self,
        llavero: Llavero,
        *,
        service: str | None = None,
        environment: str | None = None,
        public_paths: Collection[str] = (),
        trusted_proxies: Iterable[str] | None = None,
    ) -> None:
        self.verifier = llavero.verifier
        llavero.register("middleware")  # the registry then sees this app's process count too
        self.service = service
        self.environment = environment
        self.public_paths = frozenset(public_paths)
        proxies = llavero.settings.trusted_proxies if trusted_proxies is None else trusted_proxies
        self.trust = ProxyTrust(proxies)

    def is_public(self, path: str) -> bool:
        return path in self.public_paths

    def check(
        self, headers: Mapping[str, str], query: str, peer: str | None, path: str
    ) -> VerifyResult | Refusal:
        key = credentials.key_from(headers, query)
        if not key:
            return answers.refusal_for_missing_key()
        origin = credentials.origin_from(
            headers, self.trust.client_ip(peer, headers), path, self.service
        )
        result = self.verifier.verify(VerifyRequest.for_context(key, origin, self.environment))
        return answers.refusal(result) or result


class LlaveroMiddleware:
    """ASGI middleware. `in_thread` (default) verifies in a worker thread, so that a cache miss
    or a Redis round trip never blocks the event loop; False saves the thread hop when keys are
    cached and limits are counted in memory."""

    def __init__(
        self,
        app: ASGIApp,
        llavero: Llavero,
        *,
        service: str | None = None,
        environment: str | None = None,
        public_paths: Collection[str] = (),
        trusted_proxies: Iterable[str] | None = None,
        in_thread: bool = True,
    ) -> None:
        self.app = app
        self.gate = KeyGate(
            llavero,
            service=service,
            environment=environment,
            public_paths=public_paths,
            trusted_proxies=trusted_proxies,
        )
        self.in_thread = in_thread

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.gate.is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        verdict = await self._check(scope)
        if isinstance(verdict, Refusal):
            await _send_refusal(verdict, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = verdict
        limit_headers = [
            (name.lower().encode(), value.encode())
            for name, value in answers.rate_limit_headers(verdict.limits).items()
        ]
        if not limit_headers:
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)

    async def _check(self, scope: Scope) -> VerifyResult | Refusal:
        # A dict rather than Starlette's Headers: verify's context reads up to eight headers,
        # and Headers scans the whole list on each read. Repeated headers joined.
        headers = joined_headers(scope["headers"])
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        peer = client[0] if client else None
        if self.in_thread:
            return await anyio.to_thread.run_sync(
                self.gate.check, headers, query, peer, scope["path"]
            )
        return self.gate.check(headers, query, peer, scope["path"])


async def _send_refusal(refusal: Refusal, send: Send) -> None:
    body = refusal.body_bytes()
    headers = [(name.lower().encode(), value.encode()) for name, value in refusal.headers.items()]
    headers += [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def verified_key(request: Request) -> VerifyResult:
    """FastAPI dependency: the key `LlaveroMiddleware` verified for this request."""
    result: VerifyResult | None = getattr(request.state, STATE_KEY, None)
    if result is None:
        raise RuntimeError(
            "no verified key on this request: add LlaveroMiddleware to the app, and do not "
            "list this path in public_paths"
        )
    return result


VerifiedKey = Annotated[VerifyResult, Depends(verified_key)]


class LlaveroWSGIMiddleware:
    """WSGI middleware: wrap Flask's `app.wsgi_app` or Django's `get_wsgi_application()`."""

    def __init__(
        self,
        app: WSGIApplication,
        llavero: Llavero,
        *,
        service: str | None = None,
        environment: str | None = None,
        public_paths: Collection[str] = (),
        trusted_proxies: Iterable[str] | None = None,
    ) -> None:
        self.app = app
        self.gate = KeyGate(
            llavero,
            service=service,
            environment=environment,
            public_paths=public_paths,
            trusted_proxies=trusted_proxies,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if self.gate.is_public(path):
            return self.app(environ, start_response)
        verdict = self.gate.check(
            credentials.wsgi_headers(environ),
            environ.get("QUERY_STRING", ""),
            environ.get("REMOTE_ADDR"),
            path,
        )
        if isinstance(verdict, Refusal):
            body = verdict.body_bytes()
            headers = [*verdict.headers.items(), ("Content-Type", JSON)]
            headers.append(("Content-Length", str(len(body))))
            start_response(f"{verdict.status} {REASONS[verdict.status]}", headers)
            return [body]
        environ[ENVIRON_KEY] = verdict
        limit_headers = list(answers.rate_limit_headers(verdict.limits).items())

        def start_with_limits(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            return start_response(status, [*headers, *limit_headers], *exc)

        return self.app(environ, start_with_limits)


def verified_key_of(environ: Mapping[str, Any]) -> VerifyResult:
    """The key `LlaveroWSGIMiddleware` verified (Flask: `request.environ`, Django:
    `request.META`)."""
    result = environ.get(ENVIRON_KEY)
    if not isinstance(result, VerifyResult):
        raise RuntimeError("no verified key on this request: wrap the app in LlaveroWSGIMiddleware")
    return result


__all__ = [
    "LlaveroMiddleware",
    "LlaveroWSGIMiddleware",
    "VerifiedKey",
    "verified_key",
    "verified_key_of",
]
