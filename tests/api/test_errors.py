"""Every bad input gets the SPEC error body with a message that names the field, and writes
nothing: every table, the audit log and the change feed included, is the same after it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from llavero.store.tables import Base

STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
}


def snapshot(llavero: Llavero) -> dict[str, list[tuple[Any, ...]]]:
    with llavero.db.engine.connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


@pytest.fixture
def world(llavero: Llavero, admin: Actor) -> dict[str, str]:
    project = llavero.projects.create(admin, "Existing project", "existing-project").id
    key = llavero.keys.create(admin, project, display_name="live")
    llavero.projects.create(admin, "Second project", "second-project")
    return {
        "project": project,
        "key": key.key.id,
        "key_string": key.key_string,
        "projects_token": llavero.projects.list(admin, page_size=1).next_page_token,
    }


def expect_error(
    llavero: Llavero,
    client: TestClient,
    method: str,
    path: str,
    status: int,
    field: str,
    **request: Any,
) -> str:
    before = snapshot(llavero)
    response = client.request(method, path, **request)
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == status
    assert body["error"]["status"] == STATUSES[status]
    message: str = body["error"]["message"]
    assert field in message, message
    assert snapshot(llavero) == before, "a refused request wrote something"
    return message


LONG = "x" * 101
PAST = "2000-01-01T00:00:00Z"

BAD_BODIES = [
    # (method, path template, json body, status, field named)
    ("POST", "/v1/projects", {}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": 5}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": None}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": LONG}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": "   "}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": "tab\tname"}, 400, "display_name"),
    ("POST", "/v1/projects", {"display_name": "ok", "id": "Bad_Id"}, 400, "id"),
    ("POST", "/v1/projects", {"display_name": "ok", "id": "existing-project"}, 409, "id"),
    ("POST", "/v1/projects", {"display_name": "ok", "colour": "red"}, 400, "colour"),
    ("POST", "/v1/projects", ["display_name"], 400, "body"),
    ("PATCH", "/v1/projects/{project}", {"display_name": LONG}, 400, "display_name"),
    ("PATCH", "/v1/projects/no-such-project", {"display_name": "ok"}, 404, "project"),
    ("DELETE", "/v1/projects/{project}", None, 412, "project"),
    ("POST", "/v1/projects/no-such-project/keys", {}, 404, "project"),
    ("POST", "/v1/projects/{project}/keys", {"display_name": LONG}, 400, "display_name"),
    ("POST", "/v1/projects/{project}/keys", {"display_name": ""}, 400, "display_name"),
    ("POST", "/v1/projects/{project}/keys", {"expire_time": "tomorrow"}, 400, "expire_time"),
    ("POST", "/v1/projects/{project}/keys", {"expire_time": PAST}, 400, "expire_time"),
    ("POST", "/v1/projects/{project}/keys", {"environment": "Prod!"}, 400, "environment"),
    ("POST", "/v1/projects/{project}/keys", {"annotations": []}, 400, "annotations"),
    ("POST", "/v1/projects/{project}/keys", {"annotations": {"team": 5}}, 400, "annotations.team"),
    (
        "POST",
        "/v1/projects/{project}/keys",
        {"restrictions": {"allowed_ips": ["10.0.0.0/8", "not an ip"]}},
        400,
        "restrictions.allowed_ips[1]",
    ),
    ("POST", "/v1/projects/{project}/keys", {"restrictions": []}, 400, "restrictions"),
    ("POST", "/v1/projects/{project}/keys", {"limits": {"rpm": -1}}, 400, "limits.rpm"),
    ("POST", "/v1/projects/{project}/keys", {"key_string": "mine"}, 400, "key_string"),
    ("PATCH", "/v1/keys/{key}", {"state": "DELETED"}, 400, "state"),
    ("PATCH", "/v1/keys/{key}", {"key_hash": "0" * 64}, 400, "key_hash"),
    ("PATCH", "/v1/keys/{key}", {"display_name": LONG}, 400, "display_name"),
    ("PATCH", "/v1/keys/{key}", {"expire_time": PAST}, 400, "expire_time"),
    ("PATCH", "/v1/keys/00000000-0000-4000-8000-000000000000", {"state": "ACTIVE"}, 404, "key"),
    ("POST", "/v1/keys/{key}:rotate", {"grace_period_seconds": 604_801}, 400, "grace_period"),
    ("POST", "/v1/keys/{key}:rotate", {"grace_period_seconds": -1}, 400, "grace_period"),
    ("POST", "/v1/keys/{key}:rotate", {"grace_period_seconds": True}, 400, "grace_period"),
    ("POST", "/v1/keys/{key}:rotate", {"grace_period_seconds": "60"}, 400, "grace_period"),
    ("POST", "/v1/keys/{key}:undelete", None, 412, "key"),
    ("POST", "/v1/keys:verify", {}, 400, "key"),
    ("POST", "/v1/keys:verify", {"key": "llv_x", "cost": False}, 400, "cost"),
    ("POST", "/v1/keys:verify", {"key": "llv_x", "cost": -1}, 400, "cost"),
    ("POST", "/v1/keys:verify", {"key": 12345}, 400, "key"),
    ("POST", "/v1/keys:lookup", {"key_string": "llv_not_a_key"}, 400, "key_string"),
    ("POST", "/v1/keys:lookup", {}, 400, "key_string"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD_BODIES)
def test_bad_input_names_the_field_and_writes_nothing(
    llavero: Llavero,
    client: TestClient,
    world: dict[str, str],
    method: str,
    path: str,
    body: Any,
    status: int,
    field: str,
) -> None:
    request: dict[str, Any] = {} if body is None else {"json": body}
    expect_error(llavero, client, method, path.format(**world), status, field, **request)


BAD_QUERIES = [
    ("/v1/projects", {"page_token": "bm90IGEgdG9rZW4"}, "page_token"),
    ("/v1/projects", {"page_token": "%%%"}, "page_token"),
    ("/v1/projects", {"page_size": 5000}, "page_size"),
    ("/v1/projects", {"page_size": "ten"}, "page_size"),
    ("/v1/projects/{project}/keys", {"page_token": "{projects_token}"}, "page_token"),
    ("/v1/projects/{project}/keys", {"filter": "colour=red"}, "filter"),
    ("/v1/projects/{project}/keys", {"filter": "state=GONE"}, "filter"),
    ("/v1/projects/{project}/keys", {"show_deleted": "perhaps"}, "show_deleted"),
    ("/v1/projects/no-such-project/keys", {}, "project"),
    ("/v1/audit", {"page_token": "{projects_token}"}, "page_token"),
]


@pytest.mark.parametrize(("path", "params", "field"), BAD_QUERIES)
def test_bad_query_names_the_parameter(
    llavero: Llavero,
    client: TestClient,
    world: dict[str, str],
    path: str,
    params: dict[str, Any],
    field: str,
) -> None:
    params = {name: str(value).format(**world) for name, value in params.items()}
    status = 404 if "no-such-project" in path else 400
    expect_error(llavero, client, "GET", path.format(**world), status, field, params=params)


def test_malformed_json_is_a_400_naming_the_body(
    llavero: Llavero, client: TestClient, world: dict[str, str]
) -> None:
    expect_error(
        llavero,
        client,
        "POST",
        f"/v1/projects/{world['project']}/keys",
        400,
        "body",
        content=b'{"display_name": ',
        headers={"Content-Type": "application/json"},
    )


@pytest.mark.parametrize(
    ("scopes", "method", "path", "body", "needed"),
    [
        (["keys:read"], "POST", "/v1/projects/{project}/keys", {}, "keys:write"),
        (["keys:read"], "DELETE", "/v1/keys/{key}", None, "keys:write"),
        (["keys:verify"], "GET", "/v1/projects/{project}/keys", None, "keys:read"),
        (["keys:write"], "POST", "/v1/projects", {"display_name": "no"}, "projects:write"),
        (["keys:read"], "POST", "/v1/keys:verify", {"key": "llv_x"}, "keys:verify"),
        (["keys:write"], "GET", "/v1/audit", None, "admin"),
        (["keys:write"], "POST", "/v1/keys:lookup", {"key_string": "{key_string}"}, "admin"),
    ],
)
def test_a_missing_scope_is_403_naming_it_and_writes_nothing(
    llavero: Llavero,
    client: TestClient,
    admin: Actor,
    world: dict[str, str],
    scopes: list[str],
    method: str,
    path: str,
    body: dict[str, str] | None,
    needed: str,
) -> None:
    client.headers["Authorization"] = f"Bearer {llavero.tokens.create(admin, scopes).token}"
    request: dict[str, Any] = {}
    if body is not None:
        request["json"] = {name: value.format(**world) for name, value in body.items()}
    message = expect_error(llavero, client, method, path.format(**world), 403, needed, **request)
    assert world["key_string"] not in message


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer llvtok_nope",
        # Well formed (valid checksum) but never issued; fixed so that collection is stable.
        f"Bearer llvtok_{'A' * 32}{keyformat.checksum('llvtok', 'A' * 32)}",
    ],
)
def test_missing_or_unknown_credentials_are_401(
    llavero: Llavero, client: TestClient, world: dict[str, str], authorization: str | None
) -> None:
    del client.headers["Authorization"]
    headers = {} if authorization is None else {"Authorization": authorization}
    expect_error(
        llavero,
        client,
        "POST",
        f"/v1/projects/{world['project']}/keys",
        401,
        "token",
        json={},
        headers=headers,
    )


def test_expired_and_revoked_tokens_are_401(
    llavero: Llavero, client: TestClient, admin: Actor, clock: FrozenClock, world: dict[str, str]
) -> None:
    expiring = llavero.tokens.create(admin, ["admin"], expire_time=clock.now() + timedelta(hours=1))
    revoked = llavero.tokens.create(admin, ["admin"])
    llavero.tokens.revoke(admin, revoked.token_info.id)
    clock.advance(3600)
    for token in (expiring.token, revoked.token):
        client.headers["Authorization"] = f"Bearer {token}"
        expect_error(llavero, client, "GET", "/v1/projects", 401, "token")


def test_a_key_string_in_place_of_an_id_is_not_echoed(
    llavero: Llavero, client: TestClient, world: dict[str, str]
) -> None:
    for path in (f"/v1/keys/{world['key_string']}", f"/v1/projects/{world['key_string']}"):
        message = expect_error(llavero, client, "GET", path, 404, "does not exist")
        assert world["key_string"] not in message
        assert world["key_string"][4:] not in message
    report = {"key_id": world["key_string"], "units": 1, "request_id": "report-1"}
    message = expect_error(llavero, client, "POST", "/v1/usage:report", 404, "key_id", json=report)
    assert world["key_string"][4:] not in message


def test_an_unknown_key_id_is_named(llavero: Llavero, client: TestClient) -> None:
    key_id = "00000000-0000-4000-8000-000000000000"
    message = expect_error(llavero, client, "GET", f"/v1/keys/{key_id}", 404, "key")
    assert key_id in message
