"""The keys page, `/app/apikey`, as in AI Studio: the table, the create dialog and the row
actions (delete and undo, undelete, rotate, disable/enable, rename).

Every action is a POST checked for CSRF that calls the service layer and answers with a 303 back
to the page, so a reload never repeats it. The two that make a key string (create, rotate) answer
the page itself instead, with the key in a dialog and `Cache-Control: no-store`: the string is
never put in a URL, a cookie or a store, so it shows once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import i18n, web
from llavero.console.plans import plan_display_name
from llavero.core import restrictions
from llavero.core.codes import LIVE_STATES, State
from llavero.errors import LlaveroError, PermissionDenied
from llavero.service import models

router = APIRouter(include_in_schema=False)
BackField = Annotated[str, Form()]
"""The view a row action was posted from (`back`), so the answer returns to it."""

PAGE_SIZE: Final = 50
PAGE_PATH: Final = "/app/apikey"
NEW_PROJECT_NAME: Final = "Gemini API"
GRACE_PERIODS: Final = (0, 3600, 86400, 604800)
LEAKED_SHOWN: Final = 20
"""Revoked leaked keys listed above the table, which hides deleted keys."""
"""Rotation grace periods offered: now, 1 hour, 24 hours, 7 days (in seconds)."""
ORDERS: Final = {
    "newest": "create_time desc",
    "oldest": "create_time",
    "name": "display_name",
    "project": "project",
}
"""The page's `sort` choices and the service order each one asks for, so every page of the
listing is in that order (not just the page shown)."""
SORTS: Final = tuple(ORDERS)
ERROR_CODES: Final = {
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "FAILED_PRECONDITION": "failed_precondition",
    "INVALID_ARGUMENT": "invalid_argument",
    "ALREADY_EXISTS": "already_exists",
    "RESOURCE_EXHAUSTED": "resource_exhausted",
}
"""Service error statuses as the page's `error` codes; each has a translated message."""


@dataclass(frozen=True, slots=True)
class Listing:
    """What the visitor asked to see: every query parameter of the page, checked."""

    query: str = ""
    project: str = ""
    state: str = ""
    environment: str = ""
    sort: str = "newest"
    page_token: str = ""
    show_deleted: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> Listing:
        state = params.get("state", "").upper()
        sort = params.get("sort", "newest")
        return cls(
            query=params.get("q", "").strip()[:100],
            project=params.get("project", "").strip(),
            state=state if state in LIVE_STATES else "",
            environment=params.get("environment", "").strip()[:63],
            sort=sort if sort in SORTS else "newest",
            page_token=params.get("page_token", ""),
            show_deleted=params.get("show") == "deleted",
        )

    @classmethod
    def from_url(cls, url: str) -> Listing:
        """The view a form was posted from (its hidden `back` field); any other URL is ignored."""
        parts = urlsplit(url)
        if parts.scheme or parts.netloc or parts.path != PAGE_PATH:
            return cls()
        return cls.from_query(dict(parse_qsl(parts.query)))

    def service_filter(self) -> str:
        """The service's filter syntax; every word of the search must be in the key's name."""
        terms = [f"name:{word}" for word in self.query.split()]
        if self.show_deleted:
            terms.append("state=DELETED")
        elif self.state:
            terms.append(f"state={self.state}")
        if self.environment and " " not in self.environment:
            terms.append(f"environment={self.environment}")
        return " ".join(terms)

    def url(self, **changes: str) -> str:
        """This listing's first page with some parameters changed (an empty value drops one)."""
        params = {
            "q": self.query,
            "project": self.project,
            "state": self.state,
            "environment": self.environment,
            "sort": "" if self.sort == "newest" else self.sort,
            "show": "deleted" if self.show_deleted else "",
        } | changes
        kept = {name: value for name, value in params.items() if value}
        return PAGE_PATH + (f"?{urlencode(kept)}" if kept else "")

    def here(self, **changes: str) -> str:
        """This very page of the listing (same page token), with some parameters changed."""
        return self.url(page_token=self.page_token, **changes)


@router.get(PAGE_PATH)
def keys_page(current: web.SignedInPage) -> HTMLResponse:
    params = current.request.query_params
    return _render(
        current,
        Listing.from_query(params),
        notice=params.get("notice"),
        notice_key=params.get("key"),
        error=params.get("error") if params.get("error") in ERROR_CODES.values() else None,
    )


