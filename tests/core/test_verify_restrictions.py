"""Restrictions, environments, state and expiry enforced by verify: one table, three paths.

Each case runs through `Verifier.verify`, through `POST /v1/keys:verify`, and through the
dry-run, which must reach the same verdict as the hot path.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero

CERT = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"
OTHER_CERT = "11:22:33:44:55:66:77:88:99:00:AA:BB:CC:DD:EE:FF:00:11:22:33"
IPS = {"allowed_ips": ["203.0.113.0/24", "2001:db8::/32"]}
REFERRERS = {"allowed_referrers": ["*.example.com/*"]}
ANDROID = {"android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": CERT}]}
IOS = {"ios_bundle_ids": ["com.example.app"]}
GEMINI = "generativelanguage.googleapis.com"
APIS = {
    "api_targets": [
        {"service": GEMINI, "methods": ["*.generateContent", "count*"]},
        {"service": "maps.googleapis.com"},
    ]
}
IPS_AND_APIS = {**IPS, **APIS}

# (case id, restrictions, request context, expected code)
CASES: list[tuple[str, dict[str, Any], dict[str, str], str]] = [
    ("unrestricted, empty context", {}, {}, "VALID"),
    ("ipv4 inside", IPS, {"ip": "203.0.113.7"}, "VALID"),
    ("ipv4 first address", IPS, {"ip": "203.0.113.0"}, "VALID"),
    ("ipv4 one past the range", IPS, {"ip": "203.0.114.0"}, "IP_NOT_ALLOWED"),
    ("ipv6 inside", IPS, {"ip": "2001:DB8::1"}, "VALID"),
    ("ipv6 outside", IPS, {"ip": "2001:db9::1"}, "IP_NOT_ALLOWED"),
    ("ipv4-mapped ipv6", IPS, {"ip": "::ffff:203.0.113.7"}, "VALID"),
    ("ip not an address", IPS, {"ip": "not-an-ip"}, "IP_NOT_ALLOWED"),
    ("ip is a forwarded list", IPS, {"ip": "203.0.113.7, 10.0.0.1"}, "IP_NOT_ALLOWED"),
    ("ip missing", IPS, {}, "IP_NOT_ALLOWED"),
    ("referrer subdomain", REFERRERS, {"referrer": "https://a.example.com/x"}, "VALID"),
    ("referrer apex", REFERRERS, {"referrer": "https://example.com/x"}, "REFERRER_NOT_ALLOWED"),
    (
        "referrer other port",
        REFERRERS,
        {"referrer": "https://a.example.com:8443/"},
        "REFERRER_NOT_ALLOWED",
    ),
    ("referrer not a url", REFERRERS, {"referrer": "a.example.com/x"}, "REFERRER_NOT_ALLOWED"),
    ("referrer missing", REFERRERS, {}, "REFERRER_NOT_ALLOWED"),
    (
        "android app, compact lower-case cert",
        ANDROID,
        {"android_package": "com.example.app", "android_cert": CERT.replace(":", "").lower()},
        "VALID",
    ),
    (
        "android app, other cert",
        ANDROID,
        {"android_package": "com.example.app", "android_cert": OTHER_CERT},
        "APP_NOT_ALLOWED",
    ),
    (
        "android app, other package",
        ANDROID,
        {"android_package": "com.example.other", "android_cert": CERT},
        "APP_NOT_ALLOWED",
    ),
    ("android cert missing", ANDROID, {"android_package": "com.example.app"}, "APP_NOT_ALLOWED"),
    ("android package missing", ANDROID, {"android_cert": CERT}, "APP_NOT_ALLOWED"),
    ("ios app", IOS, {"ios_bundle_id": "com.example.app"}, "VALID"),
    ("ios app, other case", IOS, {"ios_bundle_id": "com.example.App"}, "APP_NOT_ALLOWED"),
    ("ios bundle missing", IOS, {}, "APP_NOT_ALLOWED"),
    ("ios key, android context", IOS, {"android_package": "com.example.app"}, "APP_NOT_ALLOWED"),
    ("api bare method", APIS, {"service": GEMINI, "method": "generateContent"}, "VALID"),
    (
        "api qualified method",
        APIS,
        {"service": GEMINI, "method": "google.ai.v1beta.GenerativeService.generateContent"},
        "VALID",
    ),
    ("api prefix pattern", APIS, {"service": GEMINI, "method": "countTokens"}, "VALID"),
    ("api other method", APIS, {"service": GEMINI, "method": "embedContent"}, "API_NOT_ALLOWED"),
    ("api method missing", APIS, {"service": GEMINI}, "API_NOT_ALLOWED"),
    ("api every method", APIS, {"service": "maps.googleapis.com"}, "VALID"),
    ("api other service", APIS, {"service": "translate.googleapis.com"}, "API_NOT_ALLOWED"),
    ("api service missing", APIS, {"method": "generateContent"}, "API_NOT_ALLOWED"),
    (
        "ip and api both allow",
        IPS_AND_APIS,
        {"ip": "203.0.113.7", "service": GEMINI, "method": "generateContent"},
        "VALID",
    ),
    (
        "ip refuses first",
        IPS_AND_APIS,
        {"ip": "10.0.0.1", "service": "translate.googleapis.com"},
        "IP_NOT_ALLOWED",
    ),
    (
        "ip allows, api refuses",
        IPS_AND_APIS,
        {"ip": "203.0.113.7", "service": "translate.googleapis.com"},
        "API_NOT_ALLOWED",
    ),
]
CASE_IDS = [case[0] for case in CASES]

# (case id, environment the key is bound to, environment the verifier declares, expected code)
ENVIRONMENT_CASES: list[tuple[str, str | None, str | None, str]] = [
    ("same environment", "production", "production", "VALID"),
    ("other environment", "production", "staging", "ENVIRONMENT_MISMATCH"),
    ("verifier declares none", "production", None, "VALID"),
    ("key bound to none", None, "staging", "VALID"),
]


def new_key(llavero: Llavero, admin: Actor, **fields: Any) -> tuple[str, str]:
    """A key in a fresh project: (key id, key string)."""
    project = llavero.projects.create(admin, "Restricted")
    created = llavero.keys.create(admin, project.id, **fields)
    return created.key.id, created.key_string


def verify_code(llavero: Llavero, key_string: str, context: dict[str, Any]) -> str:
    return llavero.verifier.verify(VerifyRequest(key=key_string, **context)).code


@pytest.mark.parametrize(("case", "restrictions", "context", "expected"), CASES, ids=CASE_IDS)
def test_verifier_enforces_restrictions(
    llavero: Llavero,
    admin: Actor,
    case: str,
    restrictions: dict[str, Any],
    context: dict[str, str],
    expected: str,
) -> None:
    _, key_string = new_key(llavero, admin, restrictions=restrictions)
    assert verify_code(llavero, key_string, context) == expected


@pytest.mark.parametrize(("case", "restrictions", "context", "expected"), CASES, ids=CASE_IDS)
def test_http_verify_enforces_restrictions(
    llavero: Llavero,
    admin: Actor,
    client: TestClient,
    case: str,
    restrictions: dict[str, Any],
    context: dict[str, str],
    expected: str,
) -> None:
    key_id, key_string = new_key(llavero, admin, restrictions=restrictions)
    response = client.post("/v1/keys:verify", json={"key": key_string, **context})
    assert response.status_code == 200
    body = response.json()
    assert (body["code"], body["valid"]) == (expected, expected == "VALID")
    assert body["key_id"] == key_id


@pytest.mark.parametrize(("case", "restrictions", "context", "expected"), CASES, ids=CASE_IDS)
def test_dry_run_reaches_the_verify_verdict(
    llavero: Llavero,
    admin: Actor,
    case: str,
    restrictions: dict[str, Any],
    context: dict[str, str],
    expected: str,
) -> None:
    key_id, _ = new_key(llavero, admin, restrictions=restrictions)
    result = llavero.keys.test_restrictions(admin, key_id, context)
    assert result.allowed is (expected == "VALID")
    assert (result.code or "VALID") == expected


@pytest.mark.parametrize(
    ("case", "bound", "declared", "expected"),
    ENVIRONMENT_CASES,
    ids=[case[0] for case in ENVIRONMENT_CASES],
)
def test_environment_binding(
    llavero: Llavero,
    admin: Actor,
    client: TestClient,
    case: str,
    bound: str | None,
    declared: str | None,
    expected: str,
) -> None:
    key_id, key_string = new_key(llavero, admin, environment=bound)
    assert verify_code(llavero, key_string, {"environment": declared}) == expected
    body = client.post("/v1/keys:verify", json={"key": key_string, "environment": declared}).json()
    assert (body["code"], body["environment"]) == (expected, bound)
    dry_run = llavero.keys.test_restrictions(admin, key_id, {"environment": declared})
    assert (dry_run.code or "VALID") == expected


def test_expired_key_fails_from_its_expiry_time(
    llavero: Llavero, admin: Actor, clock: FrozenClock, client: TestClient
) -> None:
    expiry = clock.now() + timedelta(seconds=60)
    key_id, key_string = new_key(llavero, admin, expire_time=expiry)
    clock.advance(59)
    assert verify_code(llavero, key_string, {}) == "VALID"
    clock.advance(1)
    assert verify_code(llavero, key_string, {}) == "EXPIRED"
    assert client.post("/v1/keys:verify", json={"key": key_string}).json()["code"] == "EXPIRED"
    assert llavero.keys.test_restrictions(admin, key_id, {}).code == "EXPIRED"


def test_state_is_checked_before_restrictions(llavero: Llavero, admin: Actor) -> None:
    key_id, key_string = new_key(llavero, admin, restrictions=IPS)
    llavero.keys.update(admin, key_id, {"state": "DISABLED"})
    assert verify_code(llavero, key_string, {"ip": "10.0.0.1"}) == "DISABLED"
    llavero.keys.delete(admin, key_id)
    assert verify_code(llavero, key_string, {"ip": "10.0.0.1"}) == "DELETED"
    assert llavero.keys.test_restrictions(admin, key_id, {"ip": "10.0.0.1"}).code == "DELETED"


def test_restrictions_changed_by_update_apply_at_once(llavero: Llavero, admin: Actor) -> None:
    key_id, key_string = new_key(llavero, admin)
    assert verify_code(llavero, key_string, {"ip": "10.0.0.1"}) == "VALID"  # now cached
    llavero.keys.update(admin, key_id, {"restrictions": IPS})
    assert verify_code(llavero, key_string, {"ip": "10.0.0.1"}) == "IP_NOT_ALLOWED"
    llavero.keys.update(admin, key_id, {"restrictions": {}})
    assert verify_code(llavero, key_string, {"ip": "10.0.0.1"}) == "VALID"
