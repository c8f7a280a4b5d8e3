"""Billing accounts and the link between a project and one: what moves a project between plans.

A project's plan follows from its link: an open billing account means the paid plan
(`LLAVERO_PAID_PLAN`), anything else means `free`. So linking, unlinking, closing and reopening
an account all change plans, and each such write records a change-feed row per affected project
and drops its keys from the verify cache: the very next verify counts against the new limits.

Accounts are managed by admins. Linking one also needs the `admin` scope, since it spends the
account's money and Llavero has no per-account roles; unlinking only lowers limits, so any
editor or owner of the project may do it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from babel.numbers import is_currency
from sqlalchemy import select
from sqlalchemy.orm import Session

from llavero.errors import FailedPrecondition, InvalidArgument
from llavero.service import access, audit, events, models, projects, validation
from llavero.service.context import Actor, Context
from llavero.service.plans import PlanCatalog, limits_of
from llavero.store import tables
from llavero.store.changes import PROJECT, record_change

ACCOUNT_ID = re.compile(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}")
DEFAULT_CURRENCY = "USD"


class BillingAccount(models.Model):
    id: str
    display_name: str
    currency: str
    open: bool
    create_time: datetime
    update_time: datetime


class BillingInfo(models.Model):
    """A project's link and the plan and limits that follow from it (`None`: unlimited)."""

    project: str
    billing_account: str | None
    plan: str
    limits: dict[str, int | None]


