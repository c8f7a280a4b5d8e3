"""The REST API end to end in process: projects, keys, lifecycle, lookup, verify, audit, paging,
`Cache-Control: no-store`, and the interactive docs served without any CDN."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero


def test_docs_and_redoc_load_only_local_assets(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*["']([^"']+)["']""", response.text)
        assert urls, page
        for url in urls:
            assert url.startswith("/"), f"{page} loads {url}"
            assert client.get(url).status_code == 200, url
        assert "http://" not in response.text
        assert "https://" not in response.text


@pytest.fixture
def api(any_llavero: Llavero, admin: Actor) -> Iterator[TestClient]:
    """The REST API on every reachable database, signed in with an admin token."""
    token = any_llavero.tokens.create(admin, ["admin"]).token
    with TestClient(create_app(any_llavero)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {token}"
        yield test_client


def test_key_lifecycle_over_http(api: TestClient, clock: FrozenClock) -> None:
    project = api.post("/v1/projects", json={"display_name": "Gemini API"})
    assert project.status_code == 200
    assert project.headers["cache-control"] == "no-store"
    project_id = project.json()["id"]

    created = api.post(
        f"/v1/projects/{project_id}/keys",
        json={"display_name": "web", "environment": "production", "annotations": {"a": "b"}},
    )
    assert created.status_code == 200
    key_string = created.json()["key_string"]
    key = created.json()["key"]
    assert key["last4"] == key_string[-4:]
    assert created.headers["cache-control"] == "no-store"

    shown = api.get(f"/v1/keys/{key['id']}")
    assert shown.json() == key
    assert key_string not in shown.text
    assert shown.headers["cache-control"] == "no-store"
    listed = api.get(f"/v1/projects/{project_id}/keys").json()
    assert listed == {"keys": [key], "next_page_token": ""}
    assert key_string not in api.get("/v1/projects/-/keys").text

    def verdict(**extra: str) -> str:
        answer = api.post("/v1/keys:verify", json={"key": key_string, **extra})
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        code: str = answer.json()["code"]
        return code

    assert verdict() == "VALID"
    assert verdict(environment="staging") == "ENVIRONMENT_MISMATCH"
    assert api.patch(f"/v1/keys/{key['id']}", json={"state": "DISABLED"}).status_code == 200
    assert verdict() == "DISABLED"
    assert api.patch(f"/v1/keys/{key['id']}", json={"state": "ACTIVE"}).json()["state"] == "ACTIVE"
    deleted = api.delete(f"/v1/keys/{key['id']}").json()
    assert (deleted["state"], deleted["purge_time"] is not None) == ("DELETED", True)
    assert verdict() == "DELETED"
    assert api.get(f"/v1/projects/{project_id}/keys").json()["keys"] == []
    shown_deleted = api.get(f"/v1/projects/{project_id}/keys", params={"show_deleted": True})
    assert [k["id"] for k in shown_deleted.json()["keys"]] == [key["id"]]
    assert api.post(f"/v1/keys/{key['id']}:undelete").json()["state"] == "ACTIVE"
    assert verdict() == "VALID"

    expire = (clock.now() + timedelta(seconds=30)).isoformat()
    assert api.patch(f"/v1/keys/{key['id']}", json={"expire_time": expire}).status_code == 200
    clock.advance(30)
    assert verdict() == "EXPIRED"
    mistyped = key_string[:-1] + ("x" if key_string[-1] != "x" else "y")
    assert api.post("/v1/keys:verify", json={"key": mistyped}).json()["code"] == "MALFORMED"

    looked_up = api.post("/v1/keys:lookup", json={"key_string": key_string}).json()
    assert looked_up == {"project": project_id, "key": key["id"], "state": "ACTIVE"}

    actions = [event["action"] for event in api.get("/v1/audit").json()["audit_events"]]
    assert actions[:6] == [
        "key.update",
        "key.undelete",
        "key.delete",
        "key.enable",
        "key.disable",
        "key.create",
    ]
    events = api.get("/v1/audit", params={"target": key["id"]}).json()["audit_events"]
    assert {event["source_ip"] for event in events} == {"testclient"}
    assert key_string not in api.get("/v1/audit").text


def test_lists_page_with_tokens(api: TestClient) -> None:
    for index in range(5):
        api.post("/v1/projects", json={"display_name": f"Paged project {index}"})
    seen: list[str] = []
    token = ""
    while True:
        page = api.get("/v1/projects", params={"page_size": 2, "page_token": token}).json()
        seen += [project["id"] for project in page["projects"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seen == sorted(seen) and len(set(seen)) == 5


def test_project_read_rename_delete(api: TestClient) -> None:
    project = api.post("/v1/projects", json={"display_name": "First", "id": "first-project"})
    assert project.json()["id"] == "first-project"
    renamed = api.patch("/v1/projects/first-project", json={"display_name": "Renamed"})
    assert renamed.json()["display_name"] == "Renamed"
    assert api.get("/v1/projects/first-project").json()["display_name"] == "Renamed"
    assert api.delete("/v1/projects/first-project").status_code == 204
    assert api.get("/v1/projects/first-project").status_code == 404


def test_openapi_document_lists_the_spec_paths(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    for path in (
        "/v1/projects",
        "/v1/projects/{project}",
        "/v1/projects/{project}/keys",
        "/v1/keys/{key}",
        "/v1/keys/{key}:undelete",
        "/v1/keys/{key}:rotate",
        "/v1/keys:verify",
        "/v1/keys:lookup",
        "/v1/audit",
    ):
        assert path in document["paths"], path
