"""The change feed between instances that share a database: every committed change to a key,
project (its plan included) or token reaches every instance, whatever order transactions
commit in.

Every write appends a `changes` row in its own transaction (`record_change`), so the table is a
durable log of what changed. Reading it as "ids above the last one seen" is not enough: a
transaction takes its id when it inserts the row, not when it commits, so id 41 can commit
after id 42 has been read, and would be skipped for good. So the reader also keeps the ids
below the highest one seen that it has not seen yet (*gaps*), and asks for them again on every
poll, alongside the new ones, for `GAP_SECONDS`. A gap is either a transaction still running
or one rolled back (its id is never used); waiting five minutes covers any write Llavero makes.
A feed that starts counts the missing ids among the last `LOOKBACK_IDS` as gaps too: they may
be transactions that were running while it started.

On PostgreSQL the same transaction also sends `NOTIFY llavero_changes, 'kind:target'`, which
the server delivers to every listener when, and only if, the transaction commits: each instance
(`llavero.store.listener`) applies it at once, so a revocation reaches the others in milliseconds.
The table poll stays the catch-up: after the listener reconnects, and for anything a
notification cannot carry. On SQLite (one file on one machine) the poll alone does it, within
`LLAVERO_CHANGE_POLL_SECONDS`.

Whatever still slips through (a transaction open longer than `GAP_SECONDS` while the listener
was down) lives no longer than `LLAVERO_CACHE_TTL_SECONDS`: every cached record is read again
after that (`llavero.core.cache`). docs/deployment.md explains it for operators, and
docs/benchmarks.md has the figures (`python -m bench.revocation`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from llavero.core.background import Periodic
from llavero.core.clock import Clock
from llavero.store import Database, tables
from llavero.store.listener import Listener

log = logging.getLogger("llavero.changes")
KEY = "key"
PROJECT = "project"
TOKEN = "token"
CHANNEL: Final = "llavero_changes"
GAP_SECONDS: Final = 300.0
LOOKBACK_IDS: Final = 1_000
MAX_GAPS: Final = 10_000
BATCH: Final = 10_000

Apply = Callable[[str, str], None]


def record_change(session: Session, clock: Clock, kind: str, target_id: str) -> None:
    """Part of the caller's transaction: the row and the notification commit with it or not."""
    session.add(tables.Change(time=clock.now(), kind=kind, target_id=target_id))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, f"{kind}:{target_id}")))


def parse_notification(payload: str) -> tuple[str, str] | None:
    """`kind:target` as `record_change` sends it; None for anything else on the channel."""
    kind, sep, target_id = payload.partition(":")
    return (kind, target_id) if sep and kind in (KEY, PROJECT, TOKEN) and target_id else None


class ChangeFeed:
    def __init__(
        self,
        db: Database,
        apply: Apply,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
        listen: bool = True,
    ) -> None:
        self._db = db
        self._apply = apply
        self._monotonic = monotonic
        self._thread = Periodic("llavero-changes", interval, self.poll, log)
        self._interval = interval
        self._listen = listen and db.engine.dialect.name == "postgresql"
        self._listener: Listener | None = None
        with db.reading() as session:
            self._high = session.scalar(select(func.max(tables.Change.id))) or 0
            recent = set(
                session.scalars(
                    select(tables.Change.id).where(tables.Change.id > self._high - LOOKBACK_IDS)
                )
            )
        until = monotonic() + GAP_SECONDS
        first = max(self._high - LOOKBACK_IDS + 1, 1)
        # id not seen yet -> when it stops being waited for
        self._gaps: dict[int, float] = {
            i: until for i in range(first, self._high) if i not in recent
        }

    @property
    def gaps(self) -> int:
        """How many ids below the highest seen are still awaited (shown by tests)."""
        return len(self._gaps)

    def poll(self) -> int:
        """Apply the changes committed since the last poll, late commits included; returns how
        many were read. A change whose apply fails is read again on the next poll."""
        now = self._monotonic()
        self._gaps = {i: until for i, until in self._gaps.items() if until > now}
        with self._db.reading() as session:
            rows = session.execute(
                select(tables.Change.id, tables.Change.kind, tables.Change.target_id)
                .where(self._unseen())
                .order_by(tables.Change.id)
                .limit(BATCH)
            ).all()
        for change_id, kind, target_id in rows:
            self._apply(kind, target_id)
            self._seen(change_id, now + GAP_SECONDS)
        return len(rows)

    def _unseen(self) -> ColumnElement[bool]:
        newer = tables.Change.id > self._high
        return or_(newer, tables.Change.id.in_(sorted(self._gaps))) if self._gaps else newer

    def _seen(self, change_id: int, until: float) -> None:
        if self._gaps.pop(change_id, None) is not None or change_id <= self._high:
            return
        first = max(self._high + 1, change_id - MAX_GAPS)
        self._gaps.update(dict.fromkeys(range(first, change_id), until))
        if len(self._gaps) > MAX_GAPS:  # a burst of rollbacks: wait for the newest ones only
            self._gaps = dict(sorted(self._gaps.items())[-MAX_GAPS:])
        self._high = change_id

    def notified(self, payload: str) -> None:
        """A notification from PostgreSQL: apply what it names now; the poll confirms it."""
        change = parse_notification(payload)
        if change is not None:
            self._apply(*change)

    def start(self) -> None:
        """Poll every interval (0 = off); on PostgreSQL also listen, and catch up from the
        table on every (re)connect of the listener."""
        if self._interval <= 0:
            return
        self._thread.start()
        if self._listen and self._listener is None:
            self._listener = Listener(self._db.engine, CHANNEL, self.notified, self._thread.wake)
            self._listener.start()

    @property
    def listener(self) -> Listener | None:
        return self._listener

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        self._thread.stop()
