"""The limiter `LLAVERO_RATE_LIMIT_BACKEND` names (docs/limits.md, "Where counters live")."""

from __future__ import annotations

from typing import Final

from llavero.config import Settings
from llavero.core.limits import Limiter, MemoryLimiter
from llavero.store import Database
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.redis_limiter import RedisLimiter

BACKENDS: Final = ("database", "redis", "memory")


def create_limiter(settings: Settings, db: Database | None = None) -> Limiter:
    """The configured limiter; `database` needs the service's `db`."""
    backend = settings.rate_limit_backend
    if backend == "memory":
        return MemoryLimiter()
    if backend == "redis":
        return RedisLimiter.from_url(settings.redis_url)
    if backend == "database":
        if db is None:
            raise ValueError("LLAVERO_RATE_LIMIT_BACKEND=database needs the service's database")
        return DatabaseLimiter(db)
    raise ValueError(
        f"LLAVERO_RATE_LIMIT_BACKEND: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}"
    )
