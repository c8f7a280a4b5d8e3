"""Who is calling: a management token (`Authorization: Bearer`) or a console session, whose
state-changing calls must carry its CSRF token in `X-CSRF-Token`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from llavero.edges.security import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE, check_csrf
from llavero.errors import Unauthenticated
from llavero.service import Actor, Llavero


def llavero_of(request: Request) -> Llavero:
    llavero: Llavero = request.app.state.llavero
    return llavero


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# Declares the bearer scheme in the OpenAPI document (and the Authorize button of /docs).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="managementToken",
    description="A management token, e.g. from `llavero tokens create --scope keys:read`.",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def authenticate(request: Request, bearer: Bearer) -> Actor:
    llavero = llavero_of(request)
    if bearer is not None and bearer.credentials:
        return llavero.tokens.authenticate(bearer.credentials.strip(), client_ip(request))
    signed_in = llavero.sessions.resume(request.cookies.get(SESSION_COOKIE))
    if signed_in is not None:
        if request.method not in SAFE_METHODS:
            check_csrf(signed_in, request.headers.get(CSRF_HEADER))
        return signed_in.actor(client_ip(request))
    raise Unauthenticated("send Authorization: Bearer <management token>")


Caller = Annotated[Actor, Depends(authenticate)]
LlaveroDep = Annotated[Llavero, Depends(llavero_of)]
