"""Webhook endpoints: create (the signing secret is shown once), list, update, delete, test,
rotate the secret, read the delivery log.

A project's webhooks are managed by its owners and editors; a webhook without a project gets
the events of every project and is the admins' alone. A URL is an SSRF risk (the server makes
the request): only http and https, no credentials in it, and `LLAVERO_WEBHOOK_ALLOWED_HOSTS`
restricts the hosts (docs/webhooks.md).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx
from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from llavero.errors import FailedPrecondition, InvalidArgument, NotFound
from llavero.service import access, audit, events, models, projects, validation
from llavero.service.context import Actor, Context
from llavero.store import tables

MAX_URL: Final = 2048
MAX_DESCRIPTION: Final = 500
UPDATABLE: Final = frozenset({"url", "events", "disabled", "description"})


class Webhook(models.Model):
    id: str
    project: str | None
    url: str
    events: list[str]
    description: str
    disabled: bool
    disabled_reason: str | None
    create_time: datetime
    update_time: datetime


class CreatedWebhook(models.Model):
    webhook: Webhook
    secret: str


class Delivery(models.Model):
    id: int
    event_id: str
    type: str
    target: str
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    create_time: datetime
    last_attempt_time: datetime | None
    next_attempt_time: datetime | None
    delivered_time: datetime | None


class TestSent(models.Model):
    event_id: str


def to_model(row: tables.Webhook) -> Webhook:
    return Webhook(
        id=row.id,
        project=row.project_id,
        url=row.url,
        events=list(row.events),
        description=row.description,
        disabled=row.disabled,
        disabled_reason=row.disabled_reason,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def new_secret() -> str:
    """`whsec_` and 32 random bytes in base64, as Standard Webhooks libraries read it."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Empty allows every host; `*.example.com` allows its subdomains, not itself."""
    if not allowed:
        return True
    host = host.lower().rstrip(".")
    for rule in (entry.lower().rstrip(".") for entry in allowed):
        if rule == host or (rule.startswith("*.") and host.endswith(rule[1:])):
            return True
    return False


def check_url(value: Any, allowed_hosts: Sequence[str], field: str = "url") -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_URL:
        raise InvalidArgument(
            f"must be an http or https URL of at most {MAX_URL} characters", field=field
        )
    if any(ord(char) < 33 or ord(char) == 127 for char in value):
        raise InvalidArgument("must not contain spaces or control characters", field=field)
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, ValueError):
        raise InvalidArgument("is not a valid URL", field=field) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgument("must be an http or https URL with a host", field=field)
    if url.userinfo:
        raise InvalidArgument("must not carry a user name or password", field=field)
    if url.fragment:
        raise InvalidArgument("must not have a #fragment", field=field)
    if not host_allowed(url.host, allowed_hosts):
        raise InvalidArgument(
            "names a host that LLAVERO_WEBHOOK_ALLOWED_HOSTS does not allow", field=field
        )
    return value


def check_events(value: Any, field: str = "events") -> list[str]:
    if not isinstance(value, list) or not value:
        raise InvalidArgument('must be a non-empty list of event types, or ["*"]', field=field)
    chosen: list[str] = []
    for item in value:
        if item != events.ALL and item not in events.EVENT_TYPES:
            shown = repr(item)[:60]
            raise InvalidArgument(
                f"{shown} is not an event type; use one of {', '.join(events.EVENT_TYPES)} or *",
                field=field,
            )
        if item not in chosen:
            chosen.append(item)
    return [events.ALL] if events.ALL in chosen else chosen


