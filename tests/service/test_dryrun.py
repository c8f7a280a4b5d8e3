"""The restriction dry-run explains each step of the verdict and writes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.errors import InvalidArgument, NotFound, PermissionDenied
from llavero.service import Actor, Llavero
from llavero.store import tables

RESTRICTIONS = {
    "allowed_referrers": ["*.example.com/*"],
    "api_targets": [{"service": "generativelanguage.googleapis.com", "methods": ["*.generate*"]}],
}
ALLOWED: dict[str, Any] = {
    "referrer": "https://app.example.com/chat?session=s3cr3t",
    "service": "generativelanguage.googleapis.com",
    "method": "generateContent",
    "environment": "production",
}


def new_key(llavero: Llavero, admin: Actor, **fields: Any) -> str:
    project = llavero.projects.create(admin, "Dry run")
    return llavero.keys.create(admin, project.id, **fields).key.id


def lines(result: Any) -> list[tuple[str, bool, str | None]]:
    return [(check.restriction, check.allowed, check.matched_rule) for check in result.checks]


def test_an_allowed_request_names_the_rule_of_every_step(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    expiry = clock.now() + timedelta(days=1)
    key_id = new_key(
        llavero, admin, restrictions=RESTRICTIONS, environment="production", expire_time=expiry
    )
    result = llavero.keys.test_restrictions(admin, key_id, ALLOWED)
    assert (result.allowed, result.code) == (True, None)
    assert lines(result) == [
        ("state", True, "ACTIVE"),
        ("expire_time", True, "2025-08-02T00:00:00Z"),
        ("environment", True, "production"),
        ("allowed_referrers", True, "*.example.com/*"),
        ("api_targets", True, "generativelanguage.googleapis.com *.generate*"),
    ]


def test_a_refused_request_explains_every_step_and_gives_the_first_code(
    llavero: Llavero, admin: Actor
) -> None:
    key_id = new_key(llavero, admin, restrictions=RESTRICTIONS, environment="production")
    context = {**ALLOWED, "referrer": "https://example.org/", "method": "embedContent"}
    result = llavero.keys.test_restrictions(admin, key_id, context)
    assert (result.allowed, result.code) == (False, "REFERRER_NOT_ALLOWED")
    assert lines(result)[-2:] == [("allowed_referrers", False, None), ("api_targets", False, None)]
    assert "embedContent is not an allowed method" in result.checks[-1].reason


def test_missing_context_is_refused_and_said_so(llavero: Llavero, admin: Actor) -> None:
    key_id = new_key(llavero, admin, restrictions=RESTRICTIONS)
    result = llavero.keys.test_restrictions(admin, key_id, {})
    assert result.code == "REFERRER_NOT_ALLOWED"
    reasons = [check.reason for check in result.checks if not check.allowed]
    assert reasons == ["the request carries no referrer", "the request names no service"]


def test_state_expiry_and_environment_come_first(
    llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    expiry = clock.now() + timedelta(minutes=1)
    key_id = new_key(llavero, admin, environment="production", expire_time=expiry)
    staging = {**ALLOWED, "environment": "staging"}
    assert llavero.keys.test_restrictions(admin, key_id, staging).code == "ENVIRONMENT_MISMATCH"
    clock.advance(60)
    result = llavero.keys.test_restrictions(admin, key_id, staging)
    assert result.code == "EXPIRED"
    assert [check.allowed for check in result.checks] == [True, False, False, True]
    llavero.keys.update(admin, key_id, {"state": "DISABLED"})
    assert llavero.keys.test_restrictions(admin, key_id, staging).code == "DISABLED"


def test_an_unrestricted_key_is_said_to_be_unrestricted(llavero: Llavero, admin: Actor) -> None:
    key_id = new_key(llavero, admin)
    result = llavero.keys.test_restrictions(admin, key_id, {})
    assert result.allowed
    assert result.checks[-1].restriction == "restrictions"
    assert "no restrictions" in result.checks[-1].reason


def test_the_referrer_path_and_query_never_appear(llavero: Llavero, admin: Actor) -> None:
    key_id = new_key(llavero, admin, restrictions=RESTRICTIONS)
    for referrer in (ALLOWED["referrer"], "https://example.org/s3cr3t?session=s3cr3t"):
        result = llavero.keys.test_restrictions(admin, key_id, {**ALLOWED, "referrer": referrer})
        assert "s3cr3t" not in result.model_dump_json()


def test_the_dry_run_writes_nothing(llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Dry run")
    created = llavero.keys.create(admin, project.id, restrictions=RESTRICTIONS)
    key_id, key_string = created.key.id, created.key_string
    before = llavero.keys.get(admin, key_id)
    events = len(llavero.audit.list(admin, page_size=1000).items)
    for _ in range(3):
        llavero.keys.test_restrictions(admin, key_id, ALLOWED)
    llavero.usage_meter.flush()
    assert llavero.keys.get(admin, key_id) == before
    assert len(llavero.audit.list(admin, page_size=1000).items) == events
    with llavero.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(tables.UsageBucket)) == 0
    llavero.verifier.verify(VerifyRequest(key=key_string, **ALLOWED))  # the meter does count
    llavero.usage_meter.flush()
    series = llavero.usage.key_series(admin, key_id, granularity="minute")
    assert series.totals.requests == {"VALID": 1}


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"key": "llv_x"}, "key"),
        ({"cost": 1}, "cost"),
        ({"ip": 7}, "ip"),
        ({"ip": "1" * 3000}, "ip"),
    ],
)
def test_the_context_is_validated(
    llavero: Llavero, admin: Actor, context: dict[str, Any], field: str
) -> None:
    key_id = new_key(llavero, admin)
    with pytest.raises(InvalidArgument) as error:
        llavero.keys.test_restrictions(admin, key_id, context)
    assert error.value.field == field


def test_needs_keys_read_and_a_visible_key(llavero: Llavero, admin: Actor) -> None:
    key_id = new_key(llavero, admin)
    with pytest.raises(PermissionDenied):
        llavero.keys.test_restrictions(Actor("verifier", frozenset({"keys:verify"})), key_id, {})
    reader = Actor("reader", frozenset({"keys:read"}))
    assert llavero.keys.test_restrictions(reader, key_id, {}).allowed
    with pytest.raises(NotFound):
        llavero.keys.test_restrictions(admin, "no-such-key", {})


def test_over_http(llavero: Llavero, admin: Actor, client: TestClient) -> None:
    key_id = new_key(llavero, admin, restrictions=RESTRICTIONS, environment="production")
    path = f"/v1/keys/{key_id}:testRestrictions"
    response = client.post(path, json={**ALLOWED, "ip": "203.0.113.7"})
    assert response.status_code == 200
    body = response.json()
    assert (body["allowed"], body["code"]) == (True, None)
    assert body["checks"][3] == {
        "restriction": "allowed_referrers",
        "allowed": True,
        "matched_rule": "*.example.com/*",
        "reason": "the referrer from https://app.example.com:443 matches *.example.com/*",
    }
    refused = client.post(path, json={"environment": "staging"}).json()
    assert (refused["allowed"], refused["code"]) == (False, "ENVIRONMENT_MISMATCH")
    llavero.usage_meter.flush()
    usage = client.get(f"/v1/keys/{key_id}/usage", params={"granularity": "minute"}).json()
    assert usage["totals"]["requests"] == {}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"key": "llv_whatever"}, 400, "key: is not a known field"),
        ({"cost": 1}, 400, "cost: is not a known field"),
        ({"ip": ["203.0.113.7"]}, 400, "ip:"),
    ],
)
def test_over_http_refuses_bad_bodies(
    llavero: Llavero, admin: Actor, client: TestClient, body: Any, status: int, message: str
) -> None:
    key_id = new_key(llavero, admin)
    response = client.post(f"/v1/keys/{key_id}:testRestrictions", json=body)
    assert response.status_code == status
    assert response.json()["error"]["message"].startswith(message)


def test_over_http_scopes_and_unknown_keys(
    llavero: Llavero, admin: Actor, client: TestClient
) -> None:
    key_id = new_key(llavero, admin)
    verifier = llavero.tokens.create(admin, ["keys:verify"]).token
    response = client.post(
        f"/v1/keys/{key_id}:testRestrictions",
        json={},
        headers={"Authorization": f"Bearer {verifier}"},
    )
    assert response.status_code == 403
    missing = client.post("/v1/keys/no-such-key:testRestrictions", json={})
    assert missing.status_code == 404
