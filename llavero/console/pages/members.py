"""The members page: who shares a project, with which role. Everyone on a project sees its
members; owners (and admins) add, change and remove them, invitations included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.errors import LlaveroError
from llavero.service import models
from llavero.service.members import ROLES
from llavero.service.pagination import every_item

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/members"
ERROR_CODES: Final = {
    "INVALID_ARGUMENT": "invalid_argument",
    "ALREADY_EXISTS": "already_exists",
    "NOT_FOUND": "not_found",
    "PERMISSION_DENIED": "permission_denied",
    "FAILED_PRECONDITION": "last_owner",
}
NOTICES: Final = ("member_added", "member_invited", "member_updated", "member_removed")


@router.get(PAGE_PATH)
def members_page(current: web.SignedInPage, project: str = "") -> HTMLResponse:
    params = current.request.query_params
    error, notice = params.get("error"), params.get("notice")
    return _render(
        current,
        project,
        notice=notice if notice in NOTICES else None,
        error=error if error in ERROR_CODES.values() else None,
    )


@router.post(PAGE_PATH + "/{project}")
def add_member(
    current: web.SignedInAction,
    project: str,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "viewer",
) -> Response:
    def add() -> str:
        member = current.llavero.members.add(current.actor, project, email, role)
        return "member_invited" if member.invited else "member_added"

    return _act(current, project, add)


@router.post(PAGE_PATH + "/{project}/role")
def set_role(
    current: web.SignedInAction,
    project: str,
    email: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
) -> Response:
    def update() -> str:
        current.llavero.members.set_role(current.actor, project, email, role)
        return "member_updated"

    return _act(current, project, update)


@router.post(PAGE_PATH + "/{project}/remove")
def remove_member(
    current: web.SignedInAction, project: str, email: Annotated[str, Form()] = ""
) -> Response:
    def remove() -> str:
        current.llavero.members.remove(current.actor, project, email)
        return "member_removed"

    return _act(current, project, remove)


def _act(current: web.Page, project: str, call: Callable[[], str]) -> Response:
    query = {"project": project}
    try:
        query["notice"] = call()
    except LlaveroError as error:
        query["error"] = ERROR_CODES.get(error.status, "invalid_argument")
    return current.redirect(PAGE_PATH + "?" + urlencode(query))


def _render(
    current: web.Page, project: str, *, notice: str | None, error: str | None
) -> HTMLResponse:
    llavero, actor = current.llavero, current.actor
    projects = every_item(lambda token: llavero.projects.list(actor, page_token=token))
    selected = next((p for p in projects if p.id == project), projects[0] if projects else None)
    members: list[models.Member] = []
    if selected is not None:
        members = llavero.members.list(actor, selected.id)
    me = current.signed_in.user.email
    my_role = next((m.role for m in members if m.email == me and not m.invited), None)
    return current.render(
        "members.html",
        headers=dict(web.NO_STORE),
        projects=projects,
        selected=selected,
        members=members,
        roles=ROLES,
        can_manage=current.is_admin or my_role == "owner",
        notice=notice,
        error=error,
    )
