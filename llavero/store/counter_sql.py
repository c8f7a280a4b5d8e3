"""The statements of the database limiter (`llavero.store.db_limiter`) on `rate_counters`.

Plain SQL on the driver's connection: SQLAlchemy's statement building cost ten times the
database's own work here (a verify is a few primary-key statements). One spelling serves
SQLite and PostgreSQL; `?` becomes the driver's placeholder.
"""

from __future__ import annotations

from functools import cache

RETURN = (
    "UPDATE rate_counters SET count = count - ? WHERE name = ? AND scope = ? AND window_end = ?"
)
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
