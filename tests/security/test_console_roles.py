"""The console's project-scoped forms obey the same roles as the API (docs/api.md, "Roles"):
they call the service, which reads roles in one place. Each case asserts what the database
holds afterwards, not only the status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.service import Actor, Llavero
from llavero.store import tables

ROLES = ("owner", "editor", "viewer", "stranger")


@pytest.fixture
def browsers(llavero: Llavero, admin: Actor) -> Iterator[dict[str, TestClient]]:
    """A signed-in browser per role on project `team-project`; the stranger owns another."""
    llavero.projects.create(admin, "Team", "team-project")
    llavero.projects.create(admin, "Other", "other-project")
    clients: dict[str, TestClient] = {}
    with llavero.db.transaction() as session:
        for role in ROLES:
            user = llavero.users.create(admin, f"{role}@example.com", None)
            project = "other-project" if role == "stranger" else "team-project"
            membership = "owner" if role == "stranger" else role
            session.add(tables.ProjectMember(project_id=project, user_id=user.id, role=membership))
            cookie, signed_in = llavero.sessions.create(user)
            client = TestClient(create_app(llavero), follow_redirects=False)
            client.cookies.set("llavero_session", cookie)
            client.headers["X-CSRF-Token"] = signed_in.csrf_token
            clients[role] = client
    yield clients
    for client in clients.values():
        client.close()


def key_state(llavero: Llavero, key_id: str) -> tuple[str, str]:
    key = llavero.keys.get(Actor.system(), key_id)
    return key.state, key.display_name


@pytest.mark.parametrize(
    ("role", "changes"), [("owner", True), ("editor", True), ("viewer", False), ("stranger", False)]
)
def test_key_forms_change_a_key_only_for_owners_and_editors(
    llavero: Llavero, admin: Actor, browsers: dict[str, TestClient], role: str, changes: bool
) -> None:
    key = llavero.keys.create(admin, "team-project", display_name="Shared").key.id
    browser = browsers[role]
    browser.post(f"/app/apikey/{key}/rename", data={"display_name": "Mine now"})
    browser.post(f"/app/apikey/{key}/disable")
    assert key_state(llavero, key) == (
        ("DISABLED", "Mine now") if changes else ("ACTIVE", "Shared")
    )
    browser.post(f"/app/apikey/{key}/delete")
    assert (key_state(llavero, key)[0] == "DELETED") is changes


@pytest.mark.parametrize(
    ("role", "status"), [("owner", 200), ("editor", 200), ("viewer", 200), ("stranger", 404)]
)
def test_a_key_page_opens_for_members_of_its_project_only(
    llavero: Llavero, admin: Actor, browsers: dict[str, TestClient], role: str, status: int
) -> None:
    key = llavero.keys.create(admin, "team-project").key.id
    assert browsers[role].get(f"/app/keys/{key}").status_code == status


@pytest.mark.parametrize("role", ROLES)
def test_only_owners_and_editors_create_keys_in_a_project(
    llavero: Llavero, browsers: dict[str, TestClient], role: str
) -> None:
    browsers[role].post("/app/apikey", data={"project": "team-project", "display_name": "New"})
    created = llavero.keys.count(Actor.system(), "team-project")
    assert created == (1 if role in ("owner", "editor") else 0)


@pytest.mark.parametrize("role", ROLES)
def test_only_owners_and_editors_unlink_billing(
    llavero: Llavero, admin: Actor, browsers: dict[str, TestClient], role: str
) -> None:
    account = llavero.billing.create(admin, "Team")
    llavero.billing.link(admin, "team-project", account.id)
    browsers[role].post("/app/billing/projects/team-project/unlink")
    linked = llavero.billing.info(admin, "team-project").billing_account
    assert (linked is None) is (role in ("owner", "editor"))
