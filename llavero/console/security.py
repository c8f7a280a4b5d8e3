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
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeaders:
    """Adds the headers above to every answer; the API docs page gets them too, with the
    policy it needs for its bundled (local) assets."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_docs = scope["path"].startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [
                    (name, value)
                    for name, value in HEADERS
                    if name not in present and not (is_docs and name == b"content-security-policy")
                ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


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


def check_csrf(signed_in: SignedIn, presented: str | None) -> None:
    """Every state-changing request carries the session's CSRF token (form field or header)."""
    if not presented or not hmac.compare_digest(presented, signed_in.csrf_token):
        raise PermissionDenied("missing or wrong CSRF token; reload the page and try again")
