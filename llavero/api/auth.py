"""Who is calling: a management token (`Authorization: Bearer`) or a console session."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from llavero.errors import Unauthenticated
from llavero.service import Actor, Llavero


def service(request: Request) -> Llavero:
    llavero: Llavero = request.app.state.llavero
    return llavero


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticate(request: Request) -> Actor:
    llavero = service(request)
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return llavero.tokens.authenticate(credentials.strip(), client_ip(request))
    raise Unauthenticated("send Authorization: Bearer <management token>")


Caller = Annotated[Actor, Depends(authenticate)]
Service = Annotated[Llavero, Depends(service)]
