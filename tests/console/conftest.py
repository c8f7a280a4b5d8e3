"""A browser-like client of the console: cookies kept, redirects not followed, so each test
sees exactly what the server answered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.service import Actor, Llavero
from llavero.service.models import User
from tests.console.console_client import PASSWORD, sign_in


@pytest.fixture
def anonymous(llavero: Llavero) -> Iterator[TestClient]:
    with TestClient(create_app(llavero), follow_redirects=False) as client:
        yield client


@pytest.fixture
def ana(llavero: Llavero, admin: Actor) -> User:
    return llavero.users.create(admin, "ana@example.com", PASSWORD, role="admin")


@pytest.fixture
def console(anonymous: TestClient, ana: User) -> TestClient:
    """Signed in as Ana, an admin."""
    assert sign_in(anonymous, ana.email).status_code == 303
    return anonymous
