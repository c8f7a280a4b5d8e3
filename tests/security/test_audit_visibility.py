"""Who reads which audit events (docs/security.md, "Audit log visibility"): admins every event;
a member only the events of projects they belong to; a token without `admin` only events
about projects. Nobody else learns of users (and their sign-in addresses), tokens or billing
accounts through `GET /v1/audit?target=...`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.service import Actor, Llavero
from llavero.service.users import actor_for

PASSWORD = "correct horse battery"


def session_client(llavero: Llavero, email: str) -> TestClient:
    client = TestClient(create_app(llavero), follow_redirects=False)
    form = client.get("/signin")
    csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": csrf})
    assert answer.status_code == 303
    return client


@pytest.fixture
def world(any_llavero: Llavero, admin: Actor) -> Iterator[dict[str, str]]:
    """Ana owns `ana-project`, Beto owns `beto-project`; each has a key; a token and a billing
    account exist, and Ana has signed in from an address."""
    llavero = any_llavero
    ana = llavero.users.create(admin, "ana@example.com", PASSWORD)
    beto = llavero.users.create(admin, "beto@example.com", PASSWORD)
    llavero.users.authenticate("ana@example.com", PASSWORD, "192.0.2.44")
    llavero.projects.create(actor_for(ana), "Ana", "ana-project")
    llavero.projects.create(actor_for(beto), "Beto", "beto-project")
    ana_key = llavero.keys.create(actor_for(ana), "ana-project").key.id
    beto_key = llavero.keys.create(actor_for(beto), "beto-project").key.id
    token = llavero.tokens.create(admin, ["keys:read"])
    account = llavero.billing.create(admin, "Team")
    yield {
        "ana_key": ana_key,
        "beto_key": beto_key,
        "token": token.token,
        "token_target": f"token/{token.token_info.id}",
        "account_target": f"billing_account/{account.id}",
    }


def events(client: TestClient, target: str, **headers: str) -> list[dict[str, object]]:
    answer = client.get("/v1/audit", params={"target": target}, headers=headers)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, object]] = answer.json()["audit_events"]
    return found


def test_a_member_reads_the_events_of_their_projects_only(
    any_llavero: Llavero, world: dict[str, str]
) -> None:
    with session_client(any_llavero, "beto@example.com") as beto:
        assert events(beto, "project/beto-project")
        assert events(beto, world["beto_key"])
        for target in (
            "project/ana-project",
            world["ana_key"],
            "user/ana@example.com",
            "user/beto@example.com",
            world["token_target"],
            world["account_target"],
        ):
            assert events(beto, target) == [], target
        assert beto.get("/v1/audit").status_code == 403


def test_a_token_without_admin_reads_project_events_only(
    any_llavero: Llavero, world: dict[str, str], admin: Actor
) -> None:
    with TestClient(create_app(any_llavero)) as client:
        bearer = {"Authorization": f"Bearer {world['token']}"}
        assert events(client, world["ana_key"], **bearer)
        assert events(client, "project/beto-project", **bearer)
        for target in ("user/ana@example.com", world["token_target"], world["account_target"]):
            assert events(client, target, **bearer) == [], target
    signins = any_llavero.audit.list(admin, target="user/ana@example.com").items
    assert [event.source_ip for event in signins if event.action == "user.signin"] == ["192.0.2.44"]


def test_an_admin_reads_every_event(any_llavero: Llavero, world: dict[str, str]) -> None:
    with TestClient(create_app(any_llavero)) as client:
        admin_token = any_llavero.tokens.create(Actor.system("test"), ["admin"]).token
        bearer = {"Authorization": f"Bearer {admin_token}"}
        for target in (
            "project/ana-project",
            world["ana_key"],
            "user/ana@example.com",
            world["token_target"],
            world["account_target"],
        ):
            assert events(client, target, **bearer), target


def test_a_key_history_on_the_console_shows_a_member_their_own_key_only(
    any_llavero: Llavero, world: dict[str, str]
) -> None:
    with session_client(any_llavero, "ana@example.com") as ana:
        own = ana.get(f"/app/keys/{world['ana_key']}?hl=en")
        assert own.status_code == 200 and "Key created" in own.text  # the event's name
        assert ana.get(f"/app/keys/{world['beto_key']}").status_code == 404


def test_the_upgrade_gives_existing_events_their_project(database_url: str) -> None:
    """Events written before revision 0003 are read by the members of their project after it."""
    from alembic import command
    from sqlalchemy import text

    from llavero.store import Database

    db = Database(database_url)
    try:
        command.downgrade(db.alembic_config(), "base")  # PostgreSQL's schema is shared
        command.upgrade(db.alembic_config(), "0002")
        rows = [
            ("project.create", "project/old-project", "{}"),
            ("key.create", "3c4e0f6a-key", '{"project": "old-project"}'),
            ("user.signin", "user/ana@example.com", "{}"),
        ]
        with db.engine.begin() as connection:
            for action, target, details in rows:
                connection.execute(
                    text(
                        "INSERT INTO audit_events (time, actor, action, target, details) "
                        "VALUES (CURRENT_TIMESTAMP, 'cli', :action, :target, :details)"
                    ),
                    {"action": action, "target": target, "details": details},
                )
        command.upgrade(db.alembic_config(), "head")
        with db.engine.connect() as connection:
            found = connection.execute(
                text("SELECT action, project_id FROM audit_events ORDER BY id")
            ).all()
        assert [tuple(row) for row in found] == [
            ("project.create", "old-project"),
            ("key.create", "old-project"),
            ("user.signin", None),
        ]
    finally:
        command.downgrade(db.alembic_config(), "base")
        command.upgrade(db.alembic_config(), "head")
        db.dispose()
