"""The billing page, `/app/billing` (`?project=<id>` preselects a project): billing accounts
(create, close, reopen), and the link between a project and one, which moves the project between
the free and the paid plan. The projects table shows each project's plan and limits, so a link
shows its effect at once.

Accounts are admins' business (the service says so); members see their projects' plans and may
unlink, which only lowers limits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from babel.numbers import format_decimal, get_currency_name
from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.console.plans import plan_display_name
from llavero.core.plans import FREE_PLAN, LIMIT_NAMES
from llavero.errors import InvalidArgument, LlaveroError, PermissionDenied
from llavero.service import models
from llavero.service.billing import DEFAULT_CURRENCY, BillingAccount
from llavero.service.pagination import every_item
from llavero.service.projects import LEAK_POLICIES

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/billing"
CURRENCIES: Final = ("USD", "EUR", "MXN", "ARS", "BRL", "CLP", "COP", "PEN", "UYU", "GBP", "CAD")
"""Offered in the currency field's suggestions; any ISO 4217 code Babel knows is accepted."""
ERROR_CODES: Final = {
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "FAILED_PRECONDITION": "account_closed",
    "INVALID_ARGUMENT": "invalid_argument",
}
NOTICES: Final = (
    "account_created",
    "account_closed",
    "account_reopened",
    "linked",
    "unlinked",
    "leak_policy_saved",
)
PROJECT_DENIED: Final = "project_denied"
"""A project setting refused for the user's role (not an admins-only billing matter)."""


@router.get(PAGE_PATH)
def billing_page(current: web.SignedInPage) -> HTMLResponse:
    params = current.request.query_params
    notice, error = params.get("notice"), params.get("error")
    return _render(
        current,
        selected=params.get("project", ""),
        notice=notice if notice in NOTICES else None,
        error=error if error in (*ERROR_CODES.values(), PROJECT_DENIED) else None,
    )


@router.post(PAGE_PATH + "/accounts")
def create_account(
    current: web.SignedInAction,
    display_name: Annotated[str, Form()] = "",
    currency: Annotated[str, Form()] = DEFAULT_CURRENCY,
    project: Annotated[str, Form()] = "",
) -> Response:
    """A refused name or currency comes back beside its field, with what was typed; the
    project the visitor came to set up stays chosen for the link that follows."""
    try:
        current.llavero.billing.create(current.actor, display_name, currency)
    except InvalidArgument as error:
        typed = {"display_name": display_name, "currency": currency}
        return _render(
            current, selected=project, typed=typed, field_error=error.field, status_code=400
        )
    except LlaveroError as error:
        return _back(current, error=_error_code(error), project=project)
    return _back(current, notice="account_created", project=project)


@router.post(PAGE_PATH + "/accounts/{account_id}/close")
def close_account(current: web.SignedInAction, account_id: str) -> Response:
    return _act(
        current, lambda: current.llavero.billing.close(current.actor, account_id), "account_closed"
    )


@router.post(PAGE_PATH + "/accounts/{account_id}/reopen")
def reopen_account(current: web.SignedInAction, account_id: str) -> Response:
    return _act(
        current,
        lambda: current.llavero.billing.reopen(current.actor, account_id),
        "account_reopened",
    )


@router.post(PAGE_PATH + "/link")
def link_project(
    current: web.SignedInAction,
    project: Annotated[str, Form()] = "",
    billing_account: Annotated[str, Form()] = "",
) -> Response:
    return _act(
        current,
        lambda: current.llavero.billing.link(current.actor, project, billing_account),
        "linked",
        project,
    )


@router.post(PAGE_PATH + "/projects/{project_id}/unlink")
def unlink_project(current: web.SignedInAction, project_id: str) -> Response:
    return _act(
        current,
        lambda: current.llavero.billing.unlink(current.actor, project_id),
        "unlinked",
        project_id,
    )


@router.post(PAGE_PATH + "/projects/{project_id}/leak-policy")
def set_leak_policy(
    current: web.SignedInAction, project_id: str, leak_policy: Annotated[str, Form()] = ""
) -> Response:
    """What a key of this project found leaked undergoes: revoke, disable or notify only."""
    try:
        current.llavero.projects.update(current.actor, project_id, leak_policy=leak_policy)
    except PermissionDenied:
        return _back(current, error=PROJECT_DENIED, project=project_id)
    except LlaveroError as error:
        return _back(current, error=_error_code(error), project=project_id)
    return _back(current, notice="leak_policy_saved", project=project_id)


def _act(current: web.Page, call: Callable[[], Any], notice: str, project: str = "") -> Response:
    try:
        call()
    except LlaveroError as error:
        return _back(current, error=_error_code(error), project=project)
    return _back(current, notice=notice, project=project)


def _back(current: web.Page, **params: str) -> Response:
    """303 to the page; the notice names the project whose plan just changed."""
    kept = {name: value for name, value in params.items() if value}
    return current.redirect(PAGE_PATH + (f"?{urlencode(kept)}" if kept else ""))


def _error_code(error: LlaveroError) -> str:
    return ERROR_CODES.get(error.status, "invalid_argument")


def _render(
    current: web.Page,
    *,
    selected: str = "",
    notice: str | None = None,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    field_error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    lang = current.lang
    projects = web.all_projects(current)
    accounts = _all_accounts(current) if current.is_admin else []
    names = {account.id: account.display_name for account in accounts}
    rows = [_project_row(current, project, names) for project in projects]
    linked: dict[str, list[str]] = {}
    for project in projects:
        if project.billing_account:
            linked.setdefault(project.billing_account, []).append(project.display_name)
    notice_row = next((row for row in rows if row["id"] == selected), None)
    return current.render(
        "billing.html",
        status_code=status_code,
        is_admin=current.is_admin,
        projects=rows,
        selected=selected,
        accounts=[
            {
                "id": account.id,
                "display_name": account.display_name,
                "currency": account.currency,
                "open": account.open,
                "projects": linked.get(account.id, []),
            }
            for account in accounts
        ],
        currencies=[
            {"code": code, "name": get_currency_name(code, locale=lang)} for code in CURRENCIES
        ],
        typed=typed or {"display_name": "", "currency": DEFAULT_CURRENCY},
        field_error=field_error,
        notice=notice,
        notice_project=notice_row if notice in ("linked", "unlinked") else None,
        error=error,
        leak_policies=LEAK_POLICIES,
    )


def _project_row(
    current: web.Page, project: models.Project, account_names: dict[str, str]
) -> dict[str, Any]:
    plan = current.llavero.plans.get(project.plan)
    return {
        "id": project.id,
        "display_name": project.display_name,
        "number": project.number,
        "plan": project.plan,
        "plan_name": plan_display_name(current.llavero, project.plan),
        "paid": project.plan != FREE_PLAN,
        "limits": {
            name: None
            if getattr(plan, name) is None
            else format_decimal(getattr(plan, name), locale=current.lang)
            for name in LIMIT_NAMES
        },
        "billing_account": project.billing_account,
        "billing_account_name": account_names.get(project.billing_account or "", ""),
        "usage_url": "/app/usage?" + urlencode({"project": project.id}),
        "leak_policy": project.leak_policy,
    }


def _all_accounts(current: web.Page) -> list[BillingAccount]:
    return every_item(
        lambda token: current.llavero.billing.list(current.actor, page_size=1000, page_token=token)
    )
