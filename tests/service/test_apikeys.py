"""API keys in the service layer, on SQLite and PostgreSQL: creation (string once, hash only),
reads, keyset paging with equal times, filters, partial update, delete/undelete within 30 days,
purge, lookup, and an audit event plus a change-feed row for every change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from llavero.service import Actor, Llavero
from llavero.store import tables

DAY = 86_400


@pytest.fixture
def project(any_llavero: Llavero, admin: Actor) -> str:
    return any_llavero.projects.create(admin, "Key tests").id


def changes(llavero: Llavero) -> int:
    with llavero.db.reading() as session:
        return session.scalar(select(func.count()).select_from(tables.Change)) or 0


def test_create_shows_the_string_once_and_stores_only_its_hash(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    created = any_llavero.keys.create(
        admin,
        project,
        display_name="Gemini key",
        environment="production",
        annotations={"team": "ml"},
    )
    key = created.key
    assert keyformat.is_well_formed(created.key_string, "llv")
    assert key.last4 == created.key_string[-4:]
    assert (key.project, key.display_name, key.state) == (project, "Gemini key", "ACTIVE")
    assert (key.environment, key.annotations) == ("production", {"team": "ml"})
    assert key.delete_time is None and key.purge_time is None
    with any_llavero.db.reading() as session:
        row = session.get(tables.Key, key.id)
    assert row is not None
    assert row.key_hash == any_llavero.ctx.hasher.hash(created.key_string)
    assert any_llavero.keys.get(admin, key.id) == key
    assert "key_string" not in any_llavero.keys.get(admin, key.id).model_dump()
    event = any_llavero.audit.list(admin, target=key.id).items[0]
    assert (event.action, event.details) == ("key.create", {"project": project})
    assert changes(any_llavero) == 1


def test_default_display_name(any_llavero: Llavero, admin: Actor, project: str) -> None:
    assert any_llavero.keys.create(admin, project).key.display_name == "API key"


def test_list_is_newest_first_and_pages_through_equal_times(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    older = {any_llavero.keys.create(admin, project).key.id for _ in range(3)}
    clock.advance(60)
    newer = {any_llavero.keys.create(admin, project).key.id for _ in range(4)}
    seen: list[str] = []
    token: str | None = None
    while True:
        page = any_llavero.keys.list(admin, project, page_size=2, page_token=token)
        seen += [key.id for key in page.items]
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 7
    assert set(seen[:4]) == newer
    assert set(seen[4:]) == older
    assert any_llavero.keys.count(admin, project) == 7


def test_filters(any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock) -> None:
    soon = clock.now() + timedelta(days=3)
    production = any_llavero.keys.create(
        admin, project, display_name="Gemini prod", environment="production", expire_time=soon
    ).key.id
    staging = any_llavero.keys.create(
        admin, project, display_name="gemini staging", environment="staging"
    ).key.id
    other = any_llavero.keys.create(admin, project, display_name="Other 100%").key.id
    any_llavero.keys.update(admin, other, {"state": "DISABLED"})

    def ids(text: str) -> set[str]:
        return {key.id for key in any_llavero.keys.list(admin, project, filter=text).items}

    assert ids("name:GEMINI") == {production, staging}
    assert ids("environment=production") == {production}
    assert ids("state=disabled") == {other}
    assert ids("name:gemini AND state=ACTIVE environment=staging") == {staging}
    assert ids("expiring_within_days=7") == {production}
    assert ids("expiring_within_days=1") == set()
    assert ids("name:100%") == {other}
    assert ids("name:%") == {other}
    for bad in ("colour=red", "state=GONE", "expiring_within_days=soon", "name"):
        with pytest.raises(InvalidArgument) as error:
            ids(bad)
        assert error.value.field == "filter"


def test_update_changes_only_the_fields_given(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key = any_llavero.keys.create(admin, project, display_name="Before", environment="dev").key
    clock.advance(5)
    updated = any_llavero.keys.update(admin, key.id, {"display_name": "After"})
    assert (updated.display_name, updated.environment) == ("After", "dev")
    assert updated.update_time > key.update_time
    any_llavero.keys.update(admin, key.id, {"state": "DISABLED"})
    any_llavero.keys.update(admin, key.id, {"state": "ACTIVE"})
    actions = [event.action for event in any_llavero.audit.list(admin, target=key.id).items]
    assert actions == ["key.enable", "key.disable", "key.update", "key.create"]
    assert changes(any_llavero) == 4


def test_a_refused_update_changes_nothing(any_llavero: Llavero, admin: Actor, project: str) -> None:
    key = any_llavero.keys.create(admin, project, display_name="Stays").key
    for bad, field in (
        ({"display_name": "ok", "state": "DELETED"}, "state"),
        ({"key_hash": "0" * 64}, "key_hash"),
        ({"environment": "Not Valid"}, "environment"),
        ({"annotations": {"bad key!": "x"}}, "annotations.bad key!"),
    ):
        with pytest.raises(InvalidArgument) as error:
            any_llavero.keys.update(admin, key.id, bad)
        assert error.value.field == field
    assert any_llavero.keys.get(admin, key.id) == key
    assert changes(any_llavero) == 1


def test_delete_undelete_within_30_days_then_purge(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    key = any_llavero.keys.create(admin, project).key
    deleted = any_llavero.keys.delete(admin, key.id)
    assert deleted.state == "DELETED"
    assert deleted.purge_time == clock.now() + timedelta(days=30)
    assert any_llavero.keys.list(admin, project).items == []
    assert [k.id for k in any_llavero.keys.list(admin, project, show_deleted=True).items] == [
        key.id
    ]
    with pytest.raises(FailedPrecondition):
        any_llavero.keys.delete(admin, key.id)
    with pytest.raises(FailedPrecondition):
        any_llavero.keys.update(admin, key.id, {"display_name": "no"})
    with pytest.raises(FailedPrecondition):
        any_llavero.keys.rotate(admin, key.id, 0)
    clock.advance(29 * DAY)
    assert any_llavero.keys.undelete(admin, key.id).state == "ACTIVE"
    with pytest.raises(FailedPrecondition):
        any_llavero.keys.undelete(admin, key.id)

    any_llavero.keys.delete(admin, key.id)
    clock.advance(30 * DAY + 1)
    with pytest.raises(FailedPrecondition, match="30 days"):
        any_llavero.keys.undelete(admin, key.id)
    assert any_llavero.keys.purge() == 1
    with pytest.raises(NotFound):
        any_llavero.keys.get(admin, key.id)
    actions = [event.action for event in any_llavero.audit.list(admin, target=key.id).items]
    assert actions == ["key.purge", "key.delete", "key.undelete", "key.delete", "key.create"]


def test_purge_keeps_recently_deleted_and_live_keys(
    any_llavero: Llavero, admin: Actor, project: str, clock: FrozenClock
) -> None:
    live = any_llavero.keys.create(admin, project).key.id
    recent = any_llavero.keys.create(admin, project).key.id
    any_llavero.keys.delete(admin, recent)
    clock.advance(30 * DAY)
    assert any_llavero.keys.purge() == 0
    assert {key.id for key in any_llavero.keys.list(admin, show_deleted=True).items} == {
        live,
        recent,
    }


def test_lookup(any_llavero: Llavero, admin: Actor, project: str) -> None:
    created = any_llavero.keys.create(admin, project)
    found = any_llavero.keys.lookup(admin, created.key_string)
    assert (found.project, found.key, found.state) == (project, created.key.id, "ACTIVE")
    new = any_llavero.keys.rotate(admin, created.key.id, 60).key_string
    assert any_llavero.keys.lookup(admin, created.key_string).key == created.key.id
    assert any_llavero.keys.lookup(admin, new).key == created.key.id
    with pytest.raises(NotFound) as missing:
        any_llavero.keys.lookup(admin, keyformat.generate("llv"))
    assert missing.value.field == "key_string"
    with pytest.raises(InvalidArgument) as malformed:
        any_llavero.keys.lookup(admin, created.key_string[:-1] + "!")
    assert created.key_string[:-1] not in malformed.value.message
    with pytest.raises(PermissionDenied):
        any_llavero.keys.lookup(Actor("token:w", frozenset({"keys:write"})), new)


def test_keys_of_another_members_project_do_not_exist_for_you(
    any_llavero: Llavero, admin: Actor, project: str
) -> None:
    from llavero.service.users import actor_for

    member = actor_for(any_llavero.users.create(admin, "member@example.com", None))
    key = any_llavero.keys.create(admin, project).key.id
    with pytest.raises(NotFound):
        any_llavero.keys.get(member, key)
    with pytest.raises(NotFound):
        any_llavero.keys.delete(member, key)
    assert any_llavero.keys.list(member).items == []
