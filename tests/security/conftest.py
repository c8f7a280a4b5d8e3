"""The REST API in process on every reachable database (SQLite, then PostgreSQL), signed in
with an admin token: PostgreSQL refuses some text SQLite stores, so both must hold."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.service import Actor, Llavero


@pytest.fixture
def api(any_llavero: Llavero, admin: Actor) -> Iterator[TestClient]:
    token = any_llavero.tokens.create(admin, ["admin"]).token
    with TestClient(create_app(any_llavero), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client
