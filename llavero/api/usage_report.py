"""`POST /v1/usage:report`: units learned after the answer (LLM tokens), idempotent by
`request_id`. Needs the `keys:verify` scope, like verify itself."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import Field

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.schemas import Body
from llavero.core.plans import MAX_LIMIT
from llavero.service.usage_report import UsageReport

router = APIRouter(tags=["usage"])


class UsageReportBody(Body):
    key_id: str = Field(max_length=100)
    units: int = Field(ge=0, le=MAX_LIMIT, strict=True)
    request_id: str = Field(max_length=1000)


@router.post("/v1/usage:report")
def report_usage(body: UsageReportBody, actor: Caller, llavero: LlaveroDep) -> UsageReport:
    """Counts `units` against the unit limits (`upm`, `upd`) of the key and its project, once
    per `request_id`: a retry answers 200 with `duplicate: true` and counts nothing."""
    return llavero.usage_reports.report(actor, body.key_id, body.units, body.request_id)
