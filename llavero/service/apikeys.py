"""API keys: create (the key string is shown once), list, update, delete/undelete, rotate, look up.

Every write commits its audit event, change-feed row and event (`llavero.service.events`) in
the same transaction, then drops the key from the verify cache, so the very next verify in this
process sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from llavero.core import keyformat, limits, restrictions
from llavero.core.codes import LIVE_STATES, State
from llavero.errors import FailedPrecondition, InvalidArgument, NotFound
from llavero.service import access, audit, dryrun, events, models, projects, validation
from llavero.service.context import Actor, Context
from llavero.service.key_listing import apply_filter, order_for
from llavero.store import tables
from llavero.store.changes import KEY, record_change
from llavero.store.key_lookup import key_by_hash

UNDELETE_DAYS = 30
MAX_GRACE_SECONDS = 604_800
DEFAULT_DISPLAY_NAME = "API key"
UPDATABLE = frozenset(
    {"display_name", "restrictions", "annotations", "expire_time", "limits", "state", "environment"}
)
ALL_PROJECTS = "-"
# The event each audited key action is told as; a purge is not an event (the key is gone).
ACTION_EVENTS: Final[Mapping[str, str]] = {
    "key.create": events.KEY_CREATED,
    "key.update": events.KEY_UPDATED,
    "key.enable": events.KEY_UPDATED,
    "key.disable": events.KEY_DISABLED,
    "key.delete": events.KEY_DELETED,
    "key.undelete": events.KEY_UNDELETED,
    "key.rotate": events.KEY_ROTATED,
}


def to_model(row: tables.Key) -> models.Key:
    purge = row.delete_time + timedelta(days=UNDELETE_DAYS) if row.delete_time else None
    return models.Key(
        id=row.id,
        project=row.project_id,
        display_name=row.display_name,
        last4=row.last4,
        state=row.state,
        create_time=row.create_time,
        update_time=row.update_time,
        expire_time=row.expire_time,
        delete_time=row.delete_time,
        purge_time=purge,
        environment=row.environment,
        restrictions=row.restrictions,
        annotations=row.annotations,
        limits=row.limits,
        last_used_time=row.last_used_time,
        last_used_ip=row.last_used_ip,
        previous_last4=row.previous_last4,
        previous_expire_time=row.previous_expire_time,
        leak=leak_of(row),
    )


def leak_of(row: tables.Key) -> models.Leak | None:
    if row.leak_time is None:
        return None
    return models.Leak(time=row.leak_time, url=row.leak_url, source=row.leak_source)


class ApiKeys:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(
        self,
        actor: Actor,
        project_id: str,
        *,
        display_name: str | None = None,
        expire_time: datetime | str | None = None,
        environment: str | None = None,
        restrictions: Mapping[str, Any] | None = None,
        annotations: Mapping[str, Any] | None = None,
        limits: Mapping[str, Any] | None = None,
    ) -> models.CreatedKey:
        actor.require("keys:write")
        now = self.ctx.clock.now()
        fields = {
            "display_name": validation.display_name(
                DEFAULT_DISPLAY_NAME if display_name is None else display_name
            ),
            "expire_time": validation.future_time(expire_time, now),
            "environment": validation.environment(environment),
            "restrictions": _restrictions(restrictions),
            "annotations": validation.annotation_map(annotations),
            "limits": _limits(limits),
        }
        key_string = keyformat.generate(self.ctx.key_prefix)
        with self.ctx.db.transaction() as session:
            project = projects.load(session, actor, project_id, access.KEYS)
            row = tables.Key(
                id=str(uuid.uuid4()),
                project_id=project.id,
                key_hash=self.ctx.hasher.hash(key_string),
                last4=keyformat.last4(key_string),
                state=State.ACTIVE,
                created_by=actor.name,
                create_time=now,
                update_time=now,
                **fields,
            )
            session.add(row)
            self._audit(session, actor, "key.create", row)
            session.flush()
            return models.CreatedKey(key=to_model(row), key_string=key_string)

    def get(self, actor: Actor, key_id: str) -> models.Key:
        actor.require("keys:read")
        with self.ctx.db.reading() as session:
            return to_model(self._load(session, actor, key_id))

    def list(
        self,
        actor: Actor,
        project_id: str = ALL_PROJECTS,
        *,
        show_deleted: bool = False,
        filter: str | None = None,
        page_size: int | None = None,
        page_token: str | None = None,
        order_by: str | None = None,
    ) -> models.Page[models.Key]:
        """`order_by` is one of `key_listing.ORDERS` (newest first by default); `project_id` "-"
        lists every project the actor can see. A page token carries its order: it continues only the
        listing it came from."""
        actor.require("keys:read")
        order = order_for(order_by)
        page = self.ctx.page_tokens.request(page_size, page_token, order.token_kind)
        terms = [term.expression for term in order.terms]
        query = select(tables.Key, *terms).order_by(*order.clauses())
        query = apply_filter(query, filter, self.ctx.clock.now())
        if not show_deleted:
            query = query.where(tables.Key.state != State.DELETED)
        if page.after is not None:
            query = query.where(order.after(page.after))
        with self.ctx.db.reading() as session:
            query = self._scope(session, actor, query, project_id)
            rows = session.execute(query.limit(page.size + 1)).all()
        items = [to_model(row[0]) for row in rows[: page.size]]
        token = ""
        if len(rows) > page.size:
            token = self.ctx.page_tokens.encode(
                order.token_kind, order.position(rows[page.size - 1][1:])
            )
        return models.Page[models.Key](items=items, next_page_token=token)

    def count(self, actor: Actor, project_id: str = ALL_PROJECTS, filter: str | None = None) -> int:
        actor.require("keys:read")
        query = select(tables.Key).where(tables.Key.state != State.DELETED)
        query = apply_filter(query, filter, self.ctx.clock.now())
        with self.ctx.db.reading() as session:
            query = self._scope(session, actor, query, project_id)
            return session.scalar(select(func.count()).select_from(query.subquery())) or 0

    def update(self, actor: Actor, key_id: str, changes: Mapping[str, Any]) -> models.Key:
        """Partial update: only the fields present in `changes` change."""
        actor.require("keys:write")
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise InvalidArgument("cannot be updated", field=unknown[0])
        values = self._validated(changes)
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, key_id, access.KEYS)
            if row.state == State.DELETED:
                raise FailedPrecondition("a deleted key cannot be changed; undelete it first")
            old = {name: getattr(row, name) for name in values}
            for name, value in values.items():
                setattr(row, name, value)
            row.update_time = self.ctx.clock.now()
            action = _update_action(values, old)
            self._audit(session, actor, action, row, fields=sorted(values))
            result = to_model(row)
        self.ctx.cache.invalidate_key(key_id)
        return result

    def delete(self, actor: Actor, key_id: str) -> models.Key:
        actor.require("keys:write")
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, key_id, access.KEYS)
            if row.state == State.DELETED:
                raise FailedPrecondition("the key is already deleted", field="key")
            row.state_before_delete = row.state
            row.state = State.DELETED
            row.delete_time = row.update_time = self.ctx.clock.now()
            self._audit(session, actor, "key.delete", row)
            result = to_model(row)
        self.ctx.cache.invalidate_key(key_id)
        return result

    def undelete(self, actor: Actor, key_id: str) -> models.Key:
        actor.require("keys:write")
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, key_id, access.KEYS)
            if row.state != State.DELETED or row.delete_time is None:
                raise FailedPrecondition("the key is not deleted", field="key")
            if now - row.delete_time > timedelta(days=UNDELETE_DAYS):
                raise FailedPrecondition(f"keys can be undeleted for {UNDELETE_DAYS} days only")
            row.state = row.state_before_delete or State.ACTIVE
            row.state_before_delete = None
            row.delete_time = None
            row.update_time = now
            self._audit(session, actor, "key.undelete", row)
            result = to_model(row)
        self.ctx.cache.invalidate_key(key_id)
        return result

    def rotate(self, actor: Actor, key_id: str, grace_period_seconds: int) -> models.CreatedKey:
        """A new string for the same key id. The string it replaces verifies until the grace
        period ends and is `EXPIRED` after; a string older than that one stops at once."""
        actor.require("keys:write")
        if (
            isinstance(grace_period_seconds, bool)
            or not isinstance(grace_period_seconds, int)
            or not 0 <= grace_period_seconds <= MAX_GRACE_SECONDS
        ):
            raise InvalidArgument(
                f"must be a whole number from 0 to {MAX_GRACE_SECONDS}",
                field="grace_period_seconds",
            )
        key_string = keyformat.generate(self.ctx.key_prefix)
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            row = self._load(session, actor, key_id, access.KEYS)
            if row.state == State.DELETED:
                raise FailedPrecondition("a deleted key cannot be rotated; undelete it first")
            row.previous_hash, row.previous_last4 = row.key_hash, row.last4
            row.previous_expire_time = now + timedelta(seconds=grace_period_seconds)
            # Free the old unique value before the new one lands: one flush per step.
            session.flush()
            row.key_hash = self.ctx.hasher.hash(key_string)
            row.last4 = keyformat.last4(key_string)
            row.update_time = now
            self._audit(
                session,
                actor,
                "key.rotate",
                row,
                grace_period_seconds=grace_period_seconds,
                previous_last4=row.previous_last4,
            )
            result = models.CreatedKey(key=to_model(row), key_string=key_string)
        self.ctx.cache.invalidate_key(key_id)
        return result

    def test_restrictions(
        self, actor: Actor, key_id: str, context: Mapping[str, Any]
    ) -> dryrun.RestrictionTest:
        """Dry-run of verify for this key and request context: counts no usage, writes nothing."""
        actor.require("keys:read")
        request = dryrun.request_context(context)
        with self.ctx.db.reading() as session:
            row = self._load(session, actor, key_id)
            return dryrun.explain(row, request, self.ctx.clock.now())

    def lookup(self, actor: Actor, key_string: str) -> models.KeyLookup:
        """Which project and key a string belongs to; the string itself is never echoed."""
        actor.require("admin")
        if not isinstance(key_string, str) or not keyformat.is_well_formed(
            key_string, self.ctx.key_prefix
        ):
            raise InvalidArgument("is not a well-formed key string", field="key_string")
        digest = self.ctx.hasher.hash(key_string)
        with self.ctx.db.reading() as session:
            found = key_by_hash(session, digest)
        if found is None:
            raise NotFound("no key matches this key string", field="key_string")
        row = found[0]
        return models.KeyLookup(project=row.project_id, key=row.id, state=row.state)

    def purge(self) -> int:
        """Remove keys deleted more than 30 days ago; their usage and audit history stay."""
        cutoff = self.ctx.clock.now() - timedelta(days=UNDELETE_DAYS)
        with self.ctx.db.transaction() as session:
            rows = session.scalars(
                select(tables.Key).where(
                    tables.Key.state == State.DELETED, tables.Key.delete_time < cutoff
                )
            ).all()
            for row in rows:
                session.delete(row)
                self._audit(session, Actor.system("purge"), "key.purge", row)
        for row in rows:
            self.ctx.cache.invalidate_key(row.id)
        return len(rows)

    def _validated(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        rules: dict[str, Callable[[Any], Any]] = {
            "display_name": validation.display_name,
            "restrictions": _restrictions,
            "annotations": validation.annotation_map,
            "limits": _limits,
            "environment": validation.environment,
            "state": _state,
            "expire_time": lambda value: validation.future_time(value, self.ctx.clock.now()),
        }
        return {name: rules[name](value) for name, value in changes.items()}

    def _load(
        self, session: Session, actor: Actor, key_id: str, need: str = access.READ
    ) -> tables.Key:
        row = session.get(tables.Key, key_id) if isinstance(key_id, str) else None
        if row is None:
            raise validation.not_found("key", key_id, "key")
        try:
            projects.load(session, actor, row.project_id, need)
        except NotFound:
            raise validation.not_found("key", key_id, "key") from None
        return row

    def _scope(
        self, session: Session, actor: Actor, query: Select[Any], project_id: str
    ) -> Select[Any]:
        if project_id != ALL_PROJECTS:
            project = projects.load(session, actor, project_id)
            return query.where(tables.Key.project_id == project.id)
        live = access.visible_projects(actor)
        if live is None:
            live = select(tables.Project.id).where(tables.Project.delete_time.is_(None))
        return query.where(tables.Key.project_id.in_(live))

    def _audit(
        self, session: Session, actor: Actor, action: str, row: tables.Key, **details: Any
    ) -> None:
        record_change(session, self.ctx.clock, KEY, row.id)
        audit.record(session, self.ctx, actor, action, row.id, project=row.project_id, **details)
        event_type = ACTION_EVENTS.get(action)
        if event_type is not None:
            events.key_event(session, self.ctx, event_type, row, **details)


def _restrictions(value: Any) -> dict[str, Any]:
    if value is not None and not isinstance(value, Mapping):
        raise InvalidArgument("must be an object", field="restrictions")
    return restrictions.normalize(value)


def _limits(value: Any) -> dict[str, int]:
    if value is not None and not isinstance(value, Mapping):
        raise InvalidArgument("must be an object", field="limits")
    return limits.normalize_key_limits(value)


def _state(value: Any) -> str:
    if value not in LIVE_STATES:
        raise InvalidArgument("must be ACTIVE or DISABLED (use delete to delete)", field="state")
    return str(value)


def _update_action(values: Mapping[str, Any], old: Mapping[str, Any]) -> str:
    if set(values) == {"state"} and values["state"] != old["state"]:
        return "key.enable" if values["state"] == State.ACTIVE else "key.disable"
    return "key.update"
