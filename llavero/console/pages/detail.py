"""The key detail page, `/app/keys/{key_id}`: what a key is, its advanced credential settings
(restrictions, environment, expiry, per-key limits, annotations), the dry-run tester and the
key's audit trail.

The settings form posts everything at once and the service validates it whole. On a mistake the
page comes back with what the user typed and the service's field (`restrictions.allowed_ips[1]`)
pinned to the input and line it came from: nothing is written and nothing typed is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.console.key_settings import (
    APPLICATION_KINDS,
    FieldError,
    SettingsForm,
    form_text,
    locate,
    settings_from_form,
    settings_of,
)
from llavero.console.plans import plan_display_name
from llavero.core import context, restrictions
from llavero.core.plans import LIMIT_NAMES
from llavero.errors import InvalidArgument, LlaveroError, NotFound, PermissionDenied
from llavero.service import dryrun

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/keys/{key_id}"
AUDIT_EVENTS: Final = 50
ERROR_CODES: Final = {
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "FAILED_PRECONDITION": "failed_precondition",
}


@router.get(PAGE_PATH)
def key_page(current: web.SignedInPage, key_id: str) -> HTMLResponse:
    notice = current.request.query_params.get("notice")
    return _render(current, key_id, notice="saved" if notice == "saved" else None)


@router.post(PAGE_PATH)
async def save_settings(current: web.SignedInAction, key_id: str) -> Response:
    form = await current.request.form()
    settings = settings_from_form(form)
    try:
        stored = settings_of(current.llavero.keys.get(current.actor, key_id))
        if settings.values["expire_time"] == stored.values["expire_time"]:
            # Unchanged: the stored time keeps its seconds, and a key that has already
            # expired can still be renamed or restricted without choosing a new expiry.
            del settings.changes["expire_time"]
        current.llavero.keys.update(current.actor, key_id, settings.changes)
    except InvalidArgument as error:
        return _render(
            current, key_id, settings=settings, error=locate(error.field, settings), status_code=400
        )
    except LlaveroError as error:
        return _render(
            current,
            key_id,
            settings=settings,
            failure=_failure(error),
            status_code=error.http_status,
        )
    return current.redirect(PAGE_PATH.format(key_id=key_id) + "?notice=saved#settings")


@router.post(PAGE_PATH + "/test")
async def test_request(current: web.SignedInAction, key_id: str) -> Response:
    """The dry-run: posted (it carries referrers and app identities) but writes nothing."""
    form = await current.request.form()
    typed = {name: form_text(form, name) for name in context.NAMES}
    try:
        result = current.llavero.keys.test_restrictions(
            current.actor, key_id, {name: value for name, value in typed.items() if value}
        )
    except InvalidArgument as error:
        test_error = FieldError(f"test-{error.field}", "test_field")
        return _render(current, key_id, test=typed, test_error=test_error, status_code=400)
    return _render(current, key_id, test=typed, test_result=explained(result, typed))


def _render(
    current: web.Page,
    key_id: str,
    *,
    settings: SettingsForm | None = None,
    error: FieldError | None = None,
    failure: str | None = None,
    notice: str | None = None,
    test: Mapping[str, str] | None = None,
    test_result: dict[str, Any] | None = None,
    test_error: FieldError | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    llavero, actor = current.llavero, current.actor
    try:
        key = llavero.keys.get(actor, key_id)
        project = llavero.projects.get(actor, key.project)
        events = llavero.audit.list(actor, target=key.id, page_size=AUDIT_EVENTS).items
    except (NotFound, PermissionDenied) as missing:
        status = missing.http_status
        return current.render("error.html", status_code=status, status=status)
    return current.render(
        "key.html",
        status_code=status_code,
        headers=dict(web.NO_STORE),
        now=llavero.ctx.clock.now(),
        key=key.model_dump(),
        leak=web.leak_context(key),
        project={
            "id": project.id,
            "display_name": project.display_name,
            "number": project.number,
            "plan": plan_display_name(llavero, project.plan),
        },
        form=(settings or settings_of(key)).values,
        application_kinds=APPLICATION_KINDS,
        limit_names=LIMIT_NAMES,
        error=error,
        failure=failure,
        notice=notice,
        test=test or dict.fromkeys(context.NAMES, ""),
        test_result=test_result,
        test_error=test_error,
        events=[event.model_dump() for event in events],
        usage_url=f"/app/usage?key={key.id}",
        read_only=_read_only(current, key.project),
    )


def _read_only(current: web.Page, project_id: str) -> bool:
    """A viewer sees the settings but cannot save them."""
    writable = current.llavero.members.writable(current.actor)
    return writable is not None and project_id not in writable


def _failure(error: LlaveroError) -> str:
    return ERROR_CODES.get(error.status, "failed_precondition")


# --- the dry-run -----------------------------------------------------------------------------


def explained(result: dryrun.RestrictionTest, typed: Mapping[str, str]) -> dict[str, Any]:
    """The dry-run's verdict as the template words it: one line per check, in the page's
    language. The service's own reasons are English sentences, so each line is rebuilt from
    the check's kind, verdict and matched rule, and from what the request carried."""
    return {
        "allowed": result.allowed,
        "code": result.code,
        "lines": [_line(check, typed) for check in result.checks],
    }


CONTEXT_OF: Final = {kind.name: kind.context for kind in restrictions.KINDS}
"""What a request must carry for each restriction; a refusal without it says it is missing."""


def _line(check: dryrun.Check, typed: Mapping[str, str]) -> dict[str, Any]:
    needed = CONTEXT_OF.get(check.restriction, ())
    missing = next((name for name in needed if not typed.get(name)), None)
    if check.allowed:
        reason = "matched" if check.matched_rule else "passed"
    else:
        reason = f"missing_{missing}" if missing else "refused"
    return {
        "restriction": check.restriction,
        "allowed": check.allowed,
        "rule": check.matched_rule,
        "reason": reason,
    }
