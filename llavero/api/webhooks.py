"""`/v1/webhooks`: endpoints that receive signed events (docs/webhooks.md).

Routes with a `:verb` come before `/v1/webhooks/{id}` so that they are matched first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StrictBool

from llavero.api.auth import Caller, LlaveroDep
from llavero.api.projects import PageSize, PageToken
from llavero.api.schemas import Body
from llavero.service.webhooks import CreatedWebhook, Delivery, TestSent, Webhook

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
EventList = Annotated[list[str], Field(max_length=100)]


class WebhookCreate(Body):
    """Without `project`: every project's events (admins only)."""

    url: str = Field(max_length=4096)
    events: EventList
    project: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=1000)


class WebhookUpdate(Body):
    """Only the fields present change; `disabled: false` sends what waited, in order."""

    url: str | None = Field(default=None, max_length=4096)
    events: EventList | None = None
    description: str | None = Field(default=None, max_length=1000)
    disabled: StrictBool | None = None


class WebhookList(BaseModel):
    webhooks: list[Webhook]
    next_page_token: str


class DeliveryList(BaseModel):
    deliveries: list[Delivery]
    next_page_token: str


@router.post("")
def create_webhook(body: WebhookCreate, actor: Caller, llavero: LlaveroDep) -> CreatedWebhook:
    """Returns the signing secret (`whsec_…`) once: it is never shown again."""
    return llavero.webhooks.create(
        actor, body.url, body.events, project=body.project, description=body.description
    )


@router.get("")
def list_webhooks(
    actor: Caller,
    llavero: LlaveroDep,
    project: Annotated[str | None, Query(max_length=1000)] = None,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> WebhookList:
    page = llavero.webhooks.list(actor, project=project, page_size=page_size, page_token=page_token)
    return WebhookList(webhooks=page.items, next_page_token=page.next_page_token)


@router.post("/{webhook}:test")
def test_webhook(webhook: str, actor: Caller, llavero: LlaveroDep) -> TestSent:
    """Queues a `webhook.test` event for this endpoint; see its delivery log for the outcome."""
    return llavero.webhooks.send_test(actor, webhook)


@router.post("/{webhook}:rotateSecret")
def rotate_webhook_secret(webhook: str, actor: Caller, llavero: LlaveroDep) -> CreatedWebhook:
    return llavero.webhooks.rotate_secret(actor, webhook)


@router.get("/{webhook}/deliveries")
def list_deliveries(
    webhook: str,
    actor: Caller,
    llavero: LlaveroDep,
    page_size: PageSize = None,
    page_token: PageToken = None,
) -> DeliveryList:
    page = llavero.webhooks.deliveries(actor, webhook, page_size=page_size, page_token=page_token)
    return DeliveryList(deliveries=page.items, next_page_token=page.next_page_token)


@router.get("/{webhook}")
def get_webhook(webhook: str, actor: Caller, llavero: LlaveroDep) -> Webhook:
    return llavero.webhooks.get(actor, webhook)


@router.patch("/{webhook}")
def update_webhook(
    webhook: str, body: WebhookUpdate, actor: Caller, llavero: LlaveroDep
) -> Webhook:
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return llavero.webhooks.update(actor, webhook, changes)


@router.delete("/{webhook}", status_code=204)
def delete_webhook(webhook: str, actor: Caller, llavero: LlaveroDep) -> Response:
    llavero.webhooks.delete(actor, webhook)
    return Response(status_code=204)
