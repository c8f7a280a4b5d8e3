"""`POST /v1/keys:verify`: the hot path over HTTP. A verify answer is 200 whatever the verdict."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import Body
from llavero.core.verify import VerifyRequest

router = APIRouter(tags=["verify"])
KEY_MAX_LENGTH = 256
TEXT_MAX_LENGTH = 2048
MAX_COST = 10**12
Text = Field(default=None, max_length=TEXT_MAX_LENGTH)


class VerifyBody(Body):
    key: str = Field(max_length=KEY_MAX_LENGTH)
    ip: str | None = Text
    referrer: str | None = Text
    android_package: str | None = Text
    android_cert: str | None = Text
    ios_bundle_id: str | None = Text
    service: str | None = Text
    method: str | None = Text
    environment: str | None = Text
    cost: int = Field(default=0, ge=0, le=MAX_COST, strict=True)  # `false` is not a cost


class LimitOut(BaseModel):
    limit: int
    remaining: int
    reset_seconds: int


class VerifyOut(BaseModel):
    valid: bool
    code: str
    key_id: str | None
    project: str | None
    plan: str | None
    environment: str | None
    limits: dict[str, LimitOut]


@router.post("/v1/keys:verify", response_model=VerifyOut)
def verify_key(body: VerifyBody, actor: Caller, llavero: LlaveroDep) -> object:
    # Most verifies are answered before this route by `llavero.api.fast_verify`; this one
    # answers the rest (errors, sessions, keys not cached yet) and documents the call.
    actor.require("keys:verify")
    result = llavero.verifier.verify(VerifyRequest(**body.model_dump()))
    return result.to_dict()
