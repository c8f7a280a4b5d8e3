"""Restrictions, environments and expiry over the REST API: invalid input is a 400 that names the
field and changes nothing; listings show and filter environments and expiring keys."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero

CERT = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"
GOOD = {"allowed_ips": ["203.0.113.0/24"], "api_targets": [{"service": "maps.googleapis.com"}]}

# (case id, restrictions, the field the message must start with)
INVALID_RESTRICTIONS: list[tuple[str, Any, str]] = [
    ("bad address", {"allowed_ips": ["10.0.0.1", "10.0.0.300"]}, "restrictions.allowed_ips[1]"),
    ("cidr with host bits", {"allowed_ips": ["10.0.0.1/24"]}, "restrictions.allowed_ips[0]"),
    ("prefix too long", {"allowed_ips": ["10.0.0.0/33"]}, "restrictions.allowed_ips[0]"),
    (
        "two application restriction kinds",
        {"allowed_ips": ["10.0.0.0/8"], "ios_bundle_ids": ["com.example.app"]},
        "restrictions",
    ),
    (
        "empty package name",
        {"android_apps": [{"package_name": "", "sha1_fingerprint": CERT}]},
        "restrictions.android_apps[0].package_name",
    ),
    (
        "malformed fingerprint",
        {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": "DA:39"}]},
        "restrictions.android_apps[0].sha1_fingerprint",
    ),
    (
        "unknown field in an app",
        {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": CERT, "x": 1}]},
        "restrictions.android_apps[0].x",
    ),
    ("unknown restriction", {"allowed_countries": ["AR"]}, "restrictions.allowed_countries"),
    ("not a list", {"allowed_ips": "10.0.0.1"}, "restrictions.allowed_ips"),
    (
        "scheme not http",
        {"allowed_referrers": ["ftp://example.com"]},
        "restrictions.allowed_referrers[0]",
    ),
    ("bad bundle id", {"ios_bundle_ids": ["app"]}, "restrictions.ios_bundle_ids[0]"),
    (
        "service missing",
        {"api_targets": [{"methods": ["get"]}]},
        "restrictions.api_targets[0].service",
    ),
    ("not an object", ["10.0.0.1"], "restrictions"),
]
INVALID_IDS = [case[0] for case in INVALID_RESTRICTIONS]


@pytest.fixture
def project(llavero: Llavero, admin: Actor) -> str:
    return llavero.projects.create(admin, "Restrictions").id


def audit_count(llavero: Llavero, admin: Actor) -> int:
    return len(llavero.audit.list(admin, page_size=1000).items)


def assert_names_field(response: Any, field: str) -> None:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith(f"{field}:"), error["message"]


@pytest.mark.parametrize(("case", "restrictions", "field"), INVALID_RESTRICTIONS, ids=INVALID_IDS)
def test_create_refuses_invalid_restrictions(
    llavero: Llavero,
    admin: Actor,
    client: TestClient,
    project: str,
    case: str,
    restrictions: Any,
    field: str,
) -> None:
    events = audit_count(llavero, admin)
    response = client.post(f"/v1/projects/{project}/keys", json={"restrictions": restrictions})
    assert_names_field(response, field)
    assert client.get(f"/v1/projects/{project}/keys").json()["keys"] == []
    assert audit_count(llavero, admin) == events


@pytest.mark.parametrize(("case", "restrictions", "field"), INVALID_RESTRICTIONS, ids=INVALID_IDS)
def test_update_refuses_invalid_restrictions_and_changes_nothing(
    llavero: Llavero,
    admin: Actor,
    client: TestClient,
    project: str,
    case: str,
    restrictions: Any,
    field: str,
) -> None:
    created = client.post(f"/v1/projects/{project}/keys", json={"restrictions": GOOD}).json()
    key_id = created["key"]["id"]
    before = client.get(f"/v1/keys/{key_id}").json()
    events = audit_count(llavero, admin)
    body = {"display_name": "renamed", "restrictions": restrictions}
    assert_names_field(client.patch(f"/v1/keys/{key_id}", json=body), field)
    assert client.get(f"/v1/keys/{key_id}").json() == before
    assert audit_count(llavero, admin) == events


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"environment": "Production!"}, "environment"),
        ({"expire_time": "2020-01-01T00:00:00Z"}, "expire_time"),
        ({"expire_time": "soon"}, "expire_time"),
        ({"state": "DELETED"}, "state"),
        ({"restrictions": GOOD, "colour": "red"}, "colour"),
    ],
)
def test_update_refuses_other_invalid_fields(
    llavero: Llavero,
    admin: Actor,
    client: TestClient,
    project: str,
    body: dict[str, Any],
    field: str,
) -> None:
    key_id = client.post(f"/v1/projects/{project}/keys", json={}).json()["key"]["id"]
    before = client.get(f"/v1/keys/{key_id}").json()
    events = audit_count(llavero, admin)
    assert_names_field(client.patch(f"/v1/keys/{key_id}", json=body), field)
    assert client.get(f"/v1/keys/{key_id}").json() == before
    assert audit_count(llavero, admin) == events


def test_restrictions_are_stored_canonical_and_replaced_whole(
    client: TestClient, project: str
) -> None:
    body = {
        "restrictions": {
            "android_apps": [
                {"package_name": "com.example.app", "sha1_fingerprint": CERT.replace(":", "")}
            ],
            "api_targets": [{"service": "Maps.GoogleApis.com", "methods": []}],
        }
    }
    key = client.post(f"/v1/projects/{project}/keys", json=body).json()["key"]
    assert key["restrictions"] == {
        "android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": CERT}],
        "api_targets": [{"service": "maps.googleapis.com"}],
    }
    patched = client.patch(
        f"/v1/keys/{key['id']}", json={"restrictions": {"ios_bundle_ids": ["com.example.app"]}}
    ).json()
    assert patched["restrictions"] == {"ios_bundle_ids": ["com.example.app"]}
    lifted = client.patch(f"/v1/keys/{key['id']}", json={"restrictions": {}}).json()
    assert lifted["restrictions"] == {}


def test_environment_is_listed_and_filterable(client: TestClient, project: str) -> None:
    for name, environment in [("a", "production"), ("b", "staging"), ("c", None)]:
        body = {"display_name": name, "environment": environment}
        assert client.post(f"/v1/projects/{project}/keys", json=body).status_code == 200
    listed = client.get(f"/v1/projects/{project}/keys").json()["keys"]
    assert {key["display_name"]: key["environment"] for key in listed} == {
        "a": "production",
        "b": "staging",
        "c": None,
    }
    production = client.get(
        f"/v1/projects/{project}/keys", params={"filter": "environment=production"}
    ).json()["keys"]
    assert [key["display_name"] for key in production] == ["a"]
    everywhere = client.get("/v1/projects/-/keys", params={"filter": "environment=staging"})
    assert [key["display_name"] for key in everywhere.json()["keys"]] == ["b"]


def test_environment_can_be_changed_and_removed(client: TestClient, project: str) -> None:
    key = client.post(f"/v1/projects/{project}/keys", json={"environment": "staging"}).json()
    key_id = key["key"]["id"]
    moved = client.patch(f"/v1/keys/{key_id}", json={"environment": "production"}).json()
    assert moved["environment"] == "production"
    unbound = client.patch(f"/v1/keys/{key_id}", json={"environment": None}).json()
    assert unbound["environment"] is None


def test_expiring_soon_listing(client: TestClient, clock: FrozenClock, project: str) -> None:
    now = clock.now()
    for name, days in [("soon", 3), ("later", 30), ("never", None)]:
        expiry = None if days is None else (now + timedelta(days=days)).isoformat()
        body = {"display_name": name, "expire_time": expiry, "environment": "production"}
        assert client.post(f"/v1/projects/{project}/keys", json=body).status_code == 200

    def names(filter: str) -> list[str]:
        response = client.get(f"/v1/projects/{project}/keys", params={"filter": filter})
        assert response.status_code == 200
        return sorted(key["display_name"] for key in response.json()["keys"])

    assert names("expiring_within_days=7") == ["soon"]
    assert names("expiring_within_days=30") == ["later", "soon"]
    assert names("environment=production expiring_within_days=2") == []
    response = client.get(
        f"/v1/projects/{project}/keys", params={"filter": "expiring_within_days=soon"}
    )
    assert_names_field(response, "filter")


def test_expire_time_can_be_set_and_removed(
    client: TestClient, clock: FrozenClock, project: str
) -> None:
    key_id = client.post(f"/v1/projects/{project}/keys", json={}).json()["key"]["id"]
    expiry = clock.now() + timedelta(hours=1)
    set_ = client.patch(f"/v1/keys/{key_id}", json={"expire_time": expiry.isoformat()}).json()
    assert set_["expire_time"].startswith(expiry.strftime("%Y-%m-%dT%H:%M:%S"))
    removed = client.patch(f"/v1/keys/{key_id}", json={"expire_time": None}).json()
    assert removed["expire_time"] is None
