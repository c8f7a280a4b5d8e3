"""Sign-in with an OpenID provider: authorization code with PKCE, through Authlib.

Authlib does the protocol: discovery, the state and nonce kept in a short-lived signed cookie
bound to this browser (`llavero_oidc`, path `/signin/oidc`), the PKCE verifier, the token
exchange and the ID token's signature, issuer, audience, expiry and nonce. Who may then sign in
is the service layer's decision (`llavero.service.federation`).
"""

from __future__ import annotations

import logging
from typing import Any, Final

from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from llavero.config import Settings
from llavero.console import web
from llavero.errors import PermissionDenied, Unauthenticated
from llavero.service import Llavero
from llavero.service.federation import Identity

log = logging.getLogger("llavero.oidc")
router = APIRouter(include_in_schema=False)
STATE_COOKIE: Final = "llavero_oidc"
STATE_MAX_AGE: Final = 600
NEXT: Final = "llavero_next"
CLIENT: Final = "provider"


def install(app: FastAPI, llavero: Llavero) -> None:
    """Offer the provider's sign-in when `LLAVERO_OIDC_ISSUER` and a client id are set."""
    settings = llavero.settings
    if not settings.oidc_enabled:
        return
    oauth = OAuth()
    oauth.register(
        CLIENT,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        server_metadata_url=_discovery_url(settings),
        client_kwargs={"scope": " ".join(settings.oidc_scopes), "code_challenge_method": "S256"},
    )
    app.state.oidc = oauth
    app.add_middleware(
        SessionMiddleware,
        # a key of its own, derived from the deployment's hash secret
        secret_key=llavero.ctx.hasher.hash("llavero-oidc-state-cookie"),
        session_cookie=STATE_COOKIE,
        max_age=STATE_MAX_AGE,
        path="/signin/oidc",
        same_site="lax",
        https_only=bool(settings.secure_cookies),
    )
    app.include_router(router)


def _discovery_url(settings: Settings) -> str:
    return (settings.oidc_issuer or "").rstrip("/") + "/.well-known/openid-configuration"


def _client(request: Request) -> StarletteOAuth2App:
    client: StarletteOAuth2App = request.app.state.oidc.create_client(CLIENT)
    return client


def _callback_url(request: Request) -> str:
    public = web.service(request).settings.public_url
    if public:
        return public.rstrip("/") + "/signin/oidc/callback"
    return str(request.url_for("oidc_callback"))


@router.get("/signin/oidc")
async def oidc_start(request: Request, next: str | None = None) -> Response:
    """To the provider; `next` (a local path only) is where the callback returns to."""
    request.session[NEXT] = web.local_path(next)
    try:
        response: Response = await _client(request).authorize_redirect(
            request, _callback_url(request)
        )
    except Exception as exc:  # the provider's discovery document could not be read
        log.warning("OpenID provider unreachable: %s", type(exc).__name__)
        return _refused(request, "oidc_unavailable", 503)
    return response


@router.get("/signin/oidc/callback", name="oidc_callback")
async def oidc_callback(request: Request) -> Response:
    settings = web.service(request).settings
    try:
        token: dict[str, Any] = await _client(request).authorize_access_token(
            request, leeway=settings.oidc_clock_skew_seconds
        )
    except (OAuthError, JoseError) as exc:
        # state, nonce, signature, issuer, audience or expiry: none of them is worth more detail
        log.warning("OpenID sign-in refused: %s", getattr(exc, "error", None) or type(exc).__name__)
        return _refused(request, "oidc_failed", 401)
    next_path = web.local_path(request.session.pop(NEXT, None))
    try:
        claims = await _claims(request, token)
    except Exception as exc:  # the userinfo endpoint failed: nothing to sign in with
        log.warning("OpenID userinfo unavailable: %s", type(exc).__name__)
        return _refused(request, "oidc_failed", 401)
    try:
        user = await run_in_threadpool(
            web.service(request).federation.sign_in,
            _identity(claims, settings),
            web.client_ip(request),
        )
    except PermissionDenied:
        return _refused(request, "oidc_domain", 403, email=str(claims.get("email", "")))
    except Unauthenticated:
        return _refused(request, "oidc_failed", 401)
    return web.start_session(request, user, next_path)


async def _claims(request: Request, token: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims, completed from the userinfo endpoint when the token lacks the
    email (many providers put scope claims there only). Userinfo must be about the same `sub`."""
    claims: dict[str, Any] = dict(token.get("userinfo") or {})
    if "email" in claims:
        return claims
    userinfo: dict[str, Any] = dict(await _client(request).userinfo(token=token))
    if userinfo.get("sub") != claims.get("sub"):
        return claims
    return userinfo | claims


def _identity(claims: dict[str, Any], settings: Settings) -> Identity:
    groups = claims.get(settings.oidc_groups_claim) or []
    return Identity(
        email=str(claims.get("email") or ""),
        email_verified=claims.get("email_verified") is True,
        groups=frozenset(str(group) for group in groups if isinstance(group, str)),
    )


def _refused(request: Request, error: str, status_code: int, email: str = "") -> HTMLResponse:
    request.session.clear()
    return web.signin_form(request, status_code=status_code, error=error, email=email)
