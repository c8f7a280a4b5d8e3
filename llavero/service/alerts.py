"""Moments no request writes: a key 7 days and 1 day from its `expire_time`, a key expired, a
project or key at 80 % and 100 % of its `rpd` or `upd` today.

A periodic check (every `LLAVERO_ALERT_CHECK_SECONDS`) finds them from what is stored: expiry
times, and the day buckets the usage flusher writes, so verify itself does no extra work. Each
moment is marked in `alert_marks` in the transaction of its event: with several instances, the
primary key lets one of them tell it, once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llavero.core.codes import REPORTED, Code, State
from llavero.service import events, projects
from llavero.service.context import Context
from llavero.service.plans import PlanCatalog
from llavero.store import tables

EXPIRING_DAYS: Final = (1, 7)  # tightest first: a key found 12 h from expiry gets only "1 day"
EXPIRED_LOOKBACK: Final = timedelta(days=7)
THRESHOLDS: Final = (80, 100)
QUOTAS: Final = ("rpd", "upd")
DAY: Final = 86400
BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class _Counted:
    """Today's VALID requests and units of one key, from its day bucket."""

    key_id: str
    project_id: str
    requests: int
    units: int


class Alerts:
    def __init__(self, ctx: Context, plans: PlanCatalog) -> None:
        self.ctx = ctx
        self.plans = plans

    def check(self) -> int:
        """Tell every moment reached and not told yet; returns how many were new."""
        now = self.ctx.clock.now()
        with self.ctx.db.transaction() as session:
            told = 0
            if events.wanted(session, self.ctx, events.KEY_EXPIRING, events.KEY_EXPIRED):
                told += self._expiry(session, now)
            if events.wanted(session, self.ctx, events.QUOTA_THRESHOLD):
                told += self._quota(session, now)
            return told

    # --- expiry ----------------------------------------------------------------------------

    def _expiry(self, session: Session, now: datetime) -> int:
        horizon = now + timedelta(days=max(EXPIRING_DAYS))
        rows = session.scalars(
            select(tables.Key)
            .where(
                tables.Key.state == State.ACTIVE,
                tables.Key.expire_time.is_not(None),
                tables.Key.expire_time <= horizon,
                tables.Key.expire_time > now - EXPIRED_LOOKBACK,
            )
            .order_by(tables.Key.expire_time, tables.Key.id)
        ).all()
        told = 0
        for row in rows:
            assert row.expire_time is not None
            window = row.expire_time.isoformat()
            if row.expire_time <= now:
                if self._mark(session, f"key/{row.id}", "expired", window, now):
                    events.key_event(session, self.ctx, events.KEY_EXPIRED, row)
                    told += 1
                continue
            days = next(d for d in EXPIRING_DAYS if row.expire_time - now <= timedelta(days=d))
            if self._mark(session, f"key/{row.id}", f"expiring.{days}d", window, now):
                events.key_event(session, self.ctx, events.KEY_EXPIRING, row, days=days)
                told += 1
        return told

    # --- quotas ----------------------------------------------------------------------------

    def _quota(self, session: Session, now: datetime) -> int:
        day_start = datetime.fromtimestamp(int(now.timestamp()) // DAY * DAY, UTC)
        counted = self._counted(session, day_start)
        if not counted:
            return 0
        window = {
            "window_start": _stamp(day_start),
            "window_end": _stamp(day_start + timedelta(days=1)),
        }
        told = 0
        per_project: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        limited = self._keys_with_limits(session, [item.key_id for item in counted])
        for item in counted:
            per_project[item.project_id][0] += item.requests
            per_project[item.project_id][1] += item.units
            key = limited.get(item.key_id)
            if key is None:
                continue
            subject = events.key_data(key)
            base = {"scope": "key", **subject, **window}
            used = {"rpd": item.requests, "upd": item.units}
            told += self._thresholds(session, f"key/{key.id}", key.limits, used, base, now)
        for project_id, (requests, units) in sorted(per_project.items()):
            project = session.get(tables.Project, project_id)
            if project is None:
                continue
            plan = self.plans.get(projects.plan_of(session, self.ctx, project))
            limits = {name: getattr(plan, name) for name in QUOTAS}
            base = {"scope": "project", "project": project_id, "plan": plan.name, **window}
            used = {"rpd": requests, "upd": units}
            told += self._thresholds(session, f"project/{project_id}", limits, used, base, now)
        return told

    def _thresholds(
        self,
        session: Session,
        subject: str,
        limits: dict[str, Any],
        used: dict[str, int],
        base: dict[str, Any],
        now: datetime,
    ) -> int:
        told = 0
        for name in QUOTAS:
            limit = limits.get(name)
            if not isinstance(limit, int) or limit <= 0:
                continue
            for percent in THRESHOLDS:
                if used[name] * 100 < limit * percent:
                    break
                moment = f"quota.{name}.{percent}"
                if self._mark(session, subject, moment, str(base["window_start"]), now):
                    data = {
                        **base,
                        "limit": name,
                        "threshold_percent": percent,
                        "used": used[name],
                        "limit_value": limit,
                    }
                    events.emit(
                        session, self.ctx, events.QUOTA_THRESHOLD, data, project=base["project"]
                    )
                    told += 1
        return told

    def _keys_with_limits(self, session: Session, key_ids: list[str]) -> dict[str, tables.Key]:
        """The keys among `key_ids` that carry limits of their own, read in batches."""
        found: dict[str, tables.Key] = {}
        for start in range(0, len(key_ids), BATCH):
            query = select(tables.Key).where(tables.Key.id.in_(key_ids[start : start + BATCH]))
            found.update((row.id, row) for row in session.scalars(query) if row.limits)
        return found

    def _counted(self, session: Session, day_start: datetime) -> list[_Counted]:
        bucket = tables.UsageBucket
        valid = bucket.code == Code.VALID
        query = (
            select(
                bucket.key_id,
                bucket.project_id,
                func.sum(case((valid, bucket.requests), else_=0)),
                func.sum(case((valid | (bucket.code == REPORTED), bucket.units), else_=0)),
            )
            .where(bucket.granularity == "day", bucket.bucket_start == day_start)
            .group_by(bucket.key_id, bucket.project_id)
            .order_by(bucket.key_id)
        )
        return [
            _Counted(key_id, project_id, int(requests or 0), int(units or 0))
            for key_id, project_id, requests, units in session.execute(query)
        ]

    # --- marks -----------------------------------------------------------------------------

    def _mark(
        self, session: Session, subject: str, moment: str, window: str, now: datetime
    ) -> bool:
        """True for the one caller that marks this moment first."""
        values = {"subject": subject, "moment": moment, "window": window, "time": now}
        table = tables.Base.metadata.tables["alert_marks"]
        dialect = session.get_bind().dialect.name
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        statement = insert.values(values).on_conflict_do_nothing().returning(table.c.subject)
        return session.execute(statement).first() is not None


def _stamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
