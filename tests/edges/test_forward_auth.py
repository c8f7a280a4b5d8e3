from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.codes import Code
from llavero.core.verify import VerifyRequest, VerifyResult
from llavero.edges import answers
from llavero.edges.credentials import ProxyTrust
from llavero.edges.forward_auth import ForwardAuth
from llavero.service import Actor, Llavero

GEMINI = "generativelanguage.googleapis.com"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture
def proxy(llavero: Llavero) -> Iterator[TestClient]:
    """The API as a proxy reaches it: no management token, the client's headers only."""
    with TestClient(create_app(llavero)) as test_client:
        yield test_client


def new_key(llavero: Llavero, admin: Actor, **fields: Any) -> tuple[str, str]:
    project = llavero.projects.create(admin, "Gemini API", "gemini-api-" + str(len(fields)))
    created = llavero.keys.create(admin, project.id, **fields)
    return created.key.id, created.key_string


def error_of(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_valid_key_in_the_original_uri_is_allowed_with_identity_headers(
    proxy: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin)
    response = proxy.get(
        "/v1/forward-auth",
        headers={"X-Original-URI": f"{GENERATE}?alt=sse&key={key}", "X-Original-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["x-llavero-key-id"] == key_id
    assert response.headers["x-llavero-project"] == "gemini-api-0"
    assert response.content == b""


@pytest.mark.parametrize("header", ["x-goog-api-key", "x-api-key"])
def test_keys_in_headers_are_allowed(
    proxy: TestClient, llavero: Llavero, admin: Actor, header: str
) -> None:
    _, key = new_key(llavero, admin)
    assert proxy.get("/v1/forward-auth", headers={header: key}).status_code == 200
    bearer = {"Authorization": f"Bearer {key}"}
    assert proxy.get("/v1/forward-auth", headers=bearer).status_code == 200


def test_a_missing_key_is_401_with_www_authenticate_and_a_google_body(proxy: TestClient) -> None:
    response = proxy.get("/v1/forward-auth", headers={"X-Original-URI": GENERATE})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = error_of(response)
    assert (error["code"], error["status"]) == (401, "UNAUTHENTICATED")
    assert error["details"][0]["reason"] == "API_KEY_MISSING"
    assert json.loads(response.headers["x-llavero-error"]) == response.json()


def test_a_deleted_key_is_refused_at_once(
    proxy: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin)
    assert proxy.get("/v1/forward-auth", headers={"x-goog-api-key": key}).status_code == 200
    llavero.keys.delete(admin, key_id)
    response = proxy.get("/v1/forward-auth", headers={"x-goog-api-key": key})
    assert response.status_code == 401
    assert error_of(response)["message"] == "API key not valid. Please pass a valid API key."
    assert response.headers["x-llavero-code"] == "DELETED"


def test_a_mistyped_key_is_401_and_never_echoed(proxy: TestClient) -> None:
    typo = "llv_" + "B" * 38
    response = proxy.get("/v1/forward-auth", headers={"X-Original-URI": f"/x?key={typo}"})
    assert response.status_code == 401
    assert response.headers["x-llavero-code"] == "MALFORMED"
    assert typo not in response.text
    assert typo not in str(response.headers)


def test_api_targets_use_the_service_header_and_the_method_of_the_uri(
    proxy: TestClient, llavero: Llavero, admin: Actor
) -> None:
    targets = [{"service": GEMINI, "methods": ["*.generateContent"]}]
    _, key = new_key(llavero, admin, restrictions={"api_targets": targets})
    base = {"x-goog-api-key": key, "X-Llavero-Service": GEMINI}
    allowed = proxy.get("/v1/forward-auth", headers={**base, "X-Original-URI": GENERATE})
    assert allowed.status_code == 200
    counted = {**base, "X-Original-URI": "/v1beta/models/gemini-2.5-flash:countTokens"}
    refused = proxy.get("/v1/forward-auth", headers=counted)
    assert refused.status_code == 403
    assert error_of(refused)["status"] == "PERMISSION_DENIED"
    assert refused.headers["x-llavero-code"] == "API_NOT_ALLOWED"


def test_traefik_headers_carry_the_uri(proxy: TestClient, llavero: Llavero, admin: Actor) -> None:
    targets = [{"service": GEMINI, "methods": ["generateContent"]}]
    _, key = new_key(llavero, admin, restrictions={"api_targets": targets})
    headers = {
        "X-Forwarded-Uri": f"{GENERATE}?key={key}",
        "X-Forwarded-Method": "POST",
        "X-Forwarded-Host": GEMINI,
    }
    assert proxy.get("/v1/forward-auth", headers=headers).status_code == 200


def test_envoy_sends_the_original_method_and_path_under_the_prefix(
    proxy: TestClient, llavero: Llavero, admin: Actor
) -> None:
    targets = [{"service": GEMINI, "methods": ["generateContent"]}]
    _, key = new_key(llavero, admin, restrictions={"api_targets": targets})
    response = proxy.post(
        f"/v1/forward-auth{GENERATE}", headers={"x-goog-api-key": key, "X-Llavero-Service": GEMINI}
    )
    assert response.status_code == 200


def test_ip_restrictions_see_the_client_behind_a_trusted_proxy(
    settings: Settings, llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin, restrictions={"allowed_ips": ["203.0.113.0/24"]})
    trusted = ForwardAuth(llavero.verifier, ProxyTrust(["127.0.0.0/8"]))
    inside = {"x-goog-api-key": key, "x-forwarded-for": "203.0.113.7"}
    outside = {"x-goog-api-key": key, "x-forwarded-for": "198.51.100.7"}
    assert trusted.check(inside, "127.0.0.1", "/v1/forward-auth", "").status == 200
    refused = trusted.check(outside, "127.0.0.1", "/v1/forward-auth", "")
    assert (refused.status, refused.headers["X-Llavero-Code"]) == (403, "IP_NOT_ALLOWED")
    untrusting = ForwardAuth(llavero.verifier, ProxyTrust())
    assert untrusting.check(inside, "127.0.0.1", "/v1/forward-auth", "").status == 403


class RateLimited:
    """A verifier whose minute limit is spent: the shape rate limits give verify's answer."""

    def verify(self, request: VerifyRequest) -> VerifyResult:
        limits = {
            "rpm": {"limit": 10, "remaining": 0, "reset_seconds": 17},
            "rpd": {"limit": 250, "remaining": 200, "reset_seconds": 5000},
        }
        return VerifyResult(Code.RATE_LIMITED, "key-1", "proj", "free", None, limits)


@pytest.mark.parametrize("status", [429, 403])
def test_rate_limits_answer_429_or_403_for_nginx_with_retry_after(status: int) -> None:
    answer = ForwardAuth(RateLimited(), ProxyTrust()).check(
        {"x-api-key": "k"}, "127.0.0.1", "/v1/forward-auth", "", rate_limited_status=status
    )
    assert answer.status == status
    assert answer.headers["Retry-After"] == "17"
    assert answer.headers["X-Llavero-Status"] == "429"
    assert answer.headers["RateLimit-Remaining"] == "0"
    body = json.loads(answer.body)["error"]
    assert (body["code"], body["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert body["details"][1]["retryDelay"] == "17s"


def test_only_429_and_403_are_accepted_for_rate_limits(proxy: TestClient) -> None:
    response = proxy.get("/v1/forward-auth?rate_limited_status=500")
    assert response.status_code == 400
    assert "rate_limited_status" in error_of(response)["message"]
    assert proxy.get("/v1/forward-auth?rate_limited_status=403").status_code == 401
    assert proxy.get("/v1/forward-auth?rate_limited_status=429").status_code == 401


def test_a_spent_daily_quota_retries_at_the_end_of_the_utc_day(
    proxy: TestClient, llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin, limits={"rpd": 1})
    assert proxy.get("/v1/forward-auth", headers={"x-api-key": key}).status_code == 200
    refused = proxy.get("/v1/forward-auth", headers={"x-api-key": key})
    assert refused.status_code == 429
    assert refused.headers["x-llavero-code"] == "QUOTA_EXCEEDED"
    assert refused.headers["retry-after"] == "86400"  # the frozen clock stands at 00:00 UTC
    assert error_of(refused)["details"][0]["reason"] == "QUOTA_EXCEEDED"


@pytest.mark.parametrize("code", [code for code in Code if code is not Code.VALID])
def test_every_refusing_verify_code_has_its_own_http_verdict(code: str) -> None:
    refusal = answers.refusal(VerifyResult(code))
    assert refusal is not None
    assert refusal.verdict is answers.VERDICTS[code]
    expected = {"RATE_LIMITED": 429, "QUOTA_EXCEEDED": 429}.get(
        code, 403 if code.endswith(("_NOT_ALLOWED", "_MISMATCH")) else 401
    )
    assert refusal.status == expected
    assert refusal.body()["error"]["code"] == expected
