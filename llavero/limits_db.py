"""Rate-limit counters in the database: one truth for every process on one database.

`llavero serve` (all its workers), `llavero gateway` and the middleware in your own apps each
count in the same `rate_counters` rows, so a limit holds across them exactly, with no Redis. The
price is one short write transaction per counted verify (docs/limits.md has the figures).

A hit is all-or-nothing inside one transaction: each counter that spends something is bumped by
an upsert whose `WHERE` refuses to pass the limit; if any refuses, the transaction rolls back and
nothing is counted. The first statement is a write, so SQLite takes its write lock at once (no
reader-to-writer upgrade that could fail under contention) and PostgreSQL locks each counter's
row until commit: two processes can never both take the last unit.

When the database fails, answers come from in-process counters, as with Redis (`llavero.outage`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anyio.to_thread
from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from llavero.limits import Check, Decision, MemoryLimiter, _decide, window_end
from llavero.outage import Outage
from llavero.store import Database, tables

log = logging.getLogger("llavero.limits")
Counter = tables.RateCounter
ENDED_KEPT_SECONDS = 60
ATTEMPTS = 3


class Refused(Exception):
    """A counter would pass its limit: roll the whole hit back."""


class DatabaseLimiter:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._insert = sqlite.insert if db.is_sqlite else postgresql.insert
        self._fallback = MemoryLimiter()
        self.outage = Outage("rate limit backend database", log)

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        if not checks:
            return _decide(checks, [], now, consume=True)
        if not self.outage.may_try():
            return self._fallback.hit(checks, now)
        try:
            decision = self._hit(checks, now)
        except SQLAlchemyError as exc:
            self.outage.failed(exc)
            return self._fallback.hit(checks, now)
        self.outage.succeeded()
        return decision

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        return await anyio.to_thread.run_sync(self.hit, checks, now)

    def add(self, checks: Sequence[Check], now: float) -> None:
        spent = [check for check in checks if check.amount > 0]
        if not spent:
            return
        if not self.outage.may_try():
            self._fallback.add(spent, now)
            return
        try:
            with self._db.transaction() as session:
                for check in spent:
                    self._bump(session, check, now, None)
        except SQLAlchemyError as exc:
            self.outage.failed(exc)
            self._fallback.add(spent, now)
            return
        self.outage.succeeded()

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        if not checks or not self.outage.may_try():
            return self._fallback.peek(checks, now)
        try:
            with self._db.reading() as session:
                used = self._read(session, checks, now)
        except SQLAlchemyError as exc:
            self.outage.failed(exc)
            return self._fallback.peek(checks, now)
        self.outage.succeeded()
        return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        self._fallback.close()

    def drop_ended(self, now: float) -> int:
        """Remove counters whose window ended a while ago; returns how many."""
        with self._db.transaction() as session:
            result = session.execute(
                delete(Counter).where(Counter.window_end < now - ENDED_KEPT_SECONDS)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def _hit(self, checks: Sequence[Check], now: float) -> Decision:
        """Count, or find out why not. A refusal reads the counters again to answer; should a
        concurrent window change make them pass, the hit is simply tried again."""
        for _ in range(ATTEMPTS):
            try:
                with self._db.transaction() as session:
                    used = self._consume(session, checks, now)
                return _decide(checks, used, now, consume=True)
            except Refused:
                pass
            with self._db.reading() as session:
                decision = _decide(checks, self._read(session, checks, now), now, consume=True)
            if not decision.allowed:
                return decision
        return decision._replace(allowed=False, code="RATE_LIMITED")

    def _consume(self, session: Session, checks: Sequence[Check], now: float) -> list[int]:
        """Bump every spending counter (writes first), then read the zero-amount ones."""
        used: list[int | None] = [None] * len(checks)
        for index, check in enumerate(checks):
            if check.amount > check.limit:
                raise Refused
            if check.amount > 0:
                count = self._bump(session, check, now, check.limit)
                if count is None:
                    raise Refused
                used[index] = count - check.amount
        rest = [(index, check) for index, check in enumerate(checks) if used[index] is None]
        if rest:
            counts = self._read(session, [check for _, check in rest], now)
            for (index, check), count in zip(rest, counts, strict=True):
                if count >= check.limit:
                    raise Refused
                used[index] = count
        return [count or 0 for count in used]

    def _bump(self, session: Session, check: Check, now: float, limit: int | None) -> int | None:
        """The counter after adding `check.amount`, or None when that would pass `limit`."""
        statement = self._insert(Counter).values(
            name=check.name,
            scope=check.scope,
            window_end=window_end(check.name, now),
            count=check.amount,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[Counter.name, Counter.scope, Counter.window_end],
            set_={"count": Counter.count + check.amount},
            where=None if limit is None else Counter.count + check.amount <= limit,
        ).returning(Counter.count)
        count = session.execute(upsert).scalar()
        return None if count is None else int(count)

    @staticmethod
    def _read(session: Session, checks: Sequence[Check], now: float) -> list[int]:
        ids = [(check.name, check.scope, window_end(check.name, now)) for check in checks]
        rows = session.execute(
            select(Counter.name, Counter.scope, Counter.window_end, Counter.count).where(
                tuple_(Counter.name, Counter.scope, Counter.window_end).in_(ids)
            )
        ).all()
        counts = {(name, scope, end): count for name, scope, end, count in rows}
        return [int(counts.get(counter_id, 0)) for counter_id in ids]
