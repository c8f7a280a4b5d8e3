"""Rate-limit counters in the database: one truth for every process on one database.

`llavero serve` (all its workers), `llavero gateway` and the middleware in your own apps each
count in the same `rate_counters` rows, so a limit holds across them exactly, with no Redis. The
price is one short write transaction per counted verify (docs/limits.md has the figures).

A hit is all-or-nothing inside one transaction: each counter that spends something is bumped by
an upsert whose `WHERE` refuses to pass the limit; if any refuses, the transaction rolls back and
nothing is counted. The first statement is a write, so SQLite takes its write lock at once (no
reader-to-writer upgrade that could fail under contention) and PostgreSQL locks each counter's
row until commit: two processes can never both take the last unit.

When the database fails, answers come from in-process counters, as with Redis
(`llavero.store.outage`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, Final

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from llavero.core.codes import Code
from llavero.core.limits import Check, Decision, MemoryLimiter, _decide, window_end
from llavero.store import Database
from llavero.store.outage import Outage

log = logging.getLogger("llavero.limits")
VERIFY_THREADS: Final = 40  # as many as the shared threadpool, for verifies only
ENDED_KEPT_SECONDS = 60
ATTEMPTS = 3
# Plain SQL on the driver's connection: SQLAlchemy's statement building cost ten times the
# database's own work here (a verify is a few primary-key statements). One spelling serves
# SQLite and PostgreSQL; `?` becomes the driver's placeholder.
BUMP = (
    "INSERT INTO rate_counters (name, scope, window_end, count) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name, scope, window_end) DO UPDATE SET count = rate_counters.count + ? "
    "WHERE rate_counters.count + ? <= ? RETURNING count"
)
ADD = (
    "INSERT INTO rate_counters (name, scope, window_end, count) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (name, scope, window_end) DO UPDATE SET count = rate_counters.count + ?"
)
DROP = "DELETE FROM rate_counters WHERE window_end < ?"


@cache
def read_sql(count: int) -> str:
    one = "(name = ? AND scope = ? AND window_end = ?)"
    where = " OR ".join([one] * count)
    return f"SELECT name, scope, window_end, count FROM rate_counters WHERE {where}"


class Refused(Exception):
    """A counter would pass its limit: roll the whole hit back."""


class DatabaseLimiter:
    def __init__(self, db: Database) -> None:
        self._db = db
        dialect = db.engine.dialect
        self._qmark = dialect.paramstyle == "qmark"
        self._errors: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            dialect.loaded_dbapi.Error,
        )
        self._fallback = MemoryLimiter()
        self.outage = Outage("rate limit backend database", log)
        self._threads: anyio.CapacityLimiter | None = None

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        decided = self._without_database(checks, now)
        return decided if decided is not None else self._attempt(checks, now)

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit` from the event loop. While the database is down, from memory, in the loop;
        otherwise in threads of this limiter's own: API calls stuck on a hung database fill the
        shared threadpool, and a cached verify must not queue behind them (docs/security.md,
        "A hung or dead database")."""
        decided = self._without_database(checks, now)
        if decided is not None:
            return decided
        if self._threads is None:  # made in the running event loop
            self._threads = anyio.CapacityLimiter(VERIFY_THREADS)
        return await anyio.to_thread.run_sync(self._attempt, checks, now, limiter=self._threads)

    def _without_database(self, checks: Sequence[Check], now: float) -> Decision | None:
        """The answer when the database is not to be asked (nothing to count, or an outage
        whose probe is another caller's), or None: ask it."""
        if not checks:
            return _decide(checks, [], now, consume=True)
        if not self.outage.may_try():
            return self._fallback.hit(checks, now)
        return None

    def _attempt(self, checks: Sequence[Check], now: float) -> Decision:
        try:
            decision = self._hit(checks, now)
        except self._errors as exc:
            self.outage.failed(exc)
            return self._fallback.hit(checks, now)
        self.outage.succeeded()
        return decision

    def add(self, checks: Sequence[Check], now: float) -> None:
        spent = [check for check in checks if check.amount > 0]
        if not spent:
            return
        if not self.outage.may_try():
            self._fallback.add(spent, now)
            return
        try:
            with self._transaction() as cursor:
                for name, scope, _, amount in spent:
                    end = window_end(name, now)
                    cursor.execute(self._sql(ADD), (name, scope, end, amount, amount))
        except self._errors as exc:
            self.outage.failed(exc)
            self._fallback.add(spent, now)
            return
        self.outage.succeeded()

    def peek(self, checks: Sequence[Check], now: float) -> Decision:
        if not checks or not self.outage.may_try():
            return self._fallback.peek(checks, now)
        try:
            with self._transaction() as cursor:
                used = self._read(cursor, checks, now)
        except self._errors as exc:
            self.outage.failed(exc)
            return self._fallback.peek(checks, now)
        self.outage.succeeded()
        return _decide(checks, used, now, consume=False)

    def close(self) -> None:
        self._fallback.close()

    def drop_ended(self, now: float) -> int:
        """Remove counters whose window ended a while ago; returns how many."""
        with self._transaction() as cursor:
            cursor.execute(self._sql(DROP), (int(now) - ENDED_KEPT_SECONDS,))
            return max(0, int(cursor.rowcount))

    def _hit(self, checks: Sequence[Check], now: float) -> Decision:
        """Count, or find out why not. A refusal reads the counters again to answer; should a
        concurrent window change make them pass, the hit is simply tried again."""
        for _ in range(ATTEMPTS):
            try:
                with self._transaction() as cursor:
                    used = self._consume(cursor, checks, now)
                return _decide(checks, used, now, consume=True)
            except Refused:
                pass
            with self._transaction() as cursor:
                decision = _decide(checks, self._read(cursor, checks, now), now, consume=True)
            if not decision.allowed:
                return decision
        return decision._replace(allowed=False, code=Code.RATE_LIMITED, retry_after=1)

    def _consume(self, cursor: Any, checks: Sequence[Check], now: float) -> list[int]:
        """Bump every spending counter (writes first), then read the zero-amount ones."""
        used: list[int | None] = [None] * len(checks)
        bump = self._sql(BUMP)
        for index, (name, scope, limit, amount) in enumerate(checks):
            if amount > limit:
                raise Refused
            if amount > 0:
                cursor.execute(
                    bump, (name, scope, window_end(name, now), amount, amount, amount, limit)
                )
                row = cursor.fetchone()
                if row is None:
                    raise Refused
                used[index] = int(row[0]) - amount
        rest = [(index, check) for index, check in enumerate(checks) if used[index] is None]
        if rest:
            counts = self._read(cursor, [check for _, check in rest], now)
            for (index, check), count in zip(rest, counts, strict=True):
                if count >= check.limit:
                    raise Refused
                used[index] = count
        return [count or 0 for count in used]

    def _read(self, cursor: Any, checks: Sequence[Check], now: float) -> list[int]:
        ids = [(check.name, check.scope, window_end(check.name, now)) for check in checks]
        cursor.execute(self._sql(read_sql(len(ids))), [part for id_ in ids for part in id_])
        counts = {(name, scope, int(end)): int(count) for name, scope, end, count in cursor}
        return [counts.get(counter_id, 0) for counter_id in ids]

    def _sql(self, statement: str) -> str:
        return statement if self._qmark else statement.replace("?", "%s")

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A driver cursor in one transaction: committed if the block ends, else rolled back."""
        connection = self._db.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                yield cursor
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.close()
        finally:
            connection.close()