def to_model(row: tables.BillingAccount) -> BillingAccount:
    return BillingAccount(
        id=row.id,
        display_name=row.display_name,
        currency=row.currency,
        open=row.open,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def new_account_id() -> str:
    """Shaped like Google's billing account ids (`012345-6789AB-CDEF01`), 72 random bits."""
    digits = secrets.token_hex(9).upper()
    return f"{digits[:6]}-{digits[6:12]}-{digits[12:]}"


def currency_code(value: Any, field: str = "currency") -> str:
    """An ISO 4217 code that Babel knows, upper-cased (`usd` is accepted as `USD`)."""
    if not isinstance(value, str) or not is_currency(value.strip().upper()):
        raise InvalidArgument("must be an ISO 4217 currency code, e.g. USD or EUR", field=field)
    return value.strip().upper()


def open_flag(value: Any, field: str = "open") -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument("must be true or false", field=field)
    return value


class Billing:
    def __init__(self, ctx: Context, plans: PlanCatalog) -> None:
        self.ctx = ctx
        self.plans = plans

    # --- accounts ------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        display_name: str,
        currency: str = DEFAULT_CURRENCY,
        open: bool = True,
    ) -> BillingAccount:
        actor.require("admin")
        name = validation.display_name(display_name)
        code = currency_code(currency)
        is_open = open_flag(open)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            account_id = new_account_id()
            while session.get(tables.BillingAccount, account_id) is not None:
                account_id = new_account_id()
            row = tables.BillingAccount(
                id=account_id,
                display_name=name,
                currency=code,
                open=is_open,
                create_time=now,
                update_time=now,
            )
            session.add(row)
            audit.record(
                session,
                self.ctx,
                actor,
                "billing.create",
                f"billing_account/{account_id}",
                display_name=name,
                currency=code,
                open=is_open,
            )
            return to_model(row)

    def get(self, actor: Actor, account_id: str) -> BillingAccount:
        actor.require("admin")
        with self.ctx.db.reading() as session:
            return to_model(self._load(session, account_id))

    def list(
        self, actor: Actor, *, page_size: int | None = None, page_token: str | None = None
    ) -> models.Page[BillingAccount]:
        actor.require("admin")
        page = self.ctx.page_tokens.request(page_size, page_token, "billing_accounts")
        query = select(tables.BillingAccount).order_by(tables.BillingAccount.id)
        if page.after is not None:
            query = query.where(tables.BillingAccount.id > str(page.after[0]))
        with self.ctx.db.reading() as session:
            rows = session.scalars(query.limit(page.size + 1)).all()
        items = [to_model(row) for row in rows[: page.size]]
        token = ""
        if len(rows) > page.size:
            token = self.ctx.page_tokens.encode("billing_accounts", (items[-1].id,))
        return models.Page[BillingAccount](items=items, next_page_token=token)

    def update(
        self,
        actor: Actor,
        account_id: str,
        *,
        display_name: str | None = None,
        open: bool | None = None,
    ) -> BillingAccount:
        """Rename, close (`open=False`) or reopen. Closing keeps the links: the projects fall
        back to `free` until the account is reopened or they link another open account."""
        actor.require("admin")
        name = None if display_name is None else validation.display_name(display_name)
        is_open = None if open is None else open_flag(open)
        with self.ctx.db.transaction() as session:
            row = self._load(session, account_id, lock=True)
            changes: dict[str, Any] = {}
            if name is not None and name != row.display_name:
                changes["display_name"] = {"old": row.display_name, "new": name}
                row.display_name = name
            if is_open is not None and is_open != row.open:
                changes["open"] = {"old": row.open, "new": is_open}
                row.open = is_open
            if not changes:
                return to_model(row)
            row.update_time = self.ctx.clock.now()
            moved: Sequence[str] = ()
            if "open" in changes:
                moved = self._linked_projects(session, row.id)
                for project_id in moved:
                    record_change(session, self.ctx.clock, PROJECT, project_id)
            action = "billing.close" if is_open is False and "open" in changes else "billing.update"
            audit.record(
                session,
                self.ctx,
                actor,
                action,
                f"billing_account/{row.id}",
                projects=list(moved),
                **changes,
            )
            account = to_model(row)
        self._invalidate(moved)
        return account

    def close(self, actor: Actor, account_id: str) -> BillingAccount:
        return self.update(actor, account_id, open=False)

    def reopen(self, actor: Actor, account_id: str) -> BillingAccount:
        return self.update(actor, account_id, open=True)

    # --- projects ------------------------------------------------------------------------

    def info(self, actor: Actor, project_id: str) -> BillingInfo:
        actor.require("keys:read")
        with self.ctx.db.reading() as session:
            return self._info(session, projects.load(session, actor, project_id))

    def link(self, actor: Actor, project_id: str, account_id: str | None) -> BillingInfo:
        """Link the project to an open account (paid plan), or unlink it with `None` (free)."""
        if account_id is None:
            return self.unlink(actor, project_id)
        actor.require("admin")
        with self.ctx.db.transaction() as session:
            project = projects.load(session, actor, project_id, access.BILLING)
            account = self._load(session, account_id, lock=True)
            if not account.open:
                raise FailedPrecondition(
                    f"billing account {account.id!r} is closed; reopen it or link an open one",
                    field="billing_account",
                )
            if project.billing_account_id == account.id:
                return self._info(session, project)
            previous = project.billing_account_id
            project.billing_account_id = account.id
            project.update_time = self.ctx.clock.now()
            info = self._info(session, project)
            self._record_move(session, actor, "project.billing_link", info, previous)
            self._emit(session, events.BILLING_LINKED, info, previous)
        self._invalidate([project_id])
        return info

    def unlink(self, actor: Actor, project_id: str) -> BillingInfo:
        actor.require("projects:write")
        with self.ctx.db.transaction() as session:
            project = projects.load(session, actor, project_id, access.BILLING)
            previous = project.billing_account_id
            if previous is None:
                return self._info(session, project)
            project.billing_account_id = None
            project.update_time = self.ctx.clock.now()
            info = self._info(session, project)
            self._record_move(session, actor, "project.billing_unlink", info, previous)
            self._emit(session, events.BILLING_UNLINKED, info, previous)
        self._invalidate([project_id])
        return info

    # --- helpers -------------------------------------------------------------------------

    def _load(
        self, session: Session, account_id: str, *, lock: bool = False
    ) -> tables.BillingAccount:
        """`lock` serialises a link with a concurrent close on PostgreSQL (SQLite serialises
        writers anyway): the close then sees the new link and moves that project too."""
        row = None
        if isinstance(account_id, str) and ACCOUNT_ID.fullmatch(account_id):
            row = session.get(tables.BillingAccount, account_id, with_for_update=lock)
        if row is None:
            raise validation.not_found(
                "billing account", account_id, "billing_account", shape=ACCOUNT_ID
            )
        return row

    def _info(self, session: Session, project: tables.Project) -> BillingInfo:
        plan = projects.plan_of(session, self.ctx, project)
        return BillingInfo(
            project=project.id,
            billing_account=project.billing_account_id,
            plan=plan,
            limits=limits_of(self.plans.get(plan)),
        )

    def _record_move(
        self, session: Session, actor: Actor, action: str, info: BillingInfo, previous: str | None
    ) -> None:
        record_change(session, self.ctx.clock, PROJECT, info.project)
        audit.record(
            session,
            self.ctx,
            actor,
            action,
            f"project/{info.project}",
            billing_account=info.billing_account,
            previous_billing_account=previous,
            plan=info.plan,
        )

    def _emit(
        self, session: Session, event_type: str, info: BillingInfo, previous: str | None
    ) -> None:
        data = {
            "project": info.project,
            "billing_account": info.billing_account,
            "previous_billing_account": previous,
            "plan": info.plan,
        }
        events.emit(session, self.ctx, event_type, data, project=info.project)

    def _linked_projects(self, session: Session, account_id: str) -> Sequence[str]:
        query = (
            select(tables.Project.id)
            .where(tables.Project.billing_account_id == account_id)
            .order_by(tables.Project.id)
        )
        return session.scalars(query).all()

    def _invalidate(self, project_ids: Iterable[str]) -> None:
        for project_id in project_ids:
            self.ctx.cache.invalidate_project(project_id)