@router.post(PAGE_PATH)
def create_key(
    current: web.SignedInAction,
    project: Annotated[str, Form()] = "",
    new_project_name: Annotated[str, Form()] = NEW_PROJECT_NAME,
    display_name: Annotated[str, Form()] = "",
) -> Response:
    llavero, actor = current.llavero, current.actor
    try:
        if project:
            target = llavero.projects.get(actor, project)
        else:
            target = llavero.projects.create(actor, new_project_name.strip() or NEW_PROJECT_NAME)
        name = display_name.strip() or i18n.translations(current.lang).gettext("API key")
        created = llavero.keys.create(actor, target.id, display_name=name)
    except LlaveroError as error:
        code = "permission_denied" if isinstance(error, PermissionDenied) else "create_failed"
        return _render(current, Listing(), error=code, status_code=error.http_status)
    shown = {"key_string": created.key_string, "project_name": target.display_name}
    return _render(current, Listing(), created=shown)


@router.post(PAGE_PATH + "/{key_id}/delete")
def delete_key(current: web.SignedInAction, key_id: str, back: BackField = "") -> Response:
    return _act(
        current, lambda: current.llavero.keys.delete(current.actor, key_id), "key_deleted", back
    )


@router.post(PAGE_PATH + "/{key_id}/undelete")
def undelete_key(current: web.SignedInAction, key_id: str, back: BackField = "") -> Response:
    return _act(
        current, lambda: current.llavero.keys.undelete(current.actor, key_id), "key_restored", back
    )


@router.post(PAGE_PATH + "/{key_id}/disable")
def disable_key(current: web.SignedInAction, key_id: str, back: BackField = "") -> Response:
    return _act(
        current,
        lambda: current.llavero.keys.update(current.actor, key_id, {"state": State.DISABLED}),
        "key_disabled",
        back,
    )


@router.post(PAGE_PATH + "/{key_id}/enable")
def enable_key(current: web.SignedInAction, key_id: str, back: BackField = "") -> Response:
    return _act(
        current,
        lambda: current.llavero.keys.update(current.actor, key_id, {"state": State.ACTIVE}),
        "key_enabled",
        back,
    )


@router.post(PAGE_PATH + "/{key_id}/rename")
def rename_key(
    current: web.SignedInAction,
    key_id: str,
    display_name: Annotated[str, Form()] = "",
    back: BackField = "",
) -> Response:
    return _act(
        current,
        lambda: current.llavero.keys.update(
            current.actor, key_id, {"display_name": display_name.strip()}
        ),
        "key_renamed",
        back,
    )


@router.post(PAGE_PATH + "/{key_id}/rotate")
def rotate_key(
    current: web.SignedInAction,
    key_id: str,
    grace_period: Annotated[str, Form()] = "0",
    back: BackField = "",
) -> Response:
    listing = Listing.from_url(back)
    seconds = int(grace_period) if grace_period.isdigit() else -1
    if seconds not in GRACE_PERIODS:
        return current.redirect(listing.here(error="invalid_argument"))
    try:
        rotated = current.llavero.keys.rotate(current.actor, key_id, seconds)
        project = current.llavero.projects.get(current.actor, rotated.key.project)
    except LlaveroError as error:
        return current.redirect(listing.here(error=_error_code(error)))
    shown = {"key_string": rotated.key_string, "project_name": project.display_name}
    return _render(current, listing, created=shown, notice="key_rotated")


@router.post(PAGE_PATH + "/{key_id}/rotate-leaked")
def rotate_leaked_key(current: web.SignedInAction, key_id: str, back: BackField = "") -> Response:
    """The leak warning's one click: a new string now, the leaked one stops at once."""
    listing = Listing.from_url(back)
    try:
        rotated = current.llavero.leaks.rotate(current.actor, key_id)
        project = current.llavero.projects.get(current.actor, rotated.key.project)
    except LlaveroError as error:
        return current.redirect(listing.here(error=_error_code(error)))
    shown = {"key_string": rotated.key_string, "project_name": project.display_name}
    return _render(current, listing, created=shown, notice="leak_rotated")


def _act(current: web.Page, call: Callable[[], models.Key], notice: str, back: str) -> Response:
    """Runs one service call and returns to the view the form came from, with the outcome (a
    notice or an error) in the URL."""
    listing = Listing.from_url(back)
    try:
        key = call()
    except LlaveroError as error:
        return current.redirect(listing.here(error=_error_code(error)))
    return current.redirect(listing.here(notice=notice, key=key.id))


def _error_code(error: LlaveroError) -> str:
    return ERROR_CODES.get(error.status, "failed_precondition")


