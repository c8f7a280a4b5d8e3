"""The audit log for admins: every change, newest first, page by page."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from llavero.console import web
from llavero.errors import InvalidArgument, PermissionDenied

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/audit"
PAGE_SIZE: Final = 100


@router.get(PAGE_PATH)
def audit_page(current: web.SignedInPage, page_token: str = "") -> HTMLResponse:
    try:
        page = current.llavero.audit.list(
            current.actor, page_size=PAGE_SIZE, page_token=page_token or None
        )
    except PermissionDenied:
        return current.render("error.html", status_code=403, status=403)
    except InvalidArgument:
        return current.render("error.html", status_code=404, status=404)
    next_url = PAGE_PATH + "?" + urlencode({"page_token": page.next_page_token})
    return current.render(
        "audit.html",
        events=[event.model_dump() for event in page.items],
        next_url=next_url if page.next_page_token else "",
        first_url=PAGE_PATH if page_token else "",
    )
