"""Rate-limit counters in the database: one truth for every process on one database.

`llavero serve` (all its workers), `llavero gateway` and the middleware in your own apps each
count in the same `rate_counters` rows, so no two processes together pass a limit, with no
Redis. A row counts the units *handed out* in its window: each process claims a slice of a
window's allowance (a lease) with one conditional upsert whose `WHERE` refuses to pass the
limit, and spends it in memory, so most verifies touch no database at all. A slice is sized to
last the process about `LEASE_SECONDS` at the rate it has been spending (from one unit up to
`MAX_SLICE`), and never more than `1 / SHARE` of what the window had left, so near a limit the
slices shrink to single units and the counting is exact. The sum of what every process may
spend is the row's count, which the `WHERE` keeps at or below the limit; the price is that a
process may refuse while another still holds an unspent slice (at most about `LEASE_SECONDS`
of that process's traffic, and at most `1 / SHARE` of what was left). Unspent slices go back
to the row when the limiter closes; those of an ended window simply end with it.

A hit is all-or-nothing inside one transaction: the claims come first (writes, so SQLite takes
its write lock at once and PostgreSQL locks each row until commit), then the zero-unit counters
are read; if any check refuses, the transaction rolls back and nothing is claimed or spent.

When the database fails, answers come from in-process counters, as with Redis
(`llavero.store.outage`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from llavero.core.codes import Code
from llavero.core.leases import CounterId, Lease, spend
from llavero.core.limits import (
    Check,
    Decision,
    MemoryLimiter,
    _decide,
    window_end,
)
from llavero.store import Database
from llavero.store.counter_sql import ADD, BUMP, DROP, RETURN, read_sql
from llavero.store.flights import Flights
from llavero.store.outage import Outage

log = logging.getLogger("llavero.limits")
VERIFY_THREADS: Final = 40  # as many as the shared threadpool, for verifies only
ENDED_KEPT_SECONDS = 60
ATTEMPTS = 3
LEASE_SECONDS: Final = 0.25  # a slice lasts about this long at the rate the process spends
MAX_SLICE: Final = 4096  # units one claim may take, whatever the rate
SHARE: Final = 8  # a claim takes at most this fraction of what the window had left
IDLE_SECONDS: Final = 5.0  # a slice unspent this long goes back to its row


class Refused(Exception):
    """A counter would pass its limit: roll the whole hit back."""


class DatabaseLimiter:
    def __init__(self, db: Database, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        dialect = db.engine.dialect
        self._qmark = dialect.paramstyle == "qmark"
        self._errors: tuple[type[BaseException], ...] = (
            SQLAlchemyError,
            dialect.loaded_dbapi.Error,
        )
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._leases: dict[CounterId, Lease] = {}
        self._next_end = math.inf  # the earliest window end among the leases
        self._fallback = MemoryLimiter()
        self.outage = Outage("rate limit backend database", log)
        self._threads: anyio.CapacityLimiter | None = None
        self._flights: Flights[Decision] = Flights()

    def hit(self, checks: Sequence[Check], now: float) -> Decision:
        decided = self._from_memory(checks, now)
        return decided if decided is not None else self._attempt(checks, now)

    async def ahit(self, checks: Sequence[Check], now: float) -> Decision:
        """`hit` from the event loop. Spending a slice already held is a few dict operations,
        answered in the loop; a claim runs in threads of this limiter's own: API calls stuck on
        a hung database fill the shared threadpool, and a verify must not queue behind them
        (docs/security.md, "A hung or dead database"); verifies needing the same claim share
        it (`llavero.store.flights`)."""
        key = None
        while True:
            decided = self._from_memory(checks, now)
            if decided is not None:
                return decided
            key = key or tuple(checks)
            waited, shared = await self._flights.outcome(key)
            if not waited:
                return await self._flights.lead(key, lambda: self._claim_in_thread(checks, now))
            if shared is not None and not shared.allowed:
                return shared

    async def _claim_in_thread(self, checks: Sequence[Check], now: float) -> Decision:
        self._threads = self._threads or anyio.CapacityLimiter(VERIFY_THREADS)  # in the loop
        return await anyio.to_thread.run_sync(self._attempt, checks, now, limiter=self._threads)

    def hit_held(self, checks: Sequence[Check], now: float) -> Decision | None:
        """The answer from the slices held, or None; None too while the database is down, as
        asking the outage here would take its probe from the `ahit` that follows, and no
        verify answered this way would ever end the outage."""
        if self.outage.down:
            return None
        with self._lock:
            return self._spend(checks, now)

    def _from_memory(self, checks: Sequence[Check], now: float) -> Decision | None:
        """The answer when the database is not to be asked (nothing to count, slices held
        that cover the request, or an outage whose probe is another caller's), or None."""
        if not checks:
            return _decide(checks, [], now, consume=True)
        if self.outage.down:
            return self._fallback.hit(checks, now) if not self.outage.may_try() else None
        return self.hit_held(checks, now)

    def _spend(self, checks: Sequence[Check], now: float) -> Decision | None:
        """Under the lock: the answer from the held slices (`llavero.core.leases.spend`)."""
        return spend(self._leases, checks, now, self._monotonic())

    def _attempt(self, checks: Sequence[Check], now: float) -> Decision:
        try:
            decision = self._hit(checks, now)
        except self._errors as exc:
            self.outage.failed(exc)
            return self._fallback.hit(checks, now)
        self.outage.succeeded()
        return decision

    def _hit(self, checks: Sequence[Check], now: float) -> Decision:
        """Claim what the held slices lack, then spend. Should another thread of this process
        spend the claim first, or a refusal's counters turn out to pass, try again; the last
        attempt claims the request's own units, which no other thread can spend first."""
        for attempt in range(ATTEMPTS):
            try:
                decided = self._claim(checks, now, whole=attempt == ATTEMPTS - 1)
            except Refused:
                with self._transaction() as cursor:
                    counts = self._read(cursor, checks, now)
                with self._lock:
                    self._saw(checks, now, counts)
                    decided = self._spend(checks, now)
                    if decided is not None:
                        return decided
                    used = [
                        max(0, count - self._lease(check, now).held)
                        for check, count in zip(checks, counts, strict=True)
                    ]
                decision = _decide(checks, used, now, consume=True)
                if not decision.allowed:
                    return decision
                continue
            if decided is not None:
                return decided
        return _decide(checks, [check.limit for check in checks], now, consume=True)._replace(
            code=Code.RATE_LIMITED, retry_after=1
        )

    def _claim(self, checks: Sequence[Check], now: float, *, whole: bool) -> Decision | None:
        """One transaction: a slice for every check whose held units fall short (`whole`: for
        every check, its whole amount), then a look at the zero-unit counters; Refused (all
        rolled back) if any check cannot pass. Then the answer, spent under the same lock as
        the claim is added, so no other thread of the process can take it first (None if one
        spent held units the request counted on but did not claim)."""
        with self._lock:
            self._drop_ended_leases(now)
            wanted = [self._wanted(check, now, whole=whole) for check in checks]
        bump = self._sql(BUMP)
        claimed: list[tuple[Check, int, int]] = []  # (check, units claimed, row's count after)
        with self._transaction() as cursor:
            for check, (need, size) in zip(checks, wanted, strict=True):
                if need <= 0:
                    continue
                if need > check.limit:
                    raise Refused
                name, scope, limit, _ = check
                end = window_end(name, now)
                for units in dict.fromkeys((size, need)):  # the slice, else just what is needed
                    cursor.execute(bump, (name, scope, end, units, units, units, limit))
                    row = cursor.fetchone()
                    if row is not None:
                        claimed.append((check, units, int(row[0])))
                        break
                else:
                    raise Refused
            zero = [check for check in checks if check.amount == 0]
            counts = self._read(cursor, zero, now) if zero else []
            for check, count in zip(zero, counts, strict=True):
                if count - self._held(check, now) >= check.limit:
                    raise Refused
        with self._lock:
            at = self._monotonic()
            for check, units, count in claimed:
                lease = self._lease(check, now)
                lease.held += units
                lease.seen, lease.seen_at = count, at
                # Spent within a lease period: the next slice doubles; else it halves.
                fast = at - lease.claimed_at < LEASE_SECONDS
                lease.size = min(MAX_SLICE, lease.size * 2) if fast else max(1, lease.size // 2)
                lease.claimed_at = at
            self._saw(zero, now, counts)
            return self._spend(checks, now)

    def _wanted(self, check: Check, now: float, *, whole: bool) -> tuple[int, int]:
        """Units the held slice lacks for `check` (all of them if `whole`: other threads may
        spend what is held before this claim commits), and the slice to claim for them."""
        lease = self._lease(check, now)
        need = check.amount if whole else check.amount - lease.held
        if check.amount == 0 or need <= 0:
            return 0, 0
        share = max(0, check.limit - lease.seen) // SHARE
        return need, max(need, min(lease.size * max(1, check.amount), share))

    def _lease(self, check: Check, now: float) -> Lease:
        counter = (check.name, check.scope, window_end(check.name, now))
        lease = self._leases.get(counter)
        if lease is None:
            lease = self._leases[counter] = Lease()
            self._next_end = min(self._next_end, counter[2])
        return lease

    def _saw(self, checks: Sequence[Check], now: float, counts: Sequence[int]) -> None:
        at = self._monotonic()
        for check, count in zip(checks, counts, strict=True):
            lease = self._lease(check, now)
            lease.seen, lease.seen_at = count, at

    def _drop_ended_leases(self, now: float) -> None:
        """Forget the leases of ended windows (their unspent units ended with the window); a
        scan only once the earliest window held has ended."""
        if now < self._next_end:
            return
        for counter in [counter for counter in self._leases if counter[2] <= now]:
            del self._leases[counter]
        self._next_end = min((counter[2] for counter in self._leases), default=math.inf)

    def add(self, checks: Sequence[Check], now: float) -> None:
        """Spend from the held slices first; what they do not cover goes to the rows."""
        spent: list[Check] = []
        with self._lock:
            for check in checks:
                if check.amount <= 0:
                    continue
                lease = self._leases.get((check.name, check.scope, window_end(check.name, now)))
                covered = min(check.amount, lease.held) if lease is not None else 0
                if lease is not None:
                    lease.held -= covered
                if check.amount > covered:
                    spent.append(check._replace(amount=check.amount - covered))
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
        """Every process's use as the rows show it, less this process's unspent slices (other
        processes' unspent slices count as used: they may be spent any moment)."""
        if not checks or not self.outage.may_try():
            return self._fallback.peek(checks, now)
        try:
            with self._transaction() as cursor:
                counts = self._read(cursor, checks, now)
        except self._errors as exc:
            self.outage.failed(exc)
            return self._fallback.peek(checks, now)
        self.outage.succeeded()
        with self._lock:
            held = [self._held(check, now) for check in checks]
        used = [max(0, count - units) for count, units in zip(counts, held, strict=True)]
        return _decide(checks, used, now, consume=False)

    def _held(self, check: Check, now: float) -> int:
        lease = self._leases.get((check.name, check.scope, window_end(check.name, now)))
        return lease.held if lease is not None else 0

    def close(self) -> None:
        """Give every unspent slice back to its row."""
        self.give_back(math.inf)
        with self._lock:
            self._leases.clear()
            self._next_end = math.inf
        self._fallback.close()

    def give_back(self, idle_seconds: float = IDLE_SECONDS) -> int:
        """Return the unspent units of slices not spent from for `idle_seconds` (at every
        heartbeat: a process gone quiet holds no allowance another one needs); returns how many
        units. A row whose window ended meanwhile is simply not found."""
        idle_since = self._monotonic() - idle_seconds
        with self._lock:
            unspent = []
            for (name, scope, end), lease in self._leases.items():
                last = max(lease.spent_at, lease.claimed_at)
                if lease.held > 0 and (idle_seconds == math.inf or last < idle_since):
                    unspent.append((lease.held, name, scope, end))
                    lease.held = 0
        if not unspent or self.outage.down:
            return 0
        try:
            with self._transaction() as cursor:
                cursor.executemany(self._sql(RETURN), unspent)
        except self._errors as exc:
            log.warning("could not return unspent rate-limit slices: %s", type(exc).__name__)
            return 0
        return sum(units for units, *_ in unspent)

    def drop_ended(self, now: float) -> int:
        """Remove counters whose window ended a while ago; returns how many."""
        with self._transaction() as cursor:
            cursor.execute(self._sql(DROP), (int(now) - ENDED_KEPT_SECONDS,))
            return max(0, int(cursor.rowcount))

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
