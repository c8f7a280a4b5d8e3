"""What errors and headers give away (docs/security.md): an error names the field and never
echoes a value that could be a secret; every answer, 500s and the API docs included, carries
the security headers, and every API answer `Cache-Control: no-store`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.api.fast_verify import VerifyFastPath
from llavero.application import create_app
from llavero.edges.security import HEADERS
from llavero.service import Actor, Llavero


@pytest.fixture
def key_string(llavero: Llavero, admin: Actor) -> str:
    project = llavero.projects.create(admin, "Secrets", "secrets").id
    return llavero.keys.create(admin, project).key_string


@pytest.fixture
def unraised(llavero: Llavero, admin_token: str) -> Iterator[TestClient]:
    """The API as a client sees it: a server error is an answer, not an exception."""
    with TestClient(create_app(llavero), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {admin_token}"
        yield client


def request_cases(key: str) -> list[tuple[str, str, dict[str, Any], str]]:
    """(method, path, request, field named): the key string sits where a value is echoed."""
    return [
        ("GET", "/v1/projects/-/keys", {"params": {"filter": key}}, "filter"),
        ("GET", "/v1/projects/-/keys", {"params": {"filter": f"{key}=1"}}, "filter"),
        ("GET", "/v1/projects/-/keys", {"params": {"filter": f"name:x {key}:y"}}, "filter"),
        ("POST", "/v1/projects", {"json": {"display_name": "x", key: "y"}}, "body"),
        (
            "POST",
            "/v1/projects/secrets/keys",
            {"json": {"restrictions": {key: ["x"]}}},
            "restrictions",
        ),
        ("POST", "/v1/projects/secrets/keys", {"json": {"limits": {key: 1}}}, "limits"),
        (
            "PUT",
            "/v1/projects/secrets/billingInfo",
            {"json": {"billing_account": key}},
            "billing_account",
        ),
        ("GET", "/v1/keys/" + key, {}, "key"),
    ]


@pytest.mark.parametrize("case", range(8))
def test_errors_name_the_field_and_never_echo_a_key(
    client: TestClient, key_string: str, case: int
) -> None:
    method, path, request, field = request_cases(key_string)[case]
    response = client.request(method, path, **request)
    assert 400 <= response.status_code < 500, response.text
    message = response.json()["error"]["message"]
    assert message.startswith(f"{field}: ") or message.startswith(field), message
    assert key_string not in response.text
    assert key_string[-20:] not in response.text


def fast_path(app: Any) -> VerifyFastPath:
    """The verify fast path inside the layers that wrap it."""
    layer = app._front
    while not isinstance(layer, VerifyFastPath):
        layer = layer.app
    return layer


def assert_security_headers(response: Any) -> None:
    for name, _value in HEADERS:
        assert name.decode() in response.headers, (response.status_code, name)


def test_a_500_of_the_api_carries_every_header(
    llavero: Llavero, unraised: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(llavero.projects, "list", broken)
    response = unraised.get("/v1/projects")
    assert response.status_code == 500
    assert response.json()["error"]["status"] == "INTERNAL"
    assert_security_headers(response)
    assert response.headers["cache-control"] == "no-store"


def test_a_500_of_the_verify_fast_path_carries_every_header(
    llavero: Llavero, admin: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = llavero.projects.create(admin, "Fast", "fast-path").id
    key = llavero.keys.create(admin, project).key_string
    token = llavero.tokens.create(admin, ["keys:verify"]).token
    with TestClient(create_app(llavero), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(2):  # the first verify caches the token and the key
            assert client.post("/v1/keys:verify", json={"key": key}, headers=headers).is_success

        def broken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        async def abroken(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError("a bug")

        # answered at once (`verify_now`) or awaited (a claim, a round trip to Redis)
        monkeypatch.setattr(fast_path(client.app), "_verify_now", broken)
        monkeypatch.setattr(fast_path(client.app), "_averify", abroken)
        response = client.post("/v1/keys:verify", json={"key": key}, headers=headers)
    assert response.status_code == 500
    assert_security_headers(response)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/app/nowhere"])
def test_docs_and_pages_carry_every_header(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code in (200, 404)
    assert_security_headers(response)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_every_api_error_is_no_store(client: TestClient) -> None:
    for response in (
        client.get("/v1/keys/nope"),
        client.get("/v1/nowhere"),
        client.delete("/v1/plans"),
        client.get("/v1/projects", headers={"Authorization": "Bearer wrong"}),
    ):
        assert response.headers["cache-control"] == "no-store", response.status_code
        assert_security_headers(response)
