"""A hung database (docs/security.md, "A hung or dead database"): PostgreSQL behind a TCP proxy
this test controls, the app served on loopback with real threads and the Redis limiter.

While the proxy forwards nothing, 50 calls that need the database all end with 503
UNAVAILABLE (the connect, answer and pool timeouts), a cached verify keeps answering though
those calls fill the shared threadpool, and once the proxy forwards again everything works."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from tests.conftest import make_service
from tests.loopback import serve
from tests.security.tcp_proxy import HangingProxy, hanging_proxy

pytestmark = pytest.mark.postgres
STUCK_CALLS = 50
GUARD_SECONDS = 60.0  # a client gives up only long after every configured timeout


@pytest.fixture
def proxy(postgres_schema: str) -> Iterator[HangingProxy]:
    url = make_url(postgres_schema)
    with hanging_proxy((url.host or "127.0.0.1", url.port or 5432)) as running:
        yield running


@pytest.fixture(params=[pytest.param("redis", marks=pytest.mark.redis), "database"])
def service(
    request: pytest.FixtureRequest, proxy: HangingProxy, postgres_schema: str, tmp_path: Path
) -> Iterator[Llavero]:
    """With the Redis limiter, and with the default one that counts in the hung database."""
    proxied = make_url(postgres_schema).set(host="127.0.0.1", port=proxy.port)
    backend = {"rate_limit_backend": request.param}
    if request.param == "redis":
        backend["redis_url"] = request.getfixturevalue("redis_url")
    settings = Settings(
        data_dir=tmp_path,
        database_url=proxied.render_as_string(hide_password=False),
        secret_key="hung-database-secret-0123456789",
        change_poll_seconds=0,
        **backend,
        database_connect_timeout_seconds=2,
        database_statement_timeout_seconds=1,
        database_pool_timeout_seconds=1,
    )
    made = make_service(settings, FrozenClock())
    yield next(made)
    proxy.resume()  # even when the test failed while hung: the clean-up needs the database
    next(made, None)


def test_a_hung_database_gives_503_and_cached_verifies_keep_answering(
    service: Llavero, proxy: HangingProxy, admin: Actor
) -> None:
    # An id of this run: xdist workers and later runs share the Redis db, and a key's counters
    # there outlive the test (the frozen clock puts every run in the same day's window).
    project = service.projects.create(admin, "Outage", f"outage-{uuid.uuid4().hex[:8]}").id
    key = service.keys.create(admin, project).key_string
    admin_token = service.tokens.create(admin, ["admin"]).token
    verify_token = service.tokens.create(admin, ["keys:verify"]).token
    with serve(create_app(service)) as base:
        verifier = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {verify_token}"},
            timeout=GUARD_SECONDS,
        )
        for _ in range(2):  # the first verify reads the database and caches token and key
            assert verifier.post("/v1/keys:verify", json={"key": key}).json()["valid"] is True

        def needs_the_database(_: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=GUARD_SECONDS) as client:
                headers = {"Authorization": f"Bearer {admin_token}"}
                return client.get("/v1/projects/-/keys", headers=headers)

        assert needs_the_database(0).status_code == 200
        proxy.hang()
        with ThreadPoolExecutor(STUCK_CALLS) as pool:
            stuck = [pool.submit(needs_the_database, n) for n in range(STUCK_CALLS)]
            time.sleep(0.5)  # sequencing only: let the calls reach the hung database first
            during = verifier.post("/v1/keys:verify", json={"key": key})
            answers = [call.result() for call in stuck]
        assert during.status_code == 200
        assert during.json()["valid"] is True
        for answer in answers:
            assert answer.status_code == 503, answer.text
            error: dict[str, Any] = answer.json()["error"]
            assert error["status"] == "UNAVAILABLE"
            assert "database" in error["message"]
            assert answer.headers["cache-control"] == "no-store"

        proxy.resume()
        with httpx.Client(base_url=base, timeout=GUARD_SECONDS) as client:
            client.headers["Authorization"] = f"Bearer {admin_token}"
            assert client.get("/v1/projects/-/keys").status_code == 200
            created = client.post(f"/v1/projects/{project}/keys", json={"display_name": "after"})
            assert created.status_code == 200, created.text
            fresh = created.json()["key_string"]
        assert verifier.post("/v1/keys:verify", json={"key": fresh}).json()["valid"] is True
        verifier.close()
