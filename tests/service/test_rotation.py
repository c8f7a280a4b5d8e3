"""Rotation: a new string for the same key id, the old one honoured to the second of its grace
period, everything else carried over, every step audited. Storage tests run on SQLite and
PostgreSQL (`any_llavero`)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.errors import FailedPrecondition, InvalidArgument
from llavero.service import Actor, Llavero

RESTRICTIONS = {
    "allowed_ips": ["203.0.113.0/24"],
    "api_targets": [{"service": "generativelanguage.googleapis.com"}],
}
ALLOWED: dict[str, Any] = {
    "ip": "203.0.113.7",
    "service": "generativelanguage.googleapis.com",
    "environment": "production",
}


def new_key(llavero: Llavero, admin: Actor) -> tuple[str, str]:
    project = llavero.projects.create(admin, "Rotation")
    created = llavero.keys.create(
        admin,
        project.id,
        display_name="Backend",
        environment="production",
        restrictions=RESTRICTIONS,
        annotations={"team": "search"},
        limits={"rpm": 10},
    )
    return created.key.id, created.key_string


def code(llavero: Llavero, key_string: str, **context: Any) -> str:
    request = VerifyRequest(key=key_string, **{**ALLOWED, **context})
    return llavero.verifier.verify(request).code


def test_old_string_verifies_until_the_grace_period_ends(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    key_id, old = new_key(any_llavero, admin)
    assert code(any_llavero, old) == "VALID"  # cached before the rotation
    rotated = any_llavero.keys.rotate(admin, key_id, 300)
    new = rotated.key_string
    assert new != old
    assert rotated.key.id == key_id
    clock.advance(299)
    assert code(any_llavero, old) == "VALID"
    assert code(any_llavero, new) == "VALID"
    clock.advance(1)
    assert code(any_llavero, old) == "EXPIRED"
    assert code(any_llavero, new) == "VALID"
    result = any_llavero.verifier.verify(VerifyRequest(key=old, **ALLOWED))
    assert result.key_id == key_id  # the expired string still names its key


def test_zero_grace_expires_the_old_string_at_once(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    key_id, old = new_key(any_llavero, admin)
    assert code(any_llavero, old) == "VALID"
    new = any_llavero.keys.rotate(admin, key_id, 0).key_string
    assert code(any_llavero, old) == "EXPIRED"
    assert code(any_llavero, new) == "VALID"


def test_rotating_twice_within_the_grace_period_leaves_one_old_and_one_new(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    key_id, first = new_key(any_llavero, admin)
    second = any_llavero.keys.rotate(admin, key_id, 600).key_string
    clock.advance(10)
    third = any_llavero.keys.rotate(admin, key_id, 60).key_string
    codes = {s: code(any_llavero, s) for s in (first, second, third)}
    assert codes == {first: "NOT_FOUND", second: "VALID", third: "VALID"}
    key = any_llavero.keys.get(admin, key_id)
    assert key.last4 == third[-4:]
    assert key.previous_last4 == second[-4:]
    clock.advance(59)
    assert code(any_llavero, second) == "VALID"
    clock.advance(1)
    assert code(any_llavero, second) == "EXPIRED"
    assert code(any_llavero, third) == "VALID"


def test_rotation_keeps_the_id_and_carries_everything_over(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    key_id, _ = new_key(any_llavero, admin)
    before = any_llavero.keys.get(admin, key_id)
    clock.advance(5)
    rotated = any_llavero.keys.rotate(admin, key_id, 60).key
    after = any_llavero.keys.get(admin, key_id)
    assert rotated == after
    kept = ("id", "project", "display_name", "state", "create_time", "expire_time")
    carried = ("environment", "restrictions", "annotations", "limits")
    for name in kept + carried:
        assert getattr(after, name) == getattr(before, name), name
    assert after.previous_last4 == before.last4
    assert after.previous_expire_time == clock.now() + timedelta(seconds=60)


def test_restrictions_and_environment_bind_both_strings_during_the_grace_period(
    any_llavero: Llavero, admin: Actor
) -> None:
    key_id, old = new_key(any_llavero, admin)
    new = any_llavero.keys.rotate(admin, key_id, 60).key_string
    for key_string in (old, new):
        assert code(any_llavero, key_string, ip="10.0.0.1") == "IP_NOT_ALLOWED"
        assert code(any_llavero, key_string, service="maps.googleapis.com") == "API_NOT_ALLOWED"
        assert code(any_llavero, key_string, environment="staging") == "ENVIRONMENT_MISMATCH"


def test_every_rotation_is_audited_without_the_key_string(
    any_llavero: Llavero, admin: Actor
) -> None:
    key_id, first = new_key(any_llavero, admin)
    second = any_llavero.keys.rotate(admin, key_id, 120).key_string
    third = any_llavero.keys.rotate(admin, key_id, 0).key_string
    events = any_llavero.audit.list(admin, target=key_id).items
    assert [event.action for event in events] == ["key.rotate", "key.rotate", "key.create"]
    latest, earlier = events[0], events[1]
    assert earlier.details["grace_period_seconds"] == 120
    assert earlier.details["previous_last4"] == first[-4:]
    assert latest.details["grace_period_seconds"] == 0
    assert latest.details["previous_last4"] == second[-4:]
    dumped = json.dumps([event.model_dump(mode="json") for event in events])
    for key_string in (first, second, third):
        assert key_string not in dumped


@pytest.mark.parametrize("grace", [-1, 604_801, 1.5, True, "60"])
def test_invalid_grace_period_changes_nothing(llavero: Llavero, admin: Actor, grace: Any) -> None:
    key_id, old = new_key(llavero, admin)
    before = llavero.keys.get(admin, key_id)
    with pytest.raises(InvalidArgument) as error:
        llavero.keys.rotate(admin, key_id, grace)
    assert error.value.field == "grace_period_seconds"
    assert llavero.keys.get(admin, key_id) == before
    assert code(llavero, old) == "VALID"
    assert len(llavero.audit.list(admin, target=key_id).items) == 1


def test_a_deleted_key_cannot_be_rotated(llavero: Llavero, admin: Actor) -> None:
    key_id, _ = new_key(llavero, admin)
    llavero.keys.delete(admin, key_id)
    with pytest.raises(FailedPrecondition):
        llavero.keys.rotate(admin, key_id, 60)


def test_rotate_over_http(
    llavero: Llavero, admin: Actor, client: TestClient, clock: FrozenClock
) -> None:
    key_id, old = new_key(llavero, admin)
    response = client.post(f"/v1/keys/{key_id}:rotate", json={"grace_period_seconds": 30})
    assert response.status_code == 200
    body = response.json()
    assert body["key"]["id"] == key_id
    assert body["key"]["previous_last4"] == old[-4:]
    new = body["key_string"]
    assert client.post("/v1/keys:verify", json={"key": old, **ALLOWED}).json()["code"] == "VALID"
    clock.advance(29)
    assert client.post("/v1/keys:verify", json={"key": old, **ALLOWED}).json()["code"] == "VALID"
    clock.advance(1)
    assert client.post("/v1/keys:verify", json={"key": old, **ALLOWED}).json()["code"] == "EXPIRED"
    assert client.post("/v1/keys:verify", json={"key": new, **ALLOWED}).json()["code"] == "VALID"
    listed = client.get(f"/v1/keys/{key_id}").json()
    assert new not in json.dumps(listed)


@pytest.mark.parametrize("body", [{"grace_period_seconds": 604_801}, {"grace": 5}])
def test_rotate_over_http_refuses_bad_bodies(
    llavero: Llavero, admin: Actor, client: TestClient, body: dict[str, Any]
) -> None:
    key_id, old = new_key(llavero, admin)
    response = client.post(f"/v1/keys/{key_id}:rotate", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(next(iter(body)))
    assert code(llavero, old) == "VALID"


def test_usage_history_is_continuous_across_rotation(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    key_id, old = new_key(any_llavero, admin)
    for _ in range(2):
        assert code(any_llavero, old) == "VALID"
    new = any_llavero.keys.rotate(admin, key_id, 60).key_string
    assert code(any_llavero, old) == "VALID"
    for _ in range(3):
        assert code(any_llavero, new) == "VALID"
    clock.advance(60)
    assert code(any_llavero, old) == "EXPIRED"
    any_llavero.usage_meter.flush()
    series = any_llavero.usage.key_series(admin, key_id, granularity="minute")
    assert series.totals.requests == {"VALID": 6, "EXPIRED": 1}
    per_minute = [point.requests for point in series.buckets if sum(point.requests.values())]
    assert per_minute == [{"VALID": 6, "EXPIRED": 0}, {"VALID": 0, "EXPIRED": 1}]
    last_valid = clock.now() - timedelta(seconds=60)  # the EXPIRED verify is not a use
    assert any_llavero.keys.get(admin, key_id).last_used_time == last_valid
