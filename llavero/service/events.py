"""Events: what happened to a key, a project's quota or its billing, told to webhooks and email.

`emit` writes the event into the outbox (`events`) and one delivery per target (each subscribed
webhook, each owner's address when the type is emailed) in the caller's transaction: an event
exists exactly when its change committed. `llavero.service.delivery` sends them afterwards
(docs/webhooks.md). A payload names a key by `key_id`, `project` and `last4`, never by its string.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from llavero.service.context import Context
from llavero.store import tables

KEY_CREATED: Final = "key.created"
KEY_UPDATED: Final = "key.updated"
KEY_ROTATED: Final = "key.rotated"
KEY_DISABLED: Final = "key.disabled"
KEY_DELETED: Final = "key.deleted"
KEY_UNDELETED: Final = "key.undeleted"
KEY_LEAKED: Final = "key.leaked"
KEY_EXPIRING: Final = "key.expiring"
KEY_EXPIRED: Final = "key.expired"
QUOTA_THRESHOLD: Final = "quota.threshold"
BILLING_LINKED: Final = "billing.linked"
BILLING_UNLINKED: Final = "billing.unlinked"
WEBHOOK_TEST: Final = "webhook.test"
WEBHOOK_DISABLED: Final = "webhook.disabled"

# Every type a webhook may subscribe to, in the order the docs list them.
EVENT_TYPES: Final = (
    KEY_CREATED,
    KEY_UPDATED,
    KEY_ROTATED,
    KEY_DISABLED,
    KEY_DELETED,
    KEY_UNDELETED,
    KEY_LEAKED,
    KEY_EXPIRING,
    KEY_EXPIRED,
    QUOTA_THRESHOLD,
    BILLING_LINKED,
    BILLING_UNLINKED,
    WEBHOOK_DISABLED,
)
ALL: Final = "*"
PENDING: Final = "pending"
DELIVERED: Final = "delivered"
FAILED: Final = "failed"
WEBHOOK_TARGET: Final = "webhook:"
EMAIL_TARGET: Final = "mailto:"


def new_event_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def body(event_type: str, data: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The Standard Webhooks payload shape: `{"type", "timestamp", "data"}`."""
    stamp = now.isoformat().replace("+00:00", "Z")
    return {"type": event_type, "timestamp": stamp, "data": dict(data)}


def emit(
    session: Session,
    ctx: Context,
    event_type: str,
    data: Mapping[str, Any],
    *,
    project: str | None,
    only_webhook: str | None = None,
) -> str | None:
    """Queue an event for every target that wants it, in `session`'s transaction. Returns its
    id (the `webhook-id`), or None when nobody subscribed. `only_webhook` sends to one endpoint
    whatever it subscribed to (`webhook.test`)."""
    targets: list[tuple[str, str | None]] = list(
        _webhook_targets(session, event_type, project, only_webhook)
    )
    if only_webhook is None:
        targets += _email_targets(session, ctx, event_type, project)
    if not targets:
        return None
    now = ctx.clock.now()
    event = tables.Event(
        event_id=new_event_id(),
        type=event_type,
        project_id=project,
        body=body(event_type, data, now),
        create_time=now,
    )
    session.add(event)
    session.flush()
    for target, webhook_id in targets:
        session.add(
            tables.Delivery(
                event_id=event.id,
                target=target,
                webhook_id=webhook_id,
                status=PENDING,
                attempts=0,
                next_attempt_time=now,
                create_time=now,
            )
        )
    return event.event_id


def wanted(session: Session, ctx: Context, *event_types: str) -> bool:
    """Whether any target would get one of these types: checks that find moments (expiry,
    quotas) skip their work, and their marks, while nobody listens."""
    settings = ctx.settings
    if settings.smtp_host and any(kind in settings.smtp_events for kind in event_types):
        return True
    subscribed = session.scalars(
        select(tables.Webhook.events).where(tables.Webhook.disabled.is_(False))
    )
    return any(
        ALL in chosen or any(kind in chosen for kind in event_types) for chosen in subscribed
    )


def key_data(row: tables.Key, **extra: Any) -> dict[str, Any]:
    """What an event says about a key: ids, names, states and times; never a key string."""
    return {
        "key_id": row.id,
        "project": row.project_id,
        "last4": row.last4,
        "display_name": row.display_name,
        "state": row.state,
        "environment": row.environment,
        "expire_time": _time(row.expire_time),
        **extra,
    }


def key_event(
    session: Session, ctx: Context, event_type: str, row: tables.Key, **extra: Any
) -> str | None:
    return emit(session, ctx, event_type, key_data(row, **extra), project=row.project_id)


def key_leaked(
    session: Session,
    ctx: Context,
    row: tables.Key,
    *,
    url: str | None = None,
    source: str | None = None,
    action: str | None = None,
) -> str | None:
    """The one call leak handling makes when it records a leak, in its own transaction:
    `action` says what the leak policy did (`revoke`, `disable` or `notify`)."""
    return key_event(
        session, ctx, KEY_LEAKED, row, leak={"url": url, "source": source}, action=action
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _webhook_targets(
    session: Session, event_type: str, project: str | None, only_webhook: str | None
) -> Iterable[tuple[str, str]]:
    query = select(tables.Webhook).order_by(tables.Webhook.id)
    if only_webhook is not None:
        query = query.where(tables.Webhook.id == only_webhook)
    else:
        query = query.where(tables.Webhook.disabled.is_(False))
        scope: ColumnElement[bool] = tables.Webhook.project_id.is_(None)
        if project is not None:
            scope = or_(scope, tables.Webhook.project_id == project)
        query = query.where(scope)
    for webhook in session.scalars(query):
        if only_webhook is not None or ALL in webhook.events or event_type in webhook.events:
            yield WEBHOOK_TARGET + webhook.id, webhook.id


def _email_targets(
    session: Session, ctx: Context, event_type: str, project: str | None
) -> list[tuple[str, None]]:
    """The owners of the project, when SMTP is set up and this type is emailed."""
    settings = ctx.settings
    if not settings.smtp_host or event_type not in settings.smtp_events or project is None:
        return []
    emails = session.scalars(
        select(tables.User.email)
        .join(tables.ProjectMember, tables.ProjectMember.user_id == tables.User.id)
        .where(
            tables.ProjectMember.project_id == project,
            tables.ProjectMember.role == "owner",
            tables.User.disabled.is_(False),
        )
        .order_by(tables.User.email)
    ).all()
    return [(EMAIL_TARGET + email, None) for email in emails]
