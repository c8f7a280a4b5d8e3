"""The users page for admins: add a user (with a password, or a one-time sign-in link shown
once), set a role, disable or enable, issue a new sign-in link, and clear a sign-in throttle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.errors import LlaveroError, PermissionDenied
from llavero.service import models

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/users"
ERROR_CODES: Final = {
    "INVALID_ARGUMENT": "invalid_argument",
    "ALREADY_EXISTS": "already_exists",
    "NOT_FOUND": "not_found",
    "PERMISSION_DENIED": "permission_denied",
}


@router.get(PAGE_PATH)
def users_page(current: web.SignedInPage) -> HTMLResponse:
    params = current.request.query_params
    error = params.get("error")
    return _render(
        current,
        notice="user_updated" if params.get("notice") == "user_updated" else None,
        error=error if error in ERROR_CODES.values() else None,
    )


@router.post(PAGE_PATH)
def add_user(
    current: web.SignedInAction,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "member",
    password: Annotated[str, Form()] = "",
) -> Response:
    """With no password the answer carries the new user's sign-in link, shown this once."""
    llavero, actor = current.llavero, current.actor
    try:
        user = llavero.users.create(actor, email, password or None, role=role)
        invited = _invitation(current, user) if not password else None
    except LlaveroError as error:
        return _render(current, error=_error_code(error), status_code=error.http_status)
    return _render(current, invited=invited, notice=None if invited else "user_updated")


@router.post(PAGE_PATH + "/{user_id}/role")
def set_role(
    current: web.SignedInAction, user_id: int, role: Annotated[str, Form()] = ""
) -> Response:
    return _act(current, lambda: current.llavero.users.update(current.actor, user_id, role=role))


@router.post(PAGE_PATH + "/{user_id}/disable")
def disable_user(current: web.SignedInAction, user_id: int) -> Response:
    return _act(
        current, lambda: current.llavero.users.update(current.actor, user_id, disabled=True)
    )


@router.post(PAGE_PATH + "/{user_id}/enable")
def enable_user(current: web.SignedInAction, user_id: int) -> Response:
    return _act(
        current, lambda: current.llavero.users.update(current.actor, user_id, disabled=False)
    )


@router.post(PAGE_PATH + "/{user_id}/link")
def new_signin_link(current: web.SignedInAction, user_id: int) -> Response:
    try:
        invited = _invitation(current, current.llavero.users.get(user_id))
    except LlaveroError as error:
        return _render(current, error=_error_code(error), status_code=error.http_status)
    return _render(current, invited=invited)


@router.post(PAGE_PATH + "/{user_id}/unthrottle")
def clear_throttle(current: web.SignedInAction, user_id: int) -> Response:
    """Every address of the user may try again at once (docs/console.md, "Users")."""

    def clear() -> models.User:
        user = current.llavero.users.get(user_id)
        current.llavero.users.clear_throttle(current.actor, user.email)
        return user

    return _act(current, clear)


def _invitation(current: web.Page, user: models.User) -> dict[str, str]:
    token = current.llavero.users.create_signin_link(current.actor, user.id)
    base = str(current.request.base_url).rstrip("/")
    return {"email": user.email, "link": f"{base}/signin/link?{urlencode({'token': token})}"}


def _act(current: web.Page, call: Callable[[], models.User]) -> Response:
    try:
        call()
    except LlaveroError as error:
        return current.redirect(PAGE_PATH + "?" + urlencode({"error": _error_code(error)}))
    return current.redirect(PAGE_PATH + "?notice=user_updated")


def _error_code(error: LlaveroError) -> str:
    return ERROR_CODES.get(error.status, "invalid_argument")


def _render(
    current: web.Page,
    *,
    status_code: int = 200,
    invited: dict[str, str] | None = None,
    notice: str | None = None,
    error: str | None = None,
) -> HTMLResponse:
    try:
        users = current.llavero.users.list(current.actor)
    except PermissionDenied:
        return current.render("error.html", status_code=403, status=403)
    me = current.signed_in.user.id
    now = current.llavero.ctx.clock.now()
    waits: dict[str, datetime] = {}
    for throttle in current.llavero.users.throttles(current.actor):
        if throttle.retry_time > now:
            waits[throttle.email] = max(throttle.retry_time, waits.get(throttle.email, now))
    rows: list[dict[str, Any]] = [
        user.model_dump() | {"is_self": user.id == me, "throttled_until": waits.get(user.email)}
        for user in users
    ]
    return current.render(
        "users.html",
        status_code=status_code,
        headers=dict(web.NO_STORE),
        users=rows,
        now=now,
        invited=invited,
        notice=notice,
        error=error,
    )
