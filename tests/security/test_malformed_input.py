"""Malformed input is a 400 naming the field and writes nothing, on every edge that used to
answer 500 (docs/security.md, "Malformed input"): lone surrogates and NUL in any text, crafted
page tokens, odd digits in a filter, times at the end of the calendar, a non-ASCII CSRF token.
The API, the console and the CLI's service calls all go through the same text rule."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.errors import InvalidArgument
from llavero.service import Actor, Llavero
from tests.api.test_errors import snapshot
from tests.console.console_client import PASSWORD, sign_in

LONE_SURROGATE = "\ud800"


def bad_request(response: Any, field: str) -> str:
    assert response.status_code == 400, response.text
    message: str = response.json()["error"]["message"]
    assert message.startswith(f"{field}: "), message
    return message


def raw_json(body: dict[str, Any]) -> dict[str, Any]:
    """A body sent as written: `json.dumps` escapes a lone surrogate as `\\ud800`, which is
    valid JSON that decodes back to the lone surrogate on the server."""
    return {
        "content": json.dumps(body).encode(),
        "headers": {"Content-Type": "application/json"},
    }


@pytest.fixture
def project(any_llavero: Llavero, admin: Actor) -> str:
    return any_llavero.projects.create(admin, "Edges", "edge-cases").id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"annotations": {"team": LONE_SURROGATE}}, "annotations.team"),
        ({"annotations": {"team": "a\x00b"}}, "annotations.team"),
        ({"display_name": "Key " + LONE_SURROGATE}, "display_name"),
        (
            {"restrictions": {"allowed_referrers": [LONE_SURROGATE]}},
            "restrictions.allowed_referrers[0]",
        ),
        ({"restrictions": {LONE_SURROGATE: []}}, "restrictions"),
    ],
)
def test_ill_formed_text_in_a_body_is_refused_before_any_write(
    any_llavero: Llavero, api: TestClient, project: str, body: dict[str, Any], field: str
) -> None:
    before = snapshot(any_llavero)
    bad_request(api.post(f"/v1/projects/{project}/keys", **raw_json(body)), field)
    assert snapshot(any_llavero) == before
    listing = api.get("/v1/projects/-/keys")  # the admin's key list still answers
    assert listing.status_code == 200, listing.text


def test_ill_formed_text_in_an_update_is_refused(
    any_llavero: Llavero, api: TestClient, project: str, admin: Actor
) -> None:
    key = any_llavero.keys.create(admin, project).key.id
    before = snapshot(any_llavero)
    body = {"annotations": {"owner": LONE_SURROGATE}}
    bad_request(api.patch(f"/v1/keys/{key}", **raw_json(body)), "annotations.owner")
    bad_request(
        api.patch(f"/v1/projects/{project}", **raw_json({"display_name": "a\x00"})), "display_name"
    )
    assert snapshot(any_llavero) == before
    assert api.get(f"/v1/keys/{key}").status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/keys/%00", {}, "key"),
        ("/v1/projects/%00/keys", {}, "project"),
        ("/v1/projects/-/keys", {"filter": "environment=\x00"}, "filter"),
        ("/v1/projects/-/keys", {"filter": "expiring_within_days=²"}, "filter"),
        ("/v1/projects/-/keys", {"order_by": "\x00"}, "order_by"),
        ("/v1/projects/edge-cases/usage", {"end": "9999-12-31T23:59:59Z"}, "end"),
        ("/v1/projects/edge-cases/usage", {"start": "0001-01-01T00:00:00Z"}, "start"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(
    api: TestClient, project: str, path: str, params: dict[str, str], field: str
) -> None:
    bad_request(api.get(path, params=params), field)


def old_style_token(*values: Any) -> str:
    """What the unsigned codec accepted: base64 of a JSON list starting with the list's kind."""
    raw = json.dumps(list(values)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CRAFTED_TOKENS = [
    old_style_token("keys", 1, 2),
    old_style_token("keys", "not-a-time", "x"),
    old_style_token("projects", {"id": 1}),
    old_style_token("audit", "1 OR 1=1"),
    old_style_token("billing_accounts", None),
    "W10",
    "....",
    "a.b.c",
    "ñandú",
    "x" * 1900,
]
LISTS = ["/v1/projects", "/v1/projects/-/keys", "/v1/audit", "/v1/billingAccounts"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("token", CRAFTED_TOKENS)
def test_a_page_token_the_server_did_not_sign_is_a_400(
    api: TestClient, project: str, path: str, token: str
) -> None:
    bad_request(api.get(path, params={"page_token": token}), "page_token")


def test_a_tampered_page_token_is_a_400(
    api: TestClient, any_llavero: Llavero, admin: Actor
) -> None:
    """A real token with its position changed, or its signature, is refused like any other."""
    for number in range(3):
        any_llavero.projects.create(admin, f"Paged {number}", f"paged-{number}")
    token = api.get("/v1/projects", params={"page_size": 1}).json()["next_page_token"]
    assert api.get("/v1/projects", params={"page_token": token}).status_code == 200
    payload, _, signature = token.partition(".")
    moved = old_style_token("projects", "paged-1")
    for tampered in (f"{moved}.{signature}", f"{payload}.{signature[::-1]}", payload):
        bad_request(api.get("/v1/projects", params={"page_token": tampered}), "page_token")


def test_the_service_refuses_ill_formed_text_for_the_console_and_cli(
    llavero: Llavero, admin: Actor
) -> None:
    """The console's forms and the CLI call the service; its rows go through the same rule."""
    project = llavero.projects.create(admin, "Service", "service").id
    before = snapshot(llavero)
    with pytest.raises(InvalidArgument) as annotations:
        llavero.keys.create(admin, project, annotations={"team": LONE_SURROGATE})
    assert annotations.value.field == "annotations.team"
    with pytest.raises(InvalidArgument) as name:
        llavero.projects.create(admin, "Name " + LONE_SURROGATE)
    assert name.value.field in ("display_name", "id")
    assert snapshot(llavero) == before


def test_a_non_ascii_csrf_token_is_refused_not_a_500(llavero: Llavero, admin: Actor) -> None:
    from llavero.application import create_app

    llavero.users.create(admin, "csrf@example.com", PASSWORD, role="admin")
    with TestClient(
        create_app(llavero), follow_redirects=False, raise_server_exceptions=False
    ) as client:
        form = client.get("/signin")
        assert form.status_code == 200
        refused = client.post(
            "/signin",
            data={"email": "csrf@example.com", "password": PASSWORD, "csrf_token": "ñ"},
        )
        assert refused.status_code == 403
        assert sign_in(client, "csrf@example.com").status_code == 303
        before = snapshot(llavero)
        api = client.post(
            "/v1/projects",
            json={"display_name": "Via session"},
            headers={"X-CSRF-Token": "ñ".encode()},
        )
        assert api.status_code == 403, api.text
        console = client.post("/app/apikey", data={"csrf_token": "ñ"})
        assert console.status_code == 403
        assert snapshot(llavero) == before
