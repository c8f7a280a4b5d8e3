"""`GET /v1/keys/{key}/usage`, `GET /v1/projects/{project}/usage` and `GET /metrics`."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero

START = "2025-08-01T00:00:00Z"  # the FrozenClock's first instant


@pytest.fixture
def any_client(any_llavero: Llavero, admin: Actor) -> Iterator[TestClient]:
    """The API on SQLite, then on PostgreSQL, signed in with an admin token."""
    with TestClient(create_app(any_llavero)) as test_client:
        token = any_llavero.tokens.create(admin, ["admin"]).token
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def verify_through_api(client: TestClient, clock: FrozenClock) -> tuple[str, str, int, int]:
    """A project and a key with N allowed and M refused verifies, through the API."""
    project = client.post("/v1/projects", json={"display_name": "Gemini API"}).json()["id"]
    key = client.post(
        f"/v1/projects/{project}/keys", json={"restrictions": {"allowed_ips": ["203.0.113.0/24"]}}
    ).json()
    codes = []
    for i in range(9):
        ip = "203.0.113.7" if i % 3 else "192.0.2.1"  # every third from a refused address
        body = {"key": key["key_string"], "ip": ip, "cost": 5}
        codes.append(client.post("/v1/keys:verify", json=body).json()["code"])
        clock.advance(400)
    assert set(codes) == {"VALID", "IP_NOT_ALLOWED"}
    return project, key["key"]["id"], codes.count("VALID"), codes.count("IP_NOT_ALLOWED")


@pytest.fixture
def verified(client: TestClient, clock: FrozenClock) -> tuple[str, str, int, int]:
    return verify_through_api(client, clock)


def test_valid_count_equals_the_allowed_verifies_at_every_granularity(
    any_client: TestClient, any_llavero: Llavero, clock: FrozenClock
) -> None:
    project, key_id, allowed, refused = verify_through_api(any_client, clock)
    any_llavero.usage_meter.flush()

    for granularity in ("minute", "hour", "day"):
        query = {"start": START, "end": clock.now().isoformat(), "granularity": granularity}
        for path in (f"/v1/keys/{key_id}/usage", f"/v1/projects/{project}/usage"):
            answer = any_client.get(path, params=query)
            assert answer.status_code == 200
            body = answer.json()
            assert body["granularity"] == granularity
            assert sum(bucket["requests"]["VALID"] for bucket in body["buckets"]) == allowed == 6
            assert body["totals"]["requests"] == {"VALID": allowed, "IP_NOT_ALLOWED": refused}
            assert body["totals"]["units"] == 5 * allowed


def test_usage_of_a_key_reaches_last_used(
    client: TestClient, llavero: Llavero, verified: tuple[str, str, int, int]
) -> None:
    _, key_id, _, _ = verified
    llavero.usage_meter.flush()
    key = client.get(f"/v1/keys/{key_id}").json()
    assert key["last_used_ip"] == "203.0.113.7"
    assert key["last_used_time"] is not None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"granularity": "week"}, "granularity"),
        ({"start": "not-a-time"}, "start"),
        ({"end": "2025-08-01"}, "end"),
        ({"start": "2020-01-01T00:00:00Z", "granularity": "minute"}, "start"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    client: TestClient, query: dict[str, str], field: str
) -> None:
    project = client.post("/v1/projects", json={"display_name": "Gemini API"}).json()["id"]
    answer = client.get(f"/v1/projects/{project}/usage", params=query)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith(f"{field}:")


def test_usage_of_an_unknown_key_is_404(client: TestClient) -> None:
    assert client.get("/v1/keys/nope/usage").status_code == 404


def test_metrics_expose_verifies_by_code_and_the_flusher(
    client: TestClient, llavero: Llavero, verified: tuple[str, str, int, int]
) -> None:
    _, _, allowed, refused = verified
    client.post("/v1/keys:verify", json={"key": "llv_garbage"})
    llavero.usage_meter.flush()

    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text

    def sample(name: str) -> float:
        found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        assert found, f"{name} missing from /metrics"
        return float(found.group(1))

    # Other services of this test process may count too: ours are at least these.
    assert sample('llavero_verify_total{code="VALID"}') >= allowed
    assert sample('llavero_verify_total{code="IP_NOT_ALLOWED"}') >= refused
    assert sample('llavero_verify_total{code="MALFORMED"}') >= 1
    assert sample("llavero_usage_flush_seconds_count") >= 1
    assert sample("llavero_usage_buffer_buckets") >= 0
    assert llavero.usage_meter.verify_counts() == {
        "VALID": allowed,
        "IP_NOT_ALLOWED": refused,
        "MALFORMED": 1,
    }
