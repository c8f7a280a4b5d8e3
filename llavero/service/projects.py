"""Projects: the unit that owns keys, carries a plan and links to billing."""

from __future__ import annotations

import re
import secrets
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from llavero.core.codes import LIVE_STATES
from llavero.core.plans import plan_for_billing
from llavero.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from llavero.service import access, audit, models, validation
from llavero.service.context import Actor, Context
from llavero.store import tables
from llavero.store.changes import PROJECT, record_change

PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")
SLUG = re.compile(r"[a-z0-9-]{1,63}")
LEAK_POLICIES = ("revoke", "disable", "notify")
"""What a project does with a key reported leaked (docs/leaks.md); the first is the default."""


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"project-{slug}".strip("-")
    return slug[:23].rstrip("-")


def plan_of(session: Session, ctx: Context, row: tables.Project) -> str:
    if row.billing_account_id is None:
        return plan_for_billing(ctx.settings, None)
    account = session.get(tables.BillingAccount, row.billing_account_id)
    return plan_for_billing(ctx.settings, account is not None and account.open)


def to_model(session: Session, ctx: Context, row: tables.Project) -> models.Project:
    return models.Project(
        id=row.id,
        number=row.number,
        display_name=row.display_name,
        create_time=row.create_time,
        update_time=row.update_time,
        billing_account=row.billing_account_id,
        plan=plan_of(session, ctx, row),
        leak_policy=row.leak_policy,
    )


def project_not_found(project_id: object) -> NotFound:
    """Echo the id only when it could be a slug: a key string (it has a `_`) never could."""
    valid = isinstance(project_id, str) and SLUG.fullmatch(project_id)
    shown = f"project {project_id!r}" if valid else "project"
    return NotFound(f"{shown} does not exist", field="project")


def load(
    session: Session, actor: Actor, project_id: str, need: str = access.READ
) -> tables.Project:
    """The project row, once the actor may `need` on it (`llavero.service.access`)."""
    row = session.get(tables.Project, project_id) if isinstance(project_id, str) else None
    if row is None or row.delete_time is not None or not access.check(session, actor, row.id, need):
        raise project_not_found(project_id)
    return row


class Projects:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(
        self, actor: Actor, display_name: str, project_id: str | None = None
    ) -> models.Project:
        actor.require("projects:write")
        name = validation.display_name(display_name)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            pid = self._new_id(session, project_id, name)
            row = tables.Project(
                id=pid,
                number=self._new_number(session),
                display_name=name,
                billing_account_id=None,
                create_time=now,
                update_time=now,
                delete_time=None,
            )
            session.add(row)
            if actor.user_id is not None:
                session.add(
                    tables.ProjectMember(project_id=pid, user_id=actor.user_id, role="owner")
                )
            audit.record(
                session, self.ctx, actor, "project.create", f"project/{pid}", display_name=name
            )
            session.flush()
            return to_model(session, self.ctx, row)

    def get(self, actor: Actor, project_id: str) -> models.Project:
        actor.require("keys:read")
        with self.ctx.db.reading() as session:
            return to_model(session, self.ctx, load(session, actor, project_id))

    def list(
        self, actor: Actor, *, page_size: int | None = None, page_token: str | None = None
    ) -> models.Page[models.Project]:
        actor.require("keys:read")
        page = self.ctx.page_tokens.request(page_size, page_token, "projects")
        query = (
            select(tables.Project)
            .where(tables.Project.delete_time.is_(None))
            .order_by(tables.Project.id)
        )
        visible = access.visible_projects(actor)
        if visible is not None:
            query = query.where(tables.Project.id.in_(visible))
        if page.after is not None:
            query = query.where(tables.Project.id > str(page.after[0]))
        with self.ctx.db.reading() as session:
            rows = session.scalars(query.limit(page.size + 1)).all()
            items = [to_model(session, self.ctx, row) for row in rows[: page.size]]
        token = (
            self.ctx.page_tokens.encode("projects", (items[-1].id,))
            if len(rows) > page.size
            else ""
        )
        return models.Page[models.Project](items=items, next_page_token=token)

    def rename(self, actor: Actor, project_id: str, display_name: str) -> models.Project:
        return self.update(actor, project_id, display_name=display_name)

    def update(
        self,
        actor: Actor,
        project_id: str,
        *,
        display_name: str | None = None,
        leak_policy: str | None = None,
    ) -> models.Project:
        """Rename and/or set the leak policy, in one transaction: both or neither."""
        actor.require("projects:write")
        name = None if display_name is None else validation.display_name(display_name)
        if leak_policy is not None and leak_policy not in LEAK_POLICIES:
            raise InvalidArgument(f"must be one of {', '.join(LEAK_POLICIES)}", field="leak_policy")
        with self.ctx.db.transaction() as session:
            row = load(session, actor, project_id, access.MANAGE)
            target = f"project/{row.id}"
            if name is not None:
                old, row.display_name = row.display_name, name
                audit.record(session, self.ctx, actor, "project.rename", target, old=old, new=name)
            if leak_policy is not None:
                old, row.leak_policy = row.leak_policy, leak_policy
                audit.record(
                    session,
                    self.ctx,
                    actor,
                    "project.leak_policy",
                    target,
                    old=old,
                    new=leak_policy,
                )
            row.update_time = self.ctx.clock.now()
            return to_model(session, self.ctx, row)

    def delete(self, actor: Actor, project_id: str) -> None:
        """Refused while the project has live keys: a mass revocation must be deliberate."""
        actor.require("projects:write")
        with self.ctx.db.transaction() as session:
            row = load(session, actor, project_id, access.MANAGE)
            live = session.scalar(
                select(tables.Key.id)
                .where(tables.Key.project_id == row.id, tables.Key.state.in_(LIVE_STATES))
                .limit(1)
            )
            if live is not None:
                raise FailedPrecondition(
                    f"project {row.id!r} still has keys; delete them first", field="project"
                )
            row.delete_time = self.ctx.clock.now()
            row.update_time = row.delete_time
            record_change(session, self.ctx.clock, PROJECT, row.id)
            audit.record(session, self.ctx, actor, "project.delete", f"project/{row.id}")
        self.ctx.cache.invalidate_project(project_id)

    def _new_id(self, session: Session, requested: str | None, name: str) -> str:
        if requested is not None:
            if not isinstance(requested, str) or not PROJECT_ID.fullmatch(requested):
                raise InvalidArgument(
                    "must be 6-30 lowercase letters, digits or hyphens, start with a letter "
                    "and not end with a hyphen",
                    field="id",
                )
            if session.get(tables.Project, requested) is not None:
                raise AlreadyExists(f"project {requested!r} already exists", field="id")
            return requested
        base = slugify(name)
        candidate = base if len(base) >= 6 else f"{base}-{secrets.randbelow(10**5):05d}"
        while session.get(tables.Project, candidate) is not None:
            candidate = f"{base}-{secrets.randbelow(10**6):06d}"
        return candidate

    def _new_number(self, session: Session) -> int:
        while True:
            number = 10**11 + secrets.randbelow(9 * 10**11)
            taken = session.scalar(select(tables.Project.id).where(tables.Project.number == number))
            if taken is None:
                return number
