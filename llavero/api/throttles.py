"""`/v1/signinThrottles`: the sign-in attempts counted per email and client address, and an
admin's way to let a user sign in again at once (docs/security.md, "Account enumeration and
throttling")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import Body
from llavero.service.throttle import IP_LENGTH, SigninThrottle

router = APIRouter(tags=["users"])


class SigninThrottleList(BaseModel):
    signin_throttles: list[SigninThrottle]


class SigninThrottleClear(Body):
    """`ip` clears one address only; without it, every address of the email."""

    email: str = Field(max_length=254)
    ip: str | None = Field(default=None, max_length=IP_LENGTH)


class SigninThrottleCleared(BaseModel):
    cleared: int


@router.get("/v1/signinThrottles")
def list_signin_throttles(
    actor: Caller, llavero: LlaveroDep, email: Annotated[str | None, Query(max_length=254)] = None
) -> SigninThrottleList:
    """Counts of the last day, newest first (admin). A `retry_time` in the future means the
    next attempt from that address waits until then."""
    return SigninThrottleList(signin_throttles=list(llavero.users.throttles(actor, email)))


@router.post("/v1/signinThrottles:clear")
def clear_signin_throttle(
    body: SigninThrottleClear, actor: Caller, llavero: LlaveroDep
) -> SigninThrottleCleared:
    """Forget the counted attempts of an email (admin): its next sign-in is evaluated at once."""
    return SigninThrottleCleared(cleared=llavero.users.clear_throttle(actor, body.email, body.ip))
