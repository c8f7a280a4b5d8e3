"""Engines and migrations. SQLite runs in WAL mode with a busy timeout so that the server, the
CLI and the usage flusher can share one file.

A database that is down or hung must cost a caller seconds, not the whole server: connecting,
waiting for any answer and waiting for a pooled connection each have a timeout
(`DatabaseTimeouts`, from the `LLAVERO_DATABASE_*_TIMEOUT_SECONDS` settings), and every unit of
work maps running out of one to `Unavailable` (503 UNAVAILABLE) in one place, `Database._work`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from llavero.errors import Unavailable
from llavero.store.guard import guard_text

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("llavero.store")


@dataclass(frozen=True, slots=True)
class DatabaseTimeouts:
    """Seconds: to open a connection, to wait for any one answer, to wait for a free pooled
    connection. The answer timeout is also PostgreSQL's own `statement_timeout`; `None` (for
    migrations, which may rightly take long) sets no limit."""

    connect: float = 3.0
    statement: float | None = 5.0
    pool: float = 3.0


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for the server after `answer_timeout` seconds.

    PostgreSQL's `statement_timeout` cannot help when the server (or a proxy in front of it)
    stops answering: the wait is on this side. Every wait of psycopg (queries, commits, the
    pool's ping) goes through `wait`; past the deadline the connection is closed, so the pool
    discards it, and the caller gets an OperationalError."""

    answer_timeout: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        limit = timeout if timeout is not None else self.answer_timeout
        try:
            return super().wait(gen, interval, limit)
        except psycopg.errors._WaitTimeout:  # the documented way a bounded wait ends
            self.pgconn.finish()
            raise psycopg.OperationalError(
                f"the database did not answer within {limit} s"
            ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _postgres_engine(url: str, timeouts: DatabaseTimeouts) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=timeouts.pool,
        connect_args={"connect_timeout": max(1, round(timeouts.connect))},
    )

    @event.listens_for(engine, "do_connect")
    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.answer_timeout = timeouts.statement
        return connection

    @event.listens_for(engine, "connect")
    def server_side_timeout(dbapi_connection: Any, _record: Any) -> None:
        milliseconds = int(timeouts.statement * 1000) if timeouts.statement else 0  # 0: none
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {milliseconds}")
        dbapi_connection.commit()  # a SET in a transaction rolled back would be undone

    return engine


def create_db_engine(url: str, timeouts: DatabaseTimeouts | None = None) -> Engine:
    timeouts = timeouts or DatabaseTimeouts()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pooled: dict[str, Any] = {}  # an in-memory database has one connection, no pool
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            pooled["pool_timeout"] = timeouts.pool
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pooled)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if make_url(url).get_driver_name() == "psycopg":
        return _postgres_engine(url, timeouts)
    return create_engine(url, pool_pre_ping=True, pool_timeout=timeouts.pool)


def is_unavailable(exc: BaseException) -> bool:
    """The database is down, hung, too slow or out of connections, as opposed to a bug: no
    free pooled connection, or PostgreSQL refusing, dropping or timing out a connection."""
    if isinstance(exc, sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa_exc.OperationalError) and isinstance(
        exc.orig, psycopg.OperationalError
    )


class Database:
    def __init__(self, url: str, timeouts: DatabaseTimeouts | None = None) -> None:
        self.url = url
        self.timeouts = timeouts or DatabaseTimeouts()
        self.engine = create_db_engine(url, self.timeouts)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", guard_text)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def transaction(self) -> AbstractContextManager[Session]:
        """One unit of work: everything in it commits together or not at all."""
        return self._work(self._sessions.begin)

    def reading(self) -> AbstractContextManager[Session]:
        return self._work(self._sessions)

    @contextmanager
    def _work(self, open_session: Any) -> Iterator[Session]:
        try:
            with open_session() as session:
                yield session
        except (sa_exc.OperationalError, sa_exc.TimeoutError, sa_exc.DBAPIError) as exc:
            if not is_unavailable(exc):
                raise
            cause = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
            log.warning("database unavailable: %s: %s", type(cause).__name__, cause)
            raise Unavailable(
                "the database is unavailable or did not answer in time; try again shortly"
            ) from exc

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        config.attributes["engine"] = self.engine
        return config

    def upgrade(self) -> None:
        """Migrations run on an engine of their own without the answer timeout: building an
        index on a large table may rightly take longer than any request should."""
        engine = create_db_engine(self.url, replace(self.timeouts, statement=None))
        try:
            config = self.alembic_config()
            config.attributes["engine"] = engine
            command.upgrade(config, "head")
        finally:
            engine.dispose()

    def revisions(self) -> tuple[str | None, str | None]:
        """The database's migration revision (None for an empty database) and the newest one."""
        head = ScriptDirectory.from_config(self.alembic_config()).get_current_head()
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision(), head

    def needs_upgrade(self) -> bool:
        current, head = self.revisions()
        return current != head

    def dispose(self) -> None:
        self.engine.dispose()
