"""`/v1/audit`: who changed what, when, from where."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.projects import PageSize, PageToken
from llavero.api.schemas import AuditList

router = APIRouter(tags=["audit"])


@router.get("/v1/audit")
def list_audit(
    actor: Caller,
    llavero: LlaveroDep,
    target: Annotated[str | None, Query(max_length=200)] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> AuditList:
    """Newest first; `target` is a key id or `project/<id>`."""
    page = llavero.audit.list(actor, target=target, page_size=page_size, page_token=page_token)
    return AuditList(audit_events=page.items, next_page_token=page.next_page_token)
