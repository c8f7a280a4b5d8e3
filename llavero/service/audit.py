"""The audit trail: one event for every change, written in the change's own transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from llavero import models
from llavero.errors import InvalidArgument
from llavero.service.context import Actor, Context
from llavero.store import tables


def record(
    session: Session, ctx: Context, actor: Actor, action: str, target: str, **details: Any
) -> None:
    """Callers pass ids, names and states only: never a key string."""
    session.add(
        tables.AuditEvent(
            time=ctx.clock.now(),
            actor=actor.name,
            action=action,
            target=target,
            source_ip=actor.ip,
            details=details,
        )
    )


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
        """Newest first. A target filter matches a key id, a project id or `project/<id>`."""
        if target is None:
            actor.require("admin")
        else:
            actor.require("keys:read")
        page = self.ctx.page_tokens.request(page_size, page_token, "audit")
        query = select(tables.AuditEvent).order_by(tables.AuditEvent.id.desc())
        if target is not None:
            query = query.where(tables.AuditEvent.target == target)
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
