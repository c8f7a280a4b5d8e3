"""`/v1/projects/{project}/members` over HTTP: the SPEC's shapes and codes, the address as a
percent-encoded path segment, and a member's own session refused what its role does not allow."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.service import Actor, Llavero
from llavero.service.users import actor_for

PASSWORD = "correct horse battery"


def test_an_admin_manages_members_with_the_spec_shapes(client: TestClient) -> None:
    project = client.post("/v1/projects", json={"display_name": "Shared API"}).json()["id"]
    added = client.post(
        f"/v1/projects/{project}/members", json={"email": "Bob@Partner.test", "role": "viewer"}
    )
    assert added.status_code == 200
    assert added.json() == {"email": "bob@partner.test", "role": "viewer", "invited": True}
    path = f"/v1/projects/{project}/members/bob%40partner.test"
    assert client.patch(path, json={"role": "editor"}).json()["role"] == "editor"
    assert client.get(f"/v1/projects/{project}/members").json() == {
        "members": [{"email": "bob@partner.test", "role": "editor", "invited": True}]
    }
    assert client.delete(path).status_code == 204
    assert client.get(f"/v1/projects/{project}/members").json() == {"members": []}


def test_errors_name_the_field(client: TestClient) -> None:
    project = client.post("/v1/projects", json={"display_name": "Shared API"}).json()["id"]
    bad_role = client.post(
        f"/v1/projects/{project}/members", json={"email": "a@b.test", "role": "admin"}
    )
    assert bad_role.status_code == 400
    assert "role" in bad_role.json()["error"]["message"]
    bad_email = client.post(
        f"/v1/projects/{project}/members", json={"email": "nope", "role": "viewer"}
    )
    assert (bad_email.status_code, bad_email.json()["error"]["status"]) == (400, "INVALID_ARGUMENT")
    assert "email" in bad_email.json()["error"]["message"]
    missing = client.get("/v1/projects/no-such-project/members")
    assert missing.status_code == 404
    gone = client.delete(f"/v1/projects/{project}/members/nobody%40example.com")
    assert gone.status_code == 404


def test_the_last_owner_cannot_be_removed_or_demoted(llavero: Llavero, admin: Actor) -> None:
    ana = llavero.users.create(admin, "ana@example.com", PASSWORD)
    project = llavero.projects.create(actor_for(ana), "Shared API").id
    token = llavero.tokens.create(admin, ["admin"]).token
    with TestClient(create_app(llavero)) as http:
        http.headers["Authorization"] = f"Bearer {token}"
        path = f"/v1/projects/{project}/members/ana%40example.com"
        demoted = http.patch(path, json={"role": "viewer"})
        assert demoted.status_code == 412
        assert demoted.json()["error"]["status"] == "FAILED_PRECONDITION"
        assert http.delete(path).status_code == 412
    assert [m.role for m in llavero.members.list(admin, project)] == ["owner"]


def test_a_viewer_session_reads_but_cannot_write(llavero: Llavero, admin: Actor) -> None:
    ana = llavero.users.create(admin, "ana@example.com", PASSWORD)
    bob = llavero.users.create(admin, "bob@example.com", PASSWORD)
    project = llavero.projects.create(actor_for(ana), "Shared API").id
    key = llavero.keys.create(actor_for(ana), project).key
    llavero.members.add(actor_for(ana), project, "bob@example.com", "viewer")
    cookie, signed_in = llavero.sessions.create(bob)
    with TestClient(create_app(llavero)) as http:
        http.cookies.set("llavero_session", cookie)
        csrf = {"X-CSRF-Token": signed_in.csrf_token}
        assert http.get(f"/v1/keys/{key.id}").status_code == 200
        assert http.get(f"/v1/projects/{project}/members").status_code == 200
        assert http.delete(f"/v1/keys/{key.id}", headers=csrf).status_code == 403
        refused = http.post(
            f"/v1/projects/{project}/members",
            json={"email": "mallory@example.com", "role": "owner"},
            headers=csrf,
        )
        assert refused.status_code == 403
    assert llavero.keys.get(admin, key.id).state == "ACTIVE"
    assert [m.email for m in llavero.members.list(admin, project)] == [
        "ana@example.com",
        "bob@example.com",
    ]
