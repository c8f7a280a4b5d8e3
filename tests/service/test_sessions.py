import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.core.clock import FrozenClock
from llavero.edges.security import CSRF_HEADER, SESSION_COOKIE
from llavero.service import Actor, Llavero
from llavero.service.sessions import SESSION_TTL


@pytest.fixture
def user(llavero: Llavero, admin: Actor):
    return llavero.users.create(admin, "ana@example.com", "correct horse battery", role="member")


def test_a_session_resumes_until_it_expires(llavero: Llavero, clock: FrozenClock, user) -> None:
    token, signed_in = llavero.sessions.create(user)
    resumed = llavero.sessions.resume(token)
    assert resumed is not None and resumed.user.email == "ana@example.com"
    assert resumed.csrf_token == signed_in.csrf_token
    clock.advance(SESSION_TTL.total_seconds())
    assert llavero.sessions.resume(token) is None


def test_signing_out_and_disabling_end_sessions(llavero: Llavero, admin: Actor, user) -> None:
    first, _ = llavero.sessions.create(user)
    second, _ = llavero.sessions.create(user)
    llavero.sessions.end(first)
    assert llavero.sessions.resume(first) is None
    assert llavero.sessions.resume(second) is not None
    llavero.users.update(admin, user.id, disabled=True)
    assert llavero.sessions.resume(second) is None


def test_unknown_cookie_is_nobody(llavero: Llavero) -> None:
    assert llavero.sessions.resume("made-up") is None
    assert llavero.sessions.resume(None) is None


def test_api_accepts_a_session_cookie_with_csrf_on_writes(llavero: Llavero, user) -> None:
    token, signed_in = llavero.sessions.create(user)
    with TestClient(create_app(llavero)) as client:
        client.cookies.set(SESSION_COOKIE, token)
        assert client.get("/v1/projects").status_code == 200
        refused = client.post("/v1/projects", json={"display_name": "Gemini API"})
        assert refused.status_code == 403
        assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
        assert client.get("/v1/projects").json()["projects"] == []
        created = client.post(
            "/v1/projects",
            json={"display_name": "Gemini API"},
            headers={CSRF_HEADER: signed_in.csrf_token},
        )
        assert created.status_code == 200
        assert [p["id"] for p in client.get("/v1/projects").json()["projects"]] == ["gemini-api"]


def test_every_answer_carries_the_security_headers(client: TestClient) -> None:
    response = client.get("/v1/projects")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
