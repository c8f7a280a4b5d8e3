"""What every console route needs: its language, its signed-in user, the CSRF check and a
rendered page with the shared context.

Routes take `Page` (any signed-in page) or `Action` (a POST that changes something) as a
dependency. Both raise `SignInRequired` for a signed-out browser, which the console turns into a
redirect to `/signin?next=...`, so a route body only ever runs for a known user.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from llavero.console import i18n, templating
from llavero.edges import security
from llavero.errors import PermissionDenied
from llavero.service import Actor, Llavero, models
from llavero.service.models import User
from llavero.service.pagination import every_item
from llavero.service.sessions import SignedIn

SIGNIN_CSRF_COOKIE: Final = "llavero_signin_csrf"
"""Double-submit cookie of the sign-in form: there is no session yet to hold its token."""
LANGUAGE_COOKIE_MAX_AGE: Final = 365 * 24 * 3600
NO_STORE: Final = {"Cache-Control": "no-store"}


class SignInRequired(Exception):
    """Raised by the page dependencies for a signed-out browser; answered with a redirect."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token: answered 403, nothing written."""


def service(request: Request) -> Llavero:
    llavero: Llavero = request.app.state.llavero
    return llavero


def language(request: Request) -> str:
    """`?hl=`, then the remembered choice, then Accept-Language (see `i18n.negotiate`)."""
    return i18n.negotiate(
        request.query_params.get("hl"),
        request.cookies.get(i18n.LANGUAGE_COOKIE),
        request.headers.get("accept-language"),
    )


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def secure_cookies(request: Request) -> bool:
    return security.is_secure(request, service(request).settings.secure_cookies)


def local_path(value: str | None, default: str = "/app/apikey") -> str:
    """Only a path on this site may be a `next` target: `//evil.example` or `https:` are not."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def signin_url(next_path: str, hl: str | None = None) -> str:
    """The sign-in page keeps the language asked for with `?hl=` on the page it stands for."""
    lang = i18n.normalize(hl)
    return "/signin?next=" + quote(next_path, safe="") + (f"&hl={lang}" if lang else "")


def _requested_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _signed_in(request: Request) -> SignedIn:
    signed_in = service(request).sessions.resume(request.cookies.get(security.SESSION_COOKIE))
    if signed_in is None:
        next_path = _requested_path(request) if request.method == "GET" else "/app/apikey"
        raise SignInRequired(next_path)
    return signed_in


@dataclass(frozen=True, slots=True)
class Page:
    """A request from a signed-in user: who, in which language, and how to answer."""

    request: Request
    signed_in: SignedIn
    lang: str

    @property
    def llavero(self) -> Llavero:
        return service(self.request)

    @property
    def actor(self) -> Actor:
        return self.signed_in.actor(client_ip(self.request))

    @property
    def is_admin(self) -> bool:
        return self.signed_in.user.role == "admin"

    def context(self) -> dict[str, Any]:
        user = self.signed_in.user
        return {
            "user": {"email": user.email, "is_admin": self.is_admin},
            "csrf_token": self.signed_in.csrf_token,
        }

    def render(
        self,
        template: str,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        return render(
            self.request,
            self.lang,
            template,
            status_code=status_code,
            headers=headers,
            **(self.context() | context),
        )

    def redirect(self, url: str) -> RedirectResponse:
        """303 after a POST: the browser follows with a GET, so a reload never re-posts."""
        return RedirectResponse(url, status_code=303)


def page(request: Request) -> Page:
    return Page(request, _signed_in(request), language(request))


async def action(request: Request) -> Page:
    """A signed-in POST whose `csrf_token` field (or X-CSRF-Token header) matches the session."""
    current = page(request)
    form = await request.form()
    presented = form.get(security.CSRF_FIELD) or request.headers.get(security.CSRF_HEADER)
    try:
        security.check_csrf(current.signed_in, presented if isinstance(presented, str) else None)
    except PermissionDenied:
        raise CsrfRefused from None
    return current


SignedInPage = Annotated[Page, Depends(page)]
SignedInAction = Annotated[Page, Depends(action)]


def render(
    request: Request,
    lang: str,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A page in `lang`; a `?hl=` that names a language is remembered in the language cookie."""
    response = HTMLResponse(
        templating.render(lang, template, **context), status_code=status_code, headers=headers
    )
    remember_language(request, response)
    return response


def remember_language(request: Request, response: Response) -> None:
    chosen = i18n.normalize(request.query_params.get("hl"))
    if chosen and chosen != request.cookies.get(i18n.LANGUAGE_COOKIE):
        response.set_cookie(
            i18n.LANGUAGE_COOKIE,
            chosen,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            samesite="lax",
            secure=secure_cookies(request),
            path="/",
        )


def signin_csrf_token(request: Request) -> str:
    """The sign-in form's token: the one already in the browser's cookie, else a new one."""
    return request.cookies.get(SIGNIN_CSRF_COOKIE) or secrets.token_urlsafe(32)


def set_signin_csrf_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        SIGNIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
        path="/signin",
    )


def start_session(request: Request, user: User, target: str) -> Response:
    """Signed in (by password, link or provider): a new session cookie, then `target`."""
    token, _ = service(request).sessions.create(user, client_ip(request))
    response = RedirectResponse(target, status_code=303)
    security.set_session_cookie(response, token, secure_cookies(request))
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/signin")
    return response


@dataclass(frozen=True, slots=True)
class SigninMethods:
    """What the sign-in page offers: the password form, a provider's button, or both."""

    password: bool
    provider: str | None


def signin_methods(request: Request) -> SigninMethods:
    settings = service(request).settings
    return SigninMethods(
        settings.password_signin, settings.oidc_name if settings.oidc_enabled else None
    )


MAX_EMAIL = 254


def signin_form(
    request: Request,
    *,
    status_code: int = 200,
    error: str | None = None,
    email: str = "",
    next: str | None = None,
) -> HTMLResponse:
    """The form again; the email typed is echoed only if it could be one (a megabyte is not)."""
    token = signin_csrf_token(request)
    response = render(
        request,
        language(request),
        "signin.html",
        status_code=status_code,
        headers=dict(NO_STORE),
        csrf_token=token,
        error=error,
        signin=signin_methods(request),
        email=email if len(email) <= MAX_EMAIL else "",
        next=local_path(next) if next else None,
    )
    set_signin_csrf_cookie(request, response, token)
    return response


def all_projects(current: Page) -> list[models.Project]:
    """Every project the user can see, for menus and the billing table."""
    return every_item(
        lambda token: current.llavero.projects.list(current.actor, page_size=1000, page_token=token)
    )


def leak_context(key: models.Key) -> dict[str, Any] | None:
    """A key's leak as the warning shows it; the place is a link only when it is https."""
    if key.leak is None:
        return None
    url = key.leak.url
    return {
        "time": key.leak.time,
        "url": url,
        "link": bool(url and url.startswith("https://")),
        "source": key.leak.source,
    }
