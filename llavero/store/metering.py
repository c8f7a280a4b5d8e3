"""The usage meter's writes (`llavero.core.meter.UsageStore`): minute, hour and day buckets
added with one upsert, `last_used_time` moved forward only, old buckets pruned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Table, bindparam, delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from llavero.core.meter import LastUsed
from llavero.store import tables
from llavero.store.db import Database

BUCKETS: Final[Table] = tables.Base.metadata.tables["usage_buckets"]
KEYS: Final[Table] = tables.Base.metadata.tables["keys"]


class UsageWriter:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rows: list[dict[str, Any]], last_used: LastUsed) -> None:
        with self.db.transaction() as session:
            connection = session.connection()
            self._write_buckets(connection, rows)
            self._write_last_used(connection, last_used)

    def prune(self, cutoffs: Mapping[str, datetime]) -> int:
        deleted = 0
        with self.db.transaction() as session:
            connection = session.connection()
            for granularity, cutoff in cutoffs.items():
                result = connection.execute(
                    delete(BUCKETS).where(
                        BUCKETS.c.granularity == granularity, BUCKETS.c.bucket_start < cutoff
                    )
                )
                deleted += result.rowcount
        return deleted

    def _write_buckets(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            connection.execute(_upsert(connection.dialect.name), rows)

    def _write_last_used(self, connection: Connection, last_used: LastUsed) -> None:
        if not last_used:
            return
        rows = [
            {"b_key_id": key_id, "b_time": datetime.fromtimestamp(when, UTC), "b_ip": ip}
            for key_id, (when, ip) in sorted(last_used.items())
        ]
        statement = (
            update(KEYS)
            .where(
                KEYS.c.id == bindparam("b_key_id"),
                or_(KEYS.c.last_used_time.is_(None), KEYS.c.last_used_time < bindparam("b_time")),
            )
            .values(last_used_time=bindparam("b_time"), last_used_ip=bindparam("b_ip"))
        )
        connection.execute(statement, rows)


def _upsert(dialect: str) -> Insert:
    """`INSERT … ON CONFLICT DO UPDATE SET requests = requests + excluded.requests`: adding to a
    bucket is one statement on SQLite and PostgreSQL, safe with several instances."""
    if dialect == "sqlite":
        sqlite_insert = sqlite.insert(BUCKETS)
        return sqlite_insert.on_conflict_do_update(
            index_elements=_primary_key(),
            set_=_added(sqlite_insert.excluded),
        )
    if dialect == "postgresql":
        pg_insert = postgresql.insert(BUCKETS)
        return pg_insert.on_conflict_do_update(
            index_elements=_primary_key(),
            set_=_added(pg_insert.excluded),
        )
    raise RuntimeError(f"usage metering supports SQLite and PostgreSQL, not {dialect}")


def _primary_key() -> list[str]:
    return [column.name for column in BUCKETS.primary_key.columns]


def _added(excluded: Any) -> dict[str, Any]:
    return {
        "requests": BUCKETS.c.requests + excluded.requests,
        "units": BUCKETS.c.units + excluded.units,
    }
