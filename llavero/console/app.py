"""Mounts the console on the API's FastAPI app: pages, static files and the answers to a
signed-out browser, a refused CSRF token or a missing page."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from llavero.api import errors
from llavero.console import web
from llavero.console.pages import (
    account,
    audit,
    auth,
    billing,
    detail,
    keys,
    members,
    oidc,
    usage,
    users,
    webhooks,
)
from llavero.console.templating import TEMPLATE_DIR
from llavero.service import Llavero

STATIC_DIR = TEMPLATE_DIR.parent / "static"
API_PREFIXES = ("/v1", "/docs", "/redoc", "/openapi.json")


def install_console(app: FastAPI, llavero: Llavero) -> None:
    """`llavero` is the service the pages call; the app already holds it in `app.state`."""
    app.state.llavero = llavero
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (auth, keys, users, audit, account, detail, usage, billing, members, webhooks):
        app.include_router(module.router)
    oidc.install(app, llavero)
    app.add_exception_handler(web.SignInRequired, _sign_in)
    app.add_exception_handler(web.CsrfRefused, _csrf_refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.add_exception_handler(Exception, _unexpected)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, web.SignInRequired)
    return RedirectResponse(
        web.signin_url(exc.next_path, request.query_params.get("hl")), status_code=303
    )


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return web.render(request, web.language(request), "error.html", status_code=403, status=403)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Console paths get the error page in the visitor's language; API paths keep JSON."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(API_PREFIXES):
        return await errors.on_http_error(request, exc)
    status = exc.status_code
    return web.render(
        request, web.language(request), "error.html", status_code=status, status=status
    )


async def _bad_request(request: Request, exc: Exception) -> Response:
    """A console URL with a malformed part (`/app/users/abc/role`) names nothing: 404."""
    if request.url.path.startswith(API_PREFIXES):
        return await errors.on_validation_error(request, exc)
    return web.render(request, web.language(request), "error.html", status_code=404, status=404)


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug behind a console page: logged by the API's handler, shown as the error page."""
    answer = await errors.on_unexpected(request, exc)
    if request.url.path.startswith(API_PREFIXES):
        return answer
    return web.render(request, web.language(request), "error.html", status_code=500, status=500)
