"""Signing in and out: email and password, the one-time link, and the session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from llavero.console import web
from llavero.edges import security
from llavero.errors import ResourceExhausted, Unauthenticated

router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/app/apikey", status_code=303)


@router.get("/signin")
def signin_page(request: Request, next: str | None = None) -> Response:
    """A browser still holding a session cookie that no longer works is told it expired."""
    cookie = request.cookies.get(security.SESSION_COOKIE)
    if web.service(request).sessions.resume(cookie):
        return RedirectResponse(web.local_path(next), status_code=303)
    response = web.signin_form(request, next=next, error="session_expired" if cookie else None)
    if cookie:
        security.clear_session_cookie(response, web.secure_cookies(request))
    return response


@router.post("/signin")
def signin(
    request: Request,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str | None, Form()] = None,
) -> Response:
    if not web.service(request).settings.password_signin:
        return web.signin_form(request, status_code=403, error="password_off", next=next)
    expected = request.cookies.get(web.SIGNIN_CSRF_COOKIE, "")
    if not security.tokens_match(csrf_token, expected):
        return web.signin_form(request, status_code=403, error="csrf", email=email, next=next)
    try:
        user = web.service(request).users.authenticate(email, password, web.client_ip(request))
    except ResourceExhausted:
        return web.signin_form(
            request, status_code=429, error="rate_limited", email=email, next=next
        )
    except Unauthenticated:
        return web.signin_form(
            request, status_code=401, error="invalid_credentials", email=email, next=next
        )
    return web.start_session(request, user, web.local_path(next))


@router.get("/signin/link")
def signin_link(request: Request, token: str = "") -> Response:
    """The first-run (or invitation) link: works once, then signs in like a password would."""
    try:
        user = web.service(request).users.redeem_signin_link(token, web.client_ip(request))
    except Unauthenticated:
        return web.signin_form(request, status_code=401, error="invalid_link")
    return web.start_session(request, user, "/app/apikey")


@router.post("/signout")
def signout(current: web.SignedInAction) -> Response:
    request = current.request
    web.service(request).sessions.end(request.cookies.get(security.SESSION_COOKIE))
    response = RedirectResponse("/signin", status_code=303)
    security.clear_session_cookie(response, web.secure_cookies(request))
    return response
