"""Every error leaves as the SPEC body: {"error": {"code", "status", "message"}}.

Validation messages name the field (`restrictions.allowed_ips[0]`, `page_size`), never echo the
rejected value (it could be a key), and a request that fails validation writes nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

from llavero.core import text
from llavero.errors import LlaveroError

log = logging.getLogger("llavero.api")
HTTP_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    415: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


class ErrorDetail(BaseModel):
    code: int
    status: str
    message: str


class ErrorBody(BaseModel):
    """The SPEC error body, declared in the OpenAPI document for every status a call can get."""

    error: ErrorDetail


RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": name}
    for status, name in HTTP_STATUSES.items()
    if status in (400, 401, 403, 404, 409, 412, 429, 503)
}


def error_response(code: int, status: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"code": code, "status": status, "message": message}}
    return JSONResponse(body, status_code=code, headers=headers or None)


def field_path(location: Sequence[Any]) -> str:
    parts = [part for part in location if part not in ("body", "query", "path", "header")]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return "body: is not valid JSON"
    if first.get("type") == "extra_forbidden":
        location = first["loc"]
        parent = field_path(location[:-1])
        return (
            f"{text.child('' if parent == 'body' else parent, location[-1])}: is not a known field"
        )
    if first.get("type") == "missing":
        return f"{field_path(first['loc'])}: is required"
    return f"{field_path(first['loc'])}: {first.get('msg', 'is invalid')}"


def well_formed_parameters(request: Request) -> None:
    """Path and query parameters follow the text rule of bodies (`llavero.core.text`): `%00` or an
    ill-formed value is a 400 naming the parameter, before any database sees it. A query
    parameter the operation does not declare is named `query`, its name left unechoed."""
    route = request.scope.get("route")
    declared = (
        {param.alias for param in route.dependant.query_params}
        if isinstance(route, APIRoute)
        else set()
    )
    for name, value in request.path_params.items():
        if isinstance(value, str):
            text.check(value, name)
    for name, value in request.query_params.multi_items():
        text.check(value, name if name in declared else "query")


async def on_llavero_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LlaveroError)
    body = exc.to_dict()
    return JSONResponse(body, status_code=exc.http_status)


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "INVALID_ARGUMENT", _validation_message(exc))


def allowed_methods(request: Request) -> str:
    """Every method of every route on this path: Starlette's own 405 names only the first."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods |= route.methods
    return ", ".join(sorted(methods))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = HTTP_STATUSES.get(exc.status_code, "UNKNOWN")
    message = exc.detail if isinstance(exc.detail, str) else status
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return error_response(exc.status_code, status, message, **headers)


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return error_response(500, "INTERNAL", "internal error; see the server log")


def document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents a 422 on every operation; Llavero answers bad input with the SPEC's 400
    (declared through `RESPONSES`), so the 422 and its schemas leave the document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = document.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    document_400_not_422(app)
    app.add_exception_handler(LlaveroError, on_llavero_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
