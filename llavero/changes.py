"""The change feed between instances that share a database.

Every write to a key or project appends a `changes` row in its own transaction. Each instance
polls for rows newer than the last it saw and drops what they name from its cache, so a key
revoked through one instance stops verifying on every instance within one poll interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llavero.background import Periodic
from llavero.clock import Clock
from llavero.store import Database, tables

log = logging.getLogger("llavero.changes")
KEY = "key"
PROJECT = "project"
TOKEN = "token"


def record_change(session: Session, clock: Clock, kind: str, target_id: str) -> None:
    session.add(tables.Change(time=clock.now(), kind=kind, target_id=target_id))


class ChangeFeed:
    def __init__(self, db: Database, apply: Callable[[str, str], None], interval: float) -> None:
        self._db = db
        self._apply = apply
        self._thread = Periodic("llavero-changes", interval, self.poll, log)
        with db.reading() as session:
            self._last_id = session.scalar(select(func.max(tables.Change.id))) or 0

    def poll(self) -> int:
        """Apply the changes made since the last poll; returns how many were read."""
        with self._db.reading() as session:
            rows = session.execute(
                select(tables.Change.id, tables.Change.kind, tables.Change.target_id)
                .where(tables.Change.id > self._last_id)
                .order_by(tables.Change.id)
                .limit(10_000)
            ).all()
        for change_id, kind, target_id in rows:
            self._apply(kind, target_id)
            self._last_id = change_id
        return len(rows)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop()
