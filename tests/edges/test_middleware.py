from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import flask
import pytest
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llavero.edges.middleware import (
    LlaveroMiddleware,
    LlaveroWSGIMiddleware,
    VerifiedKey,
    verified_key,
    verified_key_of,
)
from llavero.service import Actor, Llavero

GEMINI = "generativelanguage.googleapis.com"


def new_key(llavero: Llavero, admin: Actor, **fields: Any) -> tuple[str, str]:
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, **fields)
    return created.key.id, created.key_string


# --- ASGI: Starlette and FastAPI -----------------------------------------------------------


def fastapi_app(llavero: Llavero, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(LlaveroMiddleware, llavero=llavero, public_paths={"/health"}, **options)

    @app.post("/v1beta/models/{model}")
    def generate(model: str, key: VerifiedKey) -> dict[str, Any]:
        return {"model": model, "key_id": key.key_id, "project": key.project, "plan": key.plan}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture(params=[True, False], ids=["in-thread", "inline"])
def api(llavero: Llavero, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with TestClient(fastapi_app(llavero, service=GEMINI, in_thread=request.param)) as client:
        yield client


def test_the_route_gets_the_verified_key(api: TestClient, llavero: Llavero, admin: Actor) -> None:
    key_id, key = new_key(llavero, admin)
    response = api.post("/v1beta/models/m:generateContent", headers={"x-goog-api-key": key})
    assert response.status_code == 200
    assert response.json() == {
        "model": "m:generateContent",
        "key_id": key_id,
        "project": "gemini-api",
        "plan": "free",
    }
    assert response.headers["ratelimit-limit"] == "10"
    assert response.headers["ratelimit-remaining"] == "9"


def test_a_missing_key_is_refused_before_the_route(api: TestClient) -> None:
    response = api.post("/v1beta/models/m:generateContent")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_public_paths_need_no_key(api: TestClient) -> None:
    assert api.get("/health").json() == {"status": "ok"}


def test_a_revoked_key_is_refused_on_the_next_request(
    api: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin)
    url = f"/v1beta/models/m:generateContent?key={key}"
    assert api.post(url).status_code == 200
    llavero.keys.delete(admin, key_id)
    assert api.post(url).status_code == 401


def test_api_targets_see_the_configured_service_and_the_verb(
    api: TestClient, llavero: Llavero, admin: Actor
) -> None:
    targets = [{"service": GEMINI, "methods": ["generateContent"]}]
    _, key = new_key(llavero, admin, restrictions={"api_targets": targets})
    bearer = {"Authorization": f"Bearer {key}"}
    assert api.post("/v1beta/models/m:generateContent", headers=bearer).status_code == 200
    refused = api.post("/v1beta/models/m:countTokens", headers=bearer)
    assert refused.status_code == 403
    assert refused.json()["error"]["details"][0]["metadata"]["code"] == "API_NOT_ALLOWED"


def test_a_spent_rate_limit_is_429_with_retry_after(
    api: TestClient, llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin, limits={"rpm": 1})
    headers = {"X-API-Key": key}
    assert api.post("/v1beta/models/m:generateContent", headers=headers).status_code == 200
    refused = api.post("/v1beta/models/m:generateContent", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert refused.headers["retry-after"] == "60"  # the frozen clock stands at a minute's start


def test_a_plain_starlette_app_reads_the_key_from_request_state(
    llavero: Llavero, admin: Actor
) -> None:
    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"key_id": verified_key(request).key_id})

    app = Starlette(routes=[Route("/whoami", whoami)])
    app.add_middleware(LlaveroMiddleware, llavero=llavero)
    key_id, key = new_key(llavero, admin)
    with TestClient(app) as client:
        assert client.get("/whoami", headers={"x-goog-api-key": key}).json() == {"key_id": key_id}
        assert client.get("/whoami").status_code == 401


def test_cors_added_after_answers_preflights_before_llavero(llavero: Llavero) -> None:
    app = fastapi_app(llavero)
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://app.example.com"], allow_methods=["POST"]
    )
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
    }
    with TestClient(app) as client:
        response = client.options("/v1beta/models/m:generateContent", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert client.post("/v1beta/models/m:generateContent").status_code == 401


def test_the_dependency_without_the_middleware_is_a_programming_error() -> None:
    app = FastAPI()

    @app.get("/")
    def root(key: VerifiedKey) -> str:
        return key.code

    with TestClient(app) as client, pytest.raises(RuntimeError, match="LlaveroMiddleware"):
        client.get("/")


# --- WSGI: Flask ---------------------------------------------------------------------------


@pytest.fixture
def flask_client(llavero: Llavero) -> Any:
    app = flask.Flask("llavero-test")

    @app.post("/v1beta/models/<model>")
    def generate(model: str) -> dict[str, Any]:
        key = verified_key_of(flask.request.environ)
        return {"model": model, "key_id": key.key_id, "project": key.project}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    app.wsgi_app = LlaveroWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, llavero, service=GEMINI, public_paths={"/health"}
    )
    return app.test_client()


def test_flask_routes_get_the_verified_key(
    flask_client: Any, llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin)
    response = flask_client.post(f"/v1beta/models/m:generateContent?key={key}")
    assert response.status_code == 200
    assert response.get_json() == {
        "model": "m:generateContent",
        "key_id": key_id,
        "project": "gemini-api",
    }
    assert response.headers["RateLimit-Remaining"] == "9"


def test_flask_refusals_are_google_errors(
    flask_client: Any, llavero: Llavero, admin: Actor
) -> None:
    missing = flask_client.post("/v1beta/models/m:generateContent")
    assert missing.status_code == 401
    assert missing.get_json()["error"]["status"] == "UNAUTHENTICATED"
    _, key = new_key(llavero, admin, restrictions={"allowed_ips": ["203.0.113.0/24"]})
    outside = flask_client.post("/v1beta/models/m:x", headers={"x-goog-api-key": key})
    assert outside.status_code == 403
    assert outside.get_json()["error"]["details"][0]["reason"] == "API_KEY_IP_ADDRESS_BLOCKED"


def test_flask_rate_limits_and_public_paths(
    flask_client: Any, llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin, limits={"rpm": 1})
    headers = {"Authorization": f"Bearer {key}"}
    assert flask_client.post("/v1beta/models/m:x", headers=headers).status_code == 200
    refused = flask_client.post("/v1beta/models/m:x", headers=headers)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "60"
    assert flask_client.get("/health").get_json() == {"status": "ok"}
