"""The Webhooks page: endpoints that receive signed events, and each one's delivery log.

The signing secret appears once, on the page that answers the create or rotate post, as a key
string does on the keys page (docs/webhooks.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form
from fastapi.responses import HTMLResponse, Response

from llavero.console import web
from llavero.errors import InvalidArgument, LlaveroError
from llavero.service import events
from llavero.service.pagination import every_item

router = APIRouter(include_in_schema=False)

PAGE_PATH: Final = "/app/webhooks"
LOG_SIZE: Final = 100
ALL_PROJECTS: Final = ""
SWITCHES: Final = {"disable": "disabled", "enable": "enabled"}  # the post, and its notice


@router.get(PAGE_PATH)
def webhooks_page(current: web.SignedInPage, notice: str = "", error: str = "") -> HTMLResponse:
    return _list(current, notice=notice or None, error=error or None)


@router.post(PAGE_PATH)
def create_webhook(
    current: web.SignedInAction,
    url: Annotated[str, Form()] = "",
    project: Annotated[str, Form()] = ALL_PROJECTS,
    description: Annotated[str, Form()] = "",
    event: Annotated[list[str] | None, Form()] = None,
) -> Response:
    chosen = event or [events.ALL]
    typed = {"url": url, "project": project, "description": description, "events": chosen}
    try:
        created = current.llavero.webhooks.create(
            current.actor,
            url,
            chosen,
            project=project or None,
            description=description,
        )
    except InvalidArgument as exc:
        return _list(current, typed=typed, field_error=exc.field, status_code=400)
    except LlaveroError as exc:
        return _list(current, typed=typed, error=exc.status.lower(), status_code=exc.http_status)
    return _detail(current, created.webhook.id, secret=created.secret)


@router.get(PAGE_PATH + "/{webhook_id}")
def webhook_page(current: web.SignedInPage, webhook_id: str, notice: str = "") -> Response:
    return _detail(current, webhook_id, notice=notice or None)


@router.post(PAGE_PATH + "/{webhook_id}/test")
def send_test(current: web.SignedInAction, webhook_id: str) -> Response:
    return _act(
        current,
        webhook_id,
        lambda: current.llavero.webhooks.send_test(current.actor, webhook_id),
        "test_sent",
    )


@router.post(PAGE_PATH + "/{webhook_id}/rotate")
def rotate_secret(current: web.SignedInAction, webhook_id: str) -> Response:
    try:
        rotated = current.llavero.webhooks.rotate_secret(current.actor, webhook_id)
    except LlaveroError as exc:
        return _detail(current, webhook_id, error=exc.status.lower())
    return _detail(current, webhook_id, secret=rotated.secret)


@router.post(PAGE_PATH + "/{webhook_id}/delete")
def delete(current: web.SignedInAction, webhook_id: str) -> Response:
    try:
        current.llavero.webhooks.delete(current.actor, webhook_id)
    except LlaveroError as exc:
        return _detail(current, webhook_id, error=exc.status.lower())
    return current.redirect(PAGE_PATH + "?" + urlencode({"notice": "deleted"}))


@router.post(PAGE_PATH + "/{webhook_id}/{switch}")
def disable_or_enable(current: web.SignedInAction, webhook_id: str, switch: str) -> Response:
    """`disable` or `enable`; any other word names no page. Declared after the other posts
    of a webhook, so that those match first."""
    if switch not in SWITCHES:
        return current.render("error.html", status_code=404, status=404)
    change = {"disabled": switch == "disable"}
    return _act(
        current,
        webhook_id,
        lambda: current.llavero.webhooks.update(current.actor, webhook_id, change),
        SWITCHES[switch],
    )


def _act(current: web.Page, webhook_id: str, call: Callable[[], Any], notice: str) -> Response:
    try:
        call()
    except LlaveroError as exc:
        return _detail(current, webhook_id, error=exc.status.lower())
    return current.redirect(f"{PAGE_PATH}/{webhook_id}?" + urlencode({"notice": notice}))


def _list(
    current: web.Page,
    *,
    typed: dict[str, Any] | None = None,
    field_error: str | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    llavero, actor = current.llavero, current.actor
    hooks = every_item(lambda token: llavero.webhooks.list(actor, page_token=token))
    projects = every_item(lambda token: llavero.projects.list(actor, page_token=token))
    return current.render(
        "webhooks.html",
        webhooks=[hook.model_dump() for hook in hooks],
        projects=[{"id": p.id, "display_name": p.display_name} for p in projects],
        event_types=list(events.EVENT_TYPES),
        typed=typed or {"url": "", "project": "", "description": "", "events": [events.ALL]},
        field_error=field_error,
        notice=notice,
        error=error,
        status_code=status_code,
    )


def _detail(
    current: web.Page,
    webhook_id: str,
    *,
    secret: str | None = None,
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    llavero, actor = current.llavero, current.actor
    try:
        hook = llavero.webhooks.get(actor, webhook_id)
        log = llavero.webhooks.deliveries(actor, webhook_id, page_size=LOG_SIZE).items
    except LlaveroError:
        return current.render("error.html", status_code=404, status=404)
    return current.render(
        "webhook.html",
        webhook=hook.model_dump(),
        deliveries=[item.model_dump() for item in log],
        secret=secret,
        notice=notice,
        error=error,
        status_code=400 if error else 200,
    )