def _render(
    current: web.Page,
    listing: Listing,
    *,
    status_code: int = 200,
    created: Mapping[str, str] | None = None,
    notice: str | None = None,
    notice_key: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    llavero, actor = current.llavero, current.actor
    projects = web.all_projects(current)
    try:
        page = llavero.keys.list(
            actor,
            listing.project or "-",
            show_deleted=listing.show_deleted,
            filter=listing.service_filter() or None,
            page_size=PAGE_SIZE,
            page_token=listing.page_token or None,
            order_by=ORDERS[listing.sort],
        )
    except LlaveroError as failure:
        page = models.Page[models.Key](items=[], next_page_token="")
        error = error or _error_code(failure)
    by_id = {project.id: project for project in projects}
    writable = llavero.members.writable(actor)
    rows = [_row(current, key, by_id, writable) for key in page.items]
    hidden = [] if listing.show_deleted else _leaked(current)
    leaked = [_row(current, key, by_id, writable) for key in hidden if key.state == State.DELETED]
    if writable is not None:  # the create dialog offers only projects the user may change
        projects = [project for project in projects if project.id in writable]
    return current.render(
        "apikey.html",
        status_code=status_code,
        headers=dict(web.NO_STORE),
        now=llavero.ctx.clock.now(),
        rows=rows,
        projects=[
            {"id": project.id, "display_name": project.display_name, "number": project.number}
            for project in projects
        ],
        can_create=writable is None or bool(writable),
        created=created,
        notice=notice,
        notice_key=notice_key if notice == "key_deleted" else None,
        error=error,
        listing=_listing_context(listing, page.next_page_token),
        grace_periods=GRACE_PERIODS,
        leaked=leaked,
    )


def _leaked(current: web.Page) -> list[models.Key]:
    """Keys found leaked that the list may hide (revoked ones are deleted), newest first."""
    try:
        page = current.llavero.keys.list(
            current.actor, "-", show_deleted=True, filter="leaked=true", page_size=LEAKED_SHOWN
        )
    except LlaveroError:
        return []
    return page.items


def _listing_context(listing: Listing, next_page_token: str) -> dict[str, Any]:
    return {
        "query": listing.query,
        "project": listing.project,
        "state": listing.state,
        "environment": listing.environment,
        "sort": listing.sort,
        "show_deleted": listing.show_deleted,
        "filtered": bool(listing.service_filter() or listing.project),
        "refined": bool(
            listing.project or listing.state or listing.environment or listing.sort != "newest"
        ),
        "next_url": listing.url(page_token=next_page_token) if next_page_token else "",
        "first_url": listing.url() if listing.page_token else "",
        "deleted_url": Listing(show_deleted=True).url(),
        "live_url": PAGE_PATH,
        "here": listing.here(),
        "sort_urls": {sort: listing.url(sort=sort) for sort in SORTS},
    }


def _row(
    current: web.Page,
    key: models.Key,
    projects: Mapping[str, models.Project],
    writable: frozenset[str] | None = None,
) -> dict[str, Any]:
    """A viewer's row (`writable` given and without the key's project) has no actions."""
    project = projects.get(key.project)
    plan = project.plan if project else "free"
    base = f"{PAGE_PATH}/{key.id}"
    row = {
        "key_id": key.id,
        "display_name": key.display_name,
        "project_id": key.project,
        "project_number": project.number if project else "",
        "project_name": project.display_name if project else key.project,
        "last4": key.last4,
        "create_time": key.create_time,
        "plan": plan,
        "plan_display_name": plan_display_name(current.llavero, plan),
        "billing_url": "/app/billing?" + urlencode({"project": key.project}),
        "usage_url": "/app/usage?" + urlencode({"key": key.id}),
        "delete_url": f"{base}/delete",
        "action_url": base,
        "environment": key.environment,
        "state": key.state,
        "restrictions": _restriction_kinds(key.restrictions),
        "last_used_time": key.last_used_time,
        "delete_time": key.delete_time,
        "purge_time": key.purge_time,
        "leak": web.leak_context(key),
    }
    if writable is not None and key.project not in writable:
        del row["delete_url"], row["action_url"]
    return row


RESTRICTION_KINDS: Final = {kind.name: kind.badge for kind in restrictions.KINDS}
"""Restriction fields of a key as the page names their badges."""


def _restriction_kinds(key_restrictions: Mapping[str, Any]) -> list[str]:
    return [kind for field, kind in RESTRICTION_KINDS.items() if key_restrictions.get(field)]
