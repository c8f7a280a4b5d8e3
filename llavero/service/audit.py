"""The audit trail: one event for every change, written in the change's own transaction.

Each event names the project it concerns, if any: admins read every event, anyone else only
the events of projects they may read (docs/security.md, "Audit log visibility")."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llavero.errors import InvalidArgument
from llavero.service import access, models
from llavero.service.context import Actor, Context
from llavero.store import tables

PROJECT_TARGET = "project/"


def record(
    session: Session, ctx: Context, actor: Actor, action: str, target: str, **details: Any
) -> None:
    """Callers pass ids, names and states only: never a key string. The event concerns the
    project of its `project` detail (key events) or the project it targets."""
    session.add(
        tables.AuditEvent(
            time=ctx.clock.now(),
            actor=actor.name,
            action=action,
            target=target,
            source_ip=actor.ip,
            details=details,
            project_id=project_of(target, details),
        )
    )


def project_of(target: str, details: dict[str, Any]) -> str | None:
    project = details.get("project")
    if isinstance(project, str):
        return project
    return target.removeprefix(PROJECT_TARGET) if target.startswith(PROJECT_TARGET) else None


def to_model(row: tables.AuditEvent) -> models.AuditEvent:
    return models.AuditEvent(
        id=row.id,
        time=row.time,
        actor=row.actor,
        action=row.action,
        target=row.target,
        source_ip=row.source_ip,
        details=row.details,
    )


class Audit:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(
        self,
        actor: Actor,
        *,
        target: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
    ) -> models.Page[models.AuditEvent]:
        """Newest first; the whole log for admins. Others name a `target` (a key id or
        `project/<id>`) and see only its events about projects they may read: none about
        users, tokens or billing accounts."""
        if target is None:
            actor.require("admin")
        else:
            actor.require("keys:read")
        page = self.ctx.page_tokens.request(page_size, page_token, "audit")
        query = select(tables.AuditEvent).order_by(tables.AuditEvent.id.desc())
        if target is not None:
            query = query.where(tables.AuditEvent.target == target)
        if not actor.is_admin:
            query = query.where(tables.AuditEvent.project_id.is_not(None))
            visible = access.visible_projects(actor)
            if visible is not None:
                query = query.where(tables.AuditEvent.project_id.in_(visible))
        if page.after is not None:
            query = query.where(tables.AuditEvent.id < _int(page.after[0]))
        with self.ctx.db.reading() as session:
            rows = session.scalars(query.limit(page.size + 1)).all()
        items = [to_model(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        token = self.ctx.page_tokens.encode("audit", (items[-1].id,)) if more else ""
        return models.Page[models.AuditEvent](items=items, next_page_token=token)


def _int(value: object) -> int:
    if not isinstance(value, int):
        raise InvalidArgument("is not a page token of this list", field="page_token")
    return value
