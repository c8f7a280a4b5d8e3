"""`POST /v1/keys:verify`: the hot path over HTTP. A verify answer is 200 whatever the verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from pydantic import BaseModel, Field, create_model

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import Body, context_fields
from llavero.core import context
from llavero.core.verify import VerifyRequest

router = APIRouter(tags=["verify"])
KEY_MAX_LENGTH = 256
TEXT_MAX_LENGTH = context.MAX_LENGTH
MAX_COST = 10**12

if TYPE_CHECKING:
    VerifyBody = Body
else:
    VerifyBody = create_model(
        "VerifyBody",
        __base__=Body,
        key=(str, Field(max_length=KEY_MAX_LENGTH)),
        **context_fields(),
        cost=(int, Field(default=0, ge=0, le=MAX_COST, strict=True)),  # `false` is not a cost
    )


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
