"""Shared fixtures. Storage tests run on SQLite always and on PostgreSQL when reachable; under
CI=true an unreachable PostgreSQL, Redis or Chromium fails the run instead of skipping."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from llavero.store.tables import Base

POSTGRES_URL = os.environ.get(
    "LLAVERO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LLAVERO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = "/usr/bin/chromium"


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url.replace("+psycopg", ""))
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), 1
        ):
            return True
    except OSError:
        return False


MISSING: Final = " not available"
"""How the reason of every skip by `require` ends: such reports fold into one line per service.
(A suffix, not a set of reasons: test modules import this file as `tests.conftest`, a second
module beside the `conftest` plugin.)"""


def require(what: str, available: bool) -> None:
    """Skip with the reason on a developer's machine; fail under CI, where it must run."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what}{MISSING}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    """Report a missing service at one place (here), not at each test that needed it, so that
    `-ra` folds the skips into `SKIPPED [142] tests/conftest.py: Redis at ... not available`."""
    report: pytest.TestReport = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and longrepr[2].endswith(MISSING):
        report.longrepr = (__file__, require.__code__.co_firstlineno, longrepr[2])
    return report


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say which backends this run really exercises, so a CI log shows what was tested."""
    postgres = (
        f"sqlite, postgresql ({POSTGRES_URL})"
        if reachable(POSTGRES_URL, 5432)
        else f"sqlite only (postgresql unreachable at {POSTGRES_URL})"
    )
    redis = REDIS_URL if reachable(REDIS_URL, 6379) else f"unreachable at {REDIS_URL}"
    chromium = CHROMIUM if os.access(CHROMIUM, os.X_OK) else f"missing ({CHROMIUM})"
    return [f"databases: {postgres}", f"redis: {redis}", f"chromium: {chromium}"]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    require(f"PostgreSQL at {POSTGRES_URL}", reachable(POSTGRES_URL, 5432))
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    require(f"Redis at {REDIS_URL}", reachable(REDIS_URL, 6379))
    return REDIS_URL


@pytest.fixture(scope="session")
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema for this session, migrated once, dropped at the end."""
    schema = f"llavero_test_{os.getpid()}"
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{postgres_url}?options=-csearch_path%3D{schema}"
    yield url
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'llavero.sqlite3'}"
    url: str = request.getfixturevalue("postgres_schema")
    return url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture(autouse=True)
def llavero_logger() -> Iterator[logging.Logger]:
    """Llavero's logger as each test found it: a test that builds the serving app (which
    configures it, `llavero.edges.logs.configure_logging`) must not hide records from caplog
    later."""
    logger = logging.getLogger("llavero")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'llavero.sqlite3'}",
        secret_key="test-secret-0123456789abcdef",
        change_poll_seconds=0,
    )


def make_service(settings: Settings, clock: FrozenClock) -> Iterator[Llavero]:
    llavero = Llavero(settings, clock=clock)
    llavero.upgrade()
    empty_postgres_tables(llavero)  # whatever an earlier test on this worker failed to remove
    try:
        yield llavero
    finally:
        # Closed first: the meter's last flush lands, and no thread of the service (heartbeat,
        # change feed, limiter slices given back) can hold a lock that TRUNCATE would wait for.
        llavero.close()
        empty_postgres_tables(llavero)
        llavero.db.dispose()


def empty_postgres_tables(llavero: Llavero) -> None:
    """TRUNCATE every table of the test's schema, on a connection of its own: it creates new
    files for twenty tables and their indexes, which can outlast the service's 5 s answer
    timeout on a machine busy with several workers."""
    if llavero.db.engine.dialect.name != "postgresql":
        return
    names = ", ".join(table.name for table in Base.metadata.sorted_tables)
    engine = create_engine(llavero.settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def llavero(settings: Settings, clock: FrozenClock) -> Iterator[Llavero]:
    """A service on SQLite; the usual fixture for domain tests."""
    yield from make_service(settings, clock)


@pytest.fixture
def any_llavero(settings: Settings, clock: FrozenClock, database_url: str) -> Iterator[Llavero]:
    """The same service on every reachable database: SQLite, then PostgreSQL."""
    yield from make_service(settings.model_copy(update={"database_url": database_url}), clock)


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment of `llavero` commands in one test: a data dir and SQLite file of its own,
    a fixed hash secret, no change feed. Set in this process and returned for subprocesses."""
    env = {
        "LLAVERO_DATA_DIR": str(tmp_path),
        "LLAVERO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "LLAVERO_SECRET_KEY": "cli-test-secret-0123456789abcdef",
        "LLAVERO_CHANGE_POLL_SECONDS": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def admin() -> Actor:
    return Actor.system("test")


@pytest.fixture
def admin_token(llavero: Llavero, admin: Actor) -> str:
    return llavero.tokens.create(admin, ["admin"]).token


@pytest.fixture
def client(llavero: Llavero, admin_token: str) -> Iterator[TestClient]:
    """The REST API in process, signed in with an admin management token."""
    with TestClient(create_app(llavero)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {admin_token}"
        yield test_client
