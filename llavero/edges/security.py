"""Browser-facing safety: the session cookie, CSRF checks and the security headers.

The Content-Security-Policy allows scripts and styles from this origin only (no inline script,
no inline event handler), so an injected name can at worst show as text, never run.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llavero.errors import PermissionDenied
from llavero.service.sessions import SESSION_TTL, SignedIn

SESSION_COOKIE = "llavero_session"
LANGUAGE_COOKIE = "llavero_hl"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")
DOCS_PATHS = ("/docs", "/redoc")
# Swagger UI starts from an inline script and ReDoc styles inline and renders in a worker; the
# pages show only this process's own OpenAPI document, from this origin.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)
DOCS_HEADERS = [
    (b"content-security-policy", DOCS_CONTENT_SECURITY_POLICY.encode()),
    *HEADERS[1:],
]


class SecurityHeaders:
    """Adds the headers above to every answer, errors and 500s included (it wraps the whole
    app, `llavero.application.LlaveroApp`); the API docs pages get them with the policy they
    need."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = DOCS_HEADERS if scope["path"].startswith(DOCS_PATHS) else HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in wanted if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


def is_secure(request: Request, forced: bool | None) -> bool:
    if forced is not None:
        return forced
    return request.url.scheme == "https"


def set_session_cookie(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure, path="/")


def tokens_match(presented: str | None, expected: str) -> bool:
    """Constant-time, on bytes: `compare_digest` raises on a str with non-ASCII characters
    (that TypeError was a 500); surrogatepass lets any str through to a plain mismatch."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(
        presented.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


def check_csrf(signed_in: SignedIn, presented: str | None) -> None:
    """Every state-changing request carries the session's CSRF token (form field or header)."""
    if not tokens_match(presented, signed_in.csrf_token):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")
