"""The signed-in user's own account: setting a password, which a user who came in with the
first-run or an invitation link does not have yet."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.errors import LlaveroError

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/account"


@router.get(PAGE_PATH)
def account_page(current: web.SignedInPage) -> HTMLResponse:
    saved = current.request.query_params.get("notice") == "password_set"
    return current.render("account.html", notice="password_set" if saved else None)


@router.post(PAGE_PATH + "/password")
def set_password(
    current: web.SignedInAction,
    password: Annotated[str, Form()] = "",
    password_again: Annotated[str, Form()] = "",
) -> Response:
    if password != password_again:
        return current.render("account.html", status_code=400, error="mismatch")
    try:
        current.llavero.users.update(current.actor, current.signed_in.user.id, password=password)
    except LlaveroError as error:
        return current.render("account.html", status_code=error.http_status, error="invalid")
    return current.redirect(PAGE_PATH + "?notice=password_set")
