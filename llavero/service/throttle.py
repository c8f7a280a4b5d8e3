"""The sign-in throttle: per (email, client address), with backoff rather than a lockout.

An attempt is counted before its password is checked, by one conditional write that the
database arbitrates between instances and threads: an INSERT that does nothing when the row
exists, or an UPDATE that applies only to the row as it was read (compare and set). So N
concurrent guesses are N counted attempts, and at most `FREE_ATTEMPTS` of them are evaluated
before the backoff applies. The first five attempts are free; after them each attempt waits
for `delay_after(n)` since the previous one: 1, 2, 4, 8 minutes, then 15. A success from an
address (an IPv6 /64) clears that address's count only, so nobody can keep a user out from
elsewhere. Rows a day old are purged (docs/security.md, "Account enumeration and throttling").
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llavero.errors import ResourceExhausted
from llavero.service.context import Context
from llavero.service.models import Model
from llavero.store import tables

FREE_ATTEMPTS: Final = 5
FIRST_DELAY: Final = timedelta(minutes=1)
MAX_DELAY: Final = timedelta(minutes=15)
FORGET_AFTER: Final = timedelta(hours=24)
MAX_CLAIM_TRIES: Final = 50
IP_LENGTH: Final = 64
IPV6_PREFIX: Final = 64


class SigninThrottle(Model):
    """`retry_time` is when the next attempt from `ip` may be evaluated."""

    email: str
    ip: str
    failures: int
    last_failure_time: datetime
    retry_time: datetime


@dataclass(frozen=True, slots=True)
class _Seen:
    failures: int
    last: datetime
    retry: datetime


def delay_after(attempts: int) -> timedelta:
    if attempts < FREE_ATTEMPTS:
        return timedelta(0)
    doubled: timedelta = FIRST_DELAY * 2 ** min(attempts - FREE_ATTEMPTS, 10)
    return min(doubled, MAX_DELAY)


def address_key(ip: str | None) -> str:
    """The client address as counted: an IPv6 address by its /64 (one host holds a whole
    /64, so counting single addresses would let it guess without end); "" when unknown."""
    try:
        address = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return (ip or "")[:IP_LENGTH]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


def to_model(row: tables.SigninThrottle) -> SigninThrottle:
    return SigninThrottle(
        email=row.email,
        ip=row.ip,
        failures=row.failures,
        last_failure_time=row.last_failure_time,
        retry_time=row.retry_time,
    )


class Throttle:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def claim(self, email: str, ip: str | None) -> None:
        """Count one attempt for (email, ip), or refuse it (429) while the backoff runs.

        The row is read in one transaction and changed in another by a write that applies
        only if nobody changed it in between; a lost race reads again. A write-only
        transaction is also what SQLite needs: a read transaction cannot become a writer once
        another connection has written."""
        address = address_key(ip)
        for _ in range(MAX_CLAIM_TRIES):
            now = self.ctx.clock.now()
            seen = self._read(email, address)
            if seen is not None and now - seen.last <= FORGET_AFTER and now < seen.retry:
                raise _refusal(seen.retry - now)
            attempts = 1 if seen is None or now - seen.last > FORGET_AFTER else seen.failures + 1
            with self.ctx.db.transaction() as session:
                if _write(session, email, address, seen, attempts, now):
                    return
        raise _refusal(FIRST_DELAY)

    def clear(self, session: Session, email: str, ip: str | None = None) -> int:
        """Forget the attempts of `email` from `ip` (from every address when `ip` is None)."""
        query = delete(tables.SigninThrottle).where(tables.SigninThrottle.email == email)
        if ip is not None:
            query = query.where(tables.SigninThrottle.ip == address_key(ip))
        return _rowcount(session.execute(query))

    def list(self, email: str | None = None) -> list[SigninThrottle]:
        """Counts of the last day, newest first; those whose backoff runs have a future
        `retry_time`."""
        query = select(tables.SigninThrottle).where(
            tables.SigninThrottle.last_failure_time >= self.ctx.clock.now() - FORGET_AFTER
        )
        if email is not None:
            query = query.where(tables.SigninThrottle.email == email)
        query = query.order_by(tables.SigninThrottle.last_failure_time.desc())
        with self.ctx.db.reading() as session:
            return [to_model(row) for row in session.scalars(query.limit(1000))]

    def purge(self) -> int:
        """Drop counts whose last attempt is more than a day old: they would be forgotten."""
        cutoff = self.ctx.clock.now() - FORGET_AFTER
        with self.ctx.db.transaction() as session:
            return _rowcount(
                session.execute(
                    delete(tables.SigninThrottle).where(
                        tables.SigninThrottle.last_failure_time < cutoff
                    )
                )
            )

    def _read(self, email: str, address: str) -> _Seen | None:
        with self.ctx.db.reading() as session:
            row = session.get(tables.SigninThrottle, (email, address))
            return (
                None if row is None else _Seen(row.failures, row.last_failure_time, row.retry_time)
            )


def _write(
    session: Session, email: str, address: str, seen: _Seen | None, attempts: int, now: datetime
) -> bool:
    """One conditional write: True when it applied, False when another attempt won the race."""
    values = {
        "failures": attempts,
        "last_failure_time": now,
        "retry_time": now + delay_after(attempts),
    }
    table = tables.SigninThrottle
    if seen is None:
        dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
        insert = dialect.insert(table).values(email=email, ip=address, **values)
        created = insert.on_conflict_do_nothing().returning(table.failures)
        return session.execute(created).first() is not None
    changed = session.execute(
        update(table)
        .where(
            table.email == email,
            table.ip == address,
            table.failures == seen.failures,
            table.last_failure_time == seen.last,
        )
        .values(**values)
    )
    return _rowcount(changed) == 1


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _refusal(wait: timedelta) -> ResourceExhausted:
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return ResourceExhausted(f"too many failed sign-ins; try again in {minutes} {unit}")
