"""The shipped `database` limiter through an outage, with real processes: `llavero serve`
(granian) on PostgreSQL behind a TCP proxy this test hangs (`tests/security/tcp_proxy.py`).

While the proxy forwards nothing, cached verifies keep answering, from in-process counters,
and the outage is logged once. Once it forwards again, verifies alone end the outage: one of
them, answered by the HTTP fast path, probes the database after the back-off (5 s), and the
"is back" line follows. An earlier `hit_held` took that probe and answered None, so no fast-path
verify ever probed and the outage never ended from them (bench/notes.md, item 13).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from llavero.config import Settings
from llavero.service import Actor, Llavero
from tests.processes import Process, Processes, processes
from tests.security.tcp_proxy import HangingProxy, hanging_proxy

pytestmark = pytest.mark.postgres
# Limits out of reach, so every verify is VALID; the units limits (a request of cost 0 counts
# none) make the limiter look at their counters at least once a second (`FRESH_SECONDS`), so
# verifies need the database soon after it hangs.
PLANS = "[plans.free]\nrpm = 1_000_000_000\nrpd = 1_000_000_000\nupm = 1_000\nupd = 100_000\n"
OUTAGE_STARTED = "rate limit backend database failed ("
OUTAGE_ENDED = "rate limit backend database is back after"


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """A schema of this test's own, reached directly (the set-up) and through the proxy."""
    schema = f"llavero_outage_{uuid.uuid4().hex[:8]}"
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def proxy(database_url: str) -> Iterator[HangingProxy]:
    url = make_url(database_url)
    with hanging_proxy((url.host or "127.0.0.1", url.port or 5432)) as running:
        yield running
        running.resume()  # the server's shutdown flush needs the database


@pytest.fixture
def env(tmp_path: Path, database_url: str, proxy: HangingProxy) -> dict[str, str]:
    plans = tmp_path / "plans.toml"
    plans.write_text(PLANS)
    proxied = make_url(database_url).set(host="127.0.0.1", port=proxy.port)
    return {
        "LLAVERO_DATA_DIR": str(tmp_path),
        "LLAVERO_DATABASE_URL": proxied.render_as_string(hide_password=False),
        "LLAVERO_SECRET_KEY": "database-outage-secret-0123456789",
        "LLAVERO_PLANS_FILE": str(plans),
        "LLAVERO_DATABASE_CONNECT_TIMEOUT_SECONDS": "2",
        "LLAVERO_DATABASE_STATEMENT_TIMEOUT_SECONDS": "1",
        "LLAVERO_DATABASE_POOL_TIMEOUT_SECONDS": "1",
    }


@pytest.fixture
def group(tmp_path: Path, env: dict[str, str]) -> Iterator[Processes]:
    with processes(tmp_path, env) as started:
        yield started


def credentials(database_url: str, tmp_path: Path) -> tuple[str, str]:
    """A verify token and a key, made straight in the database (not through the proxy)."""
    plans = tmp_path / "plans.toml"
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="database-outage-secret-0123456789",
        plans_file=plans,
    )
    llavero = Llavero(settings)
    try:
        llavero.upgrade()
        system = Actor.system("test")
        project = llavero.projects.create(system, "Outage")
        key = llavero.keys.create(system, project.id).key_string
        return llavero.tokens.create(system, ["keys:verify"]).token, key
    finally:
        llavero.close()


def verify_for(served: Process, token: str, key: str, seconds: float) -> list[int]:
    """The statuses of verifies from 4 threads for `seconds`; every answer a valid one."""
    deadline = time.monotonic() + seconds

    def worker(_: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=served.base, timeout=30) as client:
            client.headers["authorization"] = f"Bearer {token}"
            while time.monotonic() < deadline:
                answer = client.post("/v1/keys:verify", json={"key": key})
                statuses.append(answer.status_code)
                if answer.status_code == 200:
                    assert answer.json()["valid"] is True, answer.text
        return statuses

    with ThreadPoolExecutor(4) as pool:
        return [status for statuses in pool.map(worker, range(4)) for status in statuses]


def test_verifies_answer_through_a_database_outage_and_end_it_once_it_is_over(
    group: Processes, proxy: HangingProxy, database_url: str, tmp_path: Path
) -> None:
    token, key = credentials(database_url, tmp_path)
    served = group.serve()
    assert set(verify_for(served, token, key, 1)) == {200}  # token and key cached

    proxy.hang()
    during = verify_for(served, token, key, 4)
    assert OUTAGE_STARTED in served.text()
    assert during.count(200) > 100 and set(during) == {200}, sorted(set(during))

    proxy.resume()
    after: list[int] = []
    deadline = time.monotonic() + 30
    while OUTAGE_ENDED not in served.text() and time.monotonic() < deadline:
        after += verify_for(served, token, key, 0.5)  # nothing but fast-path verifies
    output = served.text()
    assert OUTAGE_ENDED in output, output[-3000:]
    assert set(after) == {200}, sorted(set(after))
    assert output.count(OUTAGE_STARTED) == 1
    # No traceback per request: the only errors are each background job's first failure,
    # logged once with its traceback (`llavero.core.background`).
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert errors and all("failed; retrying every" in line for line in errors), errors
    assert len(errors) <= 4, errors
