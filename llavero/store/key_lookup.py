"""Find a key by the keyed hash of its string: the one lookup verify and `keys:lookup` share,
and verify's key source on the database."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import orjson
from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from llavero.config import Settings
from llavero.core.cache import KeyCache, KeyRecord
from llavero.core.limits import checks_for
from llavero.core.plans import Plan, plan_for_billing
from llavero.core.restrictions import compile_restrictions
from llavero.store import tables
from llavero.store.db import Database


def key_by_hash(session: Session, digest: str) -> tuple[tables.Key, bool | None] | None:
    """The key whose current or previous string hashes to `digest`, and whether its project's
    billing account is open (None: no account)."""
    # One statement, two lookups each on its own unique index, rather than an `OR`: with
    # statistics (after ANALYZE) SQLite may answer the `OR` by scanning a project's keyformat.
    matching = union_all(
        select(tables.Key.id).where(tables.Key.key_hash == digest),
        select(tables.Key.id).where(tables.Key.previous_hash == digest),
    )
    query = (
        select(tables.Key, tables.BillingAccount.open)
        .join(tables.Project, tables.Project.id == tables.Key.project_id)
        .outerjoin(
            tables.BillingAccount,
            tables.BillingAccount.id == tables.Project.billing_account_id,
        )
        .where(tables.Key.id.in_(matching))
    )
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1])


NO_LIMITS: Final[Mapping[str, int]] = MappingProxyType({})


class KeyRecords:
    """Verify's key source (`llavero.core.verify.KeySource`): the record of a key by hash,
    compact (interned strings; plans' checks and compiled restrictions shared among records
    through `KeyCache.shared`) since a million of them may be cached."""

    def __init__(
        self, db: Database, settings: Settings, plans: Mapping[str, Plan], cache: KeyCache
    ) -> None:
        self.db = db
        self.settings = settings
        self.plans = plans
        self.cache = cache

    def __call__(self, digest: bytes) -> KeyRecord | None:
        stored = digest.hex()
        with self.db.reading() as session:
            found = key_by_hash(session, stored)
        if found is None:
            return None
        row, billing_open = found
        return self.record(row, billing_open, is_previous=row.key_hash != stored)

    def record(self, row: tables.Key, billing_open: bool | None, is_previous: bool) -> KeyRecord:
        ends = [row.expire_time]
        if is_previous:
            ends.append(row.previous_expire_time)
        deadlines = [end.timestamp() for end in ends if end is not None]
        project_id = sys.intern(row.project_id)
        plan = sys.intern(plan_for_billing(self.settings, billing_open))
        limits = dict(row.limits) or NO_LIMITS
        checks = tuple(checks_for(self.plans[plan], limits, project_id, row.id, 0))
        shared = self.cache.shared
        return KeyRecord(
            key_id=row.id,
            project_id=project_id,
            state=sys.intern(row.state),
            valid_until=min(deadlines) if deadlines else None,
            environment=None if row.environment is None else sys.intern(row.environment),
            restrictions=shared(
                compile_restrictions(row.restrictions),
                ("restrictions", orjson.dumps(row.restrictions, option=orjson.OPT_SORT_KEYS)),
            ),
            limits=limits,
            plan=plan,
            checks=checks if limits else shared(checks),
        )