def check_description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise InvalidArgument(
            f"must be a string of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value.strip()


class Webhooks:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(
        self,
        actor: Actor,
        url: str,
        event_types: list[str],
        *,
        project: str | None = None,
        description: str | None = None,
    ) -> CreatedWebhook:
        actor.require("projects:write")
        values = {
            "url": check_url(url, self.ctx.settings.webhook_allowed_hosts),
            "events": check_events(event_types),
            "description": check_description(description),
        }
        secret = new_secret()
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            project_id = self._project(session, actor, project)
            row = tables.Webhook(
                id=str(uuid.uuid4()),
                project_id=project_id,
                secret=secret,
                disabled=False,
                created_by=actor.name,
                create_time=now,
                update_time=now,
                **values,
            )
            session.add(row)
            self._audit(session, actor, "webhook.create", row, url=row.url, events=row.events)
            return CreatedWebhook(webhook=to_model(row), secret=secret)

    def get(self, actor: Actor, webhook_id: str) -> Webhook:
        actor.require("keys:read")
        with self.ctx.db.reading() as session:
            return to_model(self._load(session, actor, webhook_id))

    def list(
        self,
        actor: Actor,
        *,
        project: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> models.Page[Webhook]:
        """Oldest first. Without `project`: every webhook the actor may manage."""
        actor.require("keys:read")
        page = self.ctx.page_tokens.request(page_size, page_token, "webhooks")
        query = select(tables.Webhook).order_by(tables.Webhook.id)
        if page.after is not None:
            query = query.where(tables.Webhook.id > str(page.after[0]))
        with self.ctx.db.reading() as session:
            query = self._scope(session, actor, query, project)
            rows = session.scalars(query.limit(page.size + 1)).all()
        items = [to_model(row) for row in rows[: page.size]]
        token = (
            self.ctx.page_tokens.encode("webhooks", (items[-1].id,))
            if len(rows) > page.size
            else ""
        )
        return models.Page[Webhook](items=items, next_page_token=token)

    def update(self, actor: Actor, webhook_id: str, changes: Mapping[str, Any]) -> Webhook:
        """Partial update. Enabling a disabled endpoint sends what waited for it, in order."""
        actor.require("projects:write")
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise InvalidArgument("cannot be updated", field=unknown[0])
        values = self._validated(changes)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, webhook_id, write=True)
            enabling = row.disabled and values.get("disabled") is False
            for name, value in values.items():
                setattr(row, name, value)
            if "disabled" in values:
                row.disabled_reason = "disabled by " + actor.name if row.disabled else None
            row.update_time = now
            if enabling:
                session.execute(
                    update(tables.Delivery)
                    .where(
                        tables.Delivery.webhook_id == row.id,
                        tables.Delivery.status == events.PENDING,
                    )
                    .values(next_attempt_time=now)
                )
            self._audit(session, actor, "webhook.update", row, fields=sorted(values))
            return to_model(row)

    def delete(self, actor: Actor, webhook_id: str) -> None:
        """The endpoint and its delivery log go; nothing more is sent to it."""
        actor.require("projects:write")
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, webhook_id, write=True)
            session.execute(delete(tables.Delivery).where(tables.Delivery.webhook_id == row.id))
            session.delete(row)
            self._audit(session, actor, "webhook.delete", row)

    def rotate_secret(self, actor: Actor, webhook_id: str) -> CreatedWebhook:
        """A new secret, shown once; deliveries from now on are signed with it only."""
        actor.require("projects:write")
        secret = new_secret()
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, webhook_id, write=True)
            row.secret = secret
            row.update_time = self.ctx.clock.now()
            self._audit(session, actor, "webhook.rotate_secret", row)
            return CreatedWebhook(webhook=to_model(row), secret=secret)

    def send_test(self, actor: Actor, webhook_id: str) -> TestSent:
        """Queue a `webhook.test` event for this endpoint alone, whatever it subscribed to."""
        actor.require("projects:write")
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, webhook_id, write=True)
            if row.disabled:
                raise FailedPrecondition("the webhook is disabled; enable it first", field="id")
            data = {"webhook_id": row.id, "project": row.project_id}
            event_id = events.emit(
                session,
                self.ctx,
                events.WEBHOOK_TEST,
                data,
                project=row.project_id,
                only_webhook=row.id,
            )
            assert event_id is not None  # one target: this webhook
            return TestSent(event_id=event_id)

    def deliveries(
        self,
        actor: Actor,
        webhook_id: str,
        *,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> models.Page[Delivery]:
        """The delivery log, newest first."""
        actor.require("keys:read")
        page = self.ctx.page_tokens.request(page_size, page_token, "deliveries")
        query = (
            select(tables.Delivery, tables.Event.event_id, tables.Event.type)
            .join(tables.Event, tables.Event.id == tables.Delivery.event_id)
            .where(tables.Delivery.webhook_id == webhook_id)
            .order_by(tables.Delivery.id.desc())
        )
        if page.after is not None:
            if not isinstance(page.after[0], int):
                raise InvalidArgument("is not a page token of this list", field="page_token")
            query = query.where(tables.Delivery.id < page.after[0])
        with self.ctx.db.reading() as session:
            self._load(session, actor, webhook_id)
            rows = session.execute(query.limit(page.size + 1)).all()
        items = [_delivery(row[0], row[1], row[2]) for row in rows[: page.size]]
        token = (
            self.ctx.page_tokens.encode("deliveries", (items[-1].id,))
            if len(rows) > page.size
            else ""
        )
        return models.Page[Delivery](items=items, next_page_token=token)

    # --- helpers -------------------------------------------------------------------------

    def _validated(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        if "url" in changes:
            values["url"] = check_url(changes["url"], self.ctx.settings.webhook_allowed_hosts)
        if "events" in changes:
            values["events"] = check_events(changes["events"])
        if "description" in changes:
            values["description"] = check_description(changes["description"])
        if "disabled" in changes:
            if not isinstance(changes["disabled"], bool):
                raise InvalidArgument("must be true or false", field="disabled")
            values["disabled"] = changes["disabled"]
        return values

    def _project(self, session: Session, actor: Actor, project: str | None) -> str | None:
        if project is None:
            actor.require("admin")
            return None
        return projects.load(session, actor, project, access.MANAGE).id

    def _load(
        self, session: Session, actor: Actor, webhook_id: str, *, write: bool = False
    ) -> tables.Webhook:
        row = session.get(tables.Webhook, webhook_id) if isinstance(webhook_id, str) else None
        if row is None:
            raise validation.not_found("webhook", webhook_id, "id")
        if row.project_id is None:
            if not actor.is_admin:
                raise validation.not_found("webhook", webhook_id, "id")
        else:
            try:
                projects.load(
                    session, actor, row.project_id, access.MANAGE if write else access.READ
                )
            except NotFound:
                raise validation.not_found("webhook", webhook_id, "id") from None
        return row

    def _scope(
        self, session: Session, actor: Actor, query: Select[Any], project: str | None
    ) -> Select[Any]:
        if project is not None:
            return query.where(
                tables.Webhook.project_id == projects.load(session, actor, project).id
            )
        if actor.is_admin:
            return query
        # not an admin: the webhooks of projects, never the deployment's (project_id NULL)
        live = access.visible_projects(actor)
        if live is None:
            live = select(tables.Project.id).where(tables.Project.delete_time.is_(None))
        return query.where(tables.Webhook.project_id.in_(live))

    def _audit(
        self, session: Session, actor: Actor, action: str, row: tables.Webhook, **details: Any
    ) -> None:
        audit.record(
            session, self.ctx, actor, action, f"webhook/{row.id}", project=row.project_id, **details
        )


def _delivery(row: tables.Delivery, event_id: str, event_type: str) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=event_id,
        type=event_type,
        target=row.target,
        status=row.status,
        attempts=row.attempts,
        last_status=row.last_status,
        last_error=row.last_error,
        create_time=row.create_time,
        last_attempt_time=row.last_attempt_time,
        next_attempt_time=row.next_attempt_time if row.status == events.PENDING else None,
        delivered_time=row.delivered_time,
    )
