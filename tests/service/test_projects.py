"""Projects in the service layer, on SQLite and PostgreSQL: ids and numbers, validation,
paging, rename, delete (refused while keys live), membership, scopes and audit events."""

from __future__ import annotations

import pytest

from llavero.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from llavero.service import Actor, Llavero
from llavero.service.projects import slugify
from llavero.service.users import actor_for


def test_create_derives_id_number_plan_and_audits(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    assert project.id == "gemini-api"
    assert 10**11 <= project.number < 10**12
    assert (project.display_name, project.plan, project.billing_account) == (
        "Gemini API",
        "free",
        None,
    )
    assert any_llavero.projects.get(admin, "gemini-api") == project
    event = any_llavero.audit.list(admin, target="project/gemini-api").items[0]
    assert (event.action, event.actor, event.details) == (
        "project.create",
        "test",
        {"display_name": "Gemini API"},
    )


def test_ids_and_numbers_are_unique(any_llavero: Llavero, admin: Actor) -> None:
    created = [any_llavero.projects.create(admin, "Same name") for _ in range(4)]
    assert len({project.id for project in created}) == 4
    assert len({project.number for project in created}) == 4
    assert created[0].id == "same-name"
    assert all(project.id.startswith("same-name-") for project in created[1:])


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Gemini API", "gemini-api"), ("Ñandú Búho", "nandu-buho"), ("123 go", "project-123-go")],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_short_names_get_a_numbered_id(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "API")
    assert project.id.startswith("api-")
    assert len(project.id) == len("api-") + 5


def test_explicit_id_rules(any_llavero: Llavero, admin: Actor) -> None:
    assert any_llavero.projects.create(admin, "Mine", "my-project").id == "my-project"
    with pytest.raises(AlreadyExists) as taken:
        any_llavero.projects.create(admin, "Again", "my-project")
    assert taken.value.field == "id"
    for bad in (
        "short",
        "Upper-case",
        "ends-with-",
        "9starts-with-digit",
        "x" * 31,
        "has_underscore",
    ):
        with pytest.raises(InvalidArgument) as error:
            any_llavero.projects.create(admin, "Bad", bad)
        assert error.value.field == "id"


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "line\nbreak", 7])
def test_display_name_rules(any_llavero: Llavero, admin: Actor, name: object) -> None:
    with pytest.raises(InvalidArgument) as error:
        any_llavero.projects.create(admin, name)  # type: ignore[arg-type]
    assert error.value.field == "display_name"
    assert any_llavero.projects.list(admin).items == []


def test_list_pages_through_every_project_once(any_llavero: Llavero, admin: Actor) -> None:
    ids = {any_llavero.projects.create(admin, f"Project number {n}").id for n in range(5)}
    seen: list[str] = []
    token: str | None = None
    for _ in range(3):
        page = any_llavero.projects.list(admin, page_size=2, page_token=token)
        seen += [project.id for project in page.items]
        token = page.next_page_token
    assert token == ""
    assert seen == sorted(ids)


def test_rename_audits_old_and_new(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "Old name").id
    renamed = any_llavero.projects.rename(admin, project, "New name")
    assert (renamed.id, renamed.display_name) == (project, "New name")
    event = any_llavero.audit.list(admin, target=f"project/{project}").items[0]
    assert (event.action, event.details) == (
        "project.rename",
        {"old": "Old name", "new": "New name"},
    )


def test_delete_is_refused_while_keys_live(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "Doomed project").id
    key = any_llavero.keys.create(admin, project).key.id
    any_llavero.keys.update(admin, key, {"state": "DISABLED"})
    with pytest.raises(FailedPrecondition) as error:
        any_llavero.projects.delete(admin, project)
    assert error.value.field == "project"
    any_llavero.keys.delete(admin, key)
    any_llavero.projects.delete(admin, project)
    with pytest.raises(NotFound):
        any_llavero.projects.get(admin, project)
    assert any_llavero.projects.list(admin).items == []
    assert any_llavero.keys.list(admin, show_deleted=True).items == []
    with pytest.raises(NotFound):
        any_llavero.keys.create(admin, project)


def test_members_see_and_change_only_their_projects(any_llavero: Llavero, admin: Actor) -> None:
    alice = actor_for(any_llavero.users.create(admin, "alice@example.com", None))
    bob = actor_for(any_llavero.users.create(admin, "bob@example.com", None))
    mine = any_llavero.projects.create(alice, "Alice project").id
    any_llavero.projects.create(admin, "Admin project")
    assert [project.id for project in any_llavero.projects.list(alice).items] == [mine]
    assert any_llavero.projects.list(bob).items == []
    with pytest.raises(NotFound):
        any_llavero.projects.get(bob, mine)
    with pytest.raises(NotFound):
        any_llavero.projects.rename(bob, mine, "Taken over")
    assert len(any_llavero.projects.list(admin).items) == 2


def test_scopes_are_required(any_llavero: Llavero, admin: Actor) -> None:
    reader = Actor("token:reader", frozenset({"keys:read"}))
    with pytest.raises(PermissionDenied, match="projects:write"):
        any_llavero.projects.create(reader, "Not allowed")
    project = any_llavero.projects.create(admin, "Readable").id
    assert any_llavero.projects.get(reader, project).id == project
    with pytest.raises(PermissionDenied):
        any_llavero.projects.delete(reader, project)
    nobody = Actor("token:verifier", frozenset({"keys:verify"}))
    with pytest.raises(PermissionDenied, match="keys:read"):
        any_llavero.projects.list(nobody)
