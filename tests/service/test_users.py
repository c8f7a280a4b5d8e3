"""Console users in the service layer, on SQLite and PostgreSQL: Argon2id hashes, unique
emails, throttled sign-in with one answer for every failure, one-time sign-in links, roles,
and the bootstrap of an empty database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from llavero.core.clock import FrozenClock
from llavero.errors import (
    AlreadyExists,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from llavero.service import Actor, Llavero
from llavero.service.users import actor_for
from llavero.store import tables

PASSWORD = "correct horse battery"


def test_create_stores_an_argon2id_hash(any_llavero: Llavero, admin: Actor) -> None:
    user = any_llavero.users.create(admin, " Ana@Example.COM ", PASSWORD)
    assert (user.email, user.role, user.disabled) == ("ana@example.com", "member", False)
    with any_llavero.db.reading() as session:
        row = session.scalar(select(tables.User))
    assert row is not None and row.password_hash is not None
    assert row.password_hash.startswith("$argon2id$")
    assert PASSWORD not in row.password_hash
    with pytest.raises(AlreadyExists) as error:
        any_llavero.users.create(admin, "ANA@example.com", PASSWORD)
    assert error.value.field == "email"


@pytest.mark.parametrize(
    ("email", "password", "role", "field"),
    [
        ("not an email", PASSWORD, "member", "email"),
        ("a@b", "short", "member", "password"),
        ("a@b", "x" * 1025, "member", "password"),
        ("a@b", PASSWORD, "owner", "role"),
    ],
)
def test_create_validates_each_field(
    any_llavero: Llavero, admin: Actor, email: str, password: str, role: str, field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        any_llavero.users.create(admin, email, password, role=role)
    assert error.value.field == field
    assert any_llavero.users.count() == 0


def test_only_admins_create_users(any_llavero: Llavero, admin: Actor) -> None:
    member = actor_for(any_llavero.users.create(admin, "m@example.com", PASSWORD))
    with pytest.raises(PermissionDenied):
        any_llavero.users.create(member, "other@example.com", PASSWORD)


def test_sign_in_gives_one_answer_for_every_failure(any_llavero: Llavero, admin: Actor) -> None:
    any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    assert any_llavero.users.authenticate("ANA@example.com", PASSWORD).email == "ana@example.com"
    messages = set()
    for email, password in (("ana@example.com", "wrong password"), ("nobody@x.org", PASSWORD)):
        with pytest.raises(Unauthenticated) as error:
            any_llavero.users.authenticate(email, password)
        messages.add(error.value.message)
    assert len(messages) == 1


def test_sign_in_is_refused_after_five_failures_until_the_backoff_ends(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            any_llavero.users.authenticate("ana@example.com", "guess")
    with pytest.raises(ResourceExhausted):
        any_llavero.users.authenticate("ana@example.com", PASSWORD)
    clock.advance(15 * 60 + 1)
    assert any_llavero.users.authenticate("ana@example.com", PASSWORD).last_signin_time == (
        clock.now()
    )


def test_a_disabled_user_cannot_sign_in(any_llavero: Llavero, admin: Actor) -> None:
    user = any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    any_llavero.users.update(admin, user.id, disabled=True)
    with pytest.raises(Unauthenticated):
        any_llavero.users.authenticate("ana@example.com", PASSWORD)


def test_users_change_their_own_password_only(any_llavero: Llavero, admin: Actor) -> None:
    ana = any_llavero.users.create(admin, "ana@example.com", PASSWORD)
    bob = any_llavero.users.create(admin, "bob@example.com", PASSWORD)
    as_ana = actor_for(ana)
    any_llavero.users.update(as_ana, ana.id, password="a brand new password")
    assert any_llavero.users.authenticate("ana@example.com", "a brand new password").id == ana.id
    with pytest.raises(PermissionDenied):
        any_llavero.users.update(as_ana, bob.id, password="hijacked password")
    with pytest.raises(PermissionDenied):
        any_llavero.users.update(as_ana, ana.id, role="admin")


def test_signin_links_work_once_and_expire(
    any_llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    user = any_llavero.users.create(admin, "ana@example.com", None)
    link = any_llavero.users.create_signin_link(admin, user.id)
    assert any_llavero.users.redeem_signin_link(link).id == user.id
    with pytest.raises(Unauthenticated):
        any_llavero.users.redeem_signin_link(link)
    later = any_llavero.users.create_signin_link(admin, user.id, ttl=timedelta(hours=24))
    clock.advance(24 * 3600)
    with pytest.raises(Unauthenticated):
        any_llavero.users.redeem_signin_link(later)
    with pytest.raises(Unauthenticated):
        any_llavero.users.redeem_signin_link("")
    with any_llavero.db.reading() as session:
        stored = session.scalars(select(tables.SigninLink.token_hash)).all()
    assert link not in stored and later not in stored


def test_bootstrap_runs_once_on_an_empty_database(any_llavero: Llavero) -> None:
    first = any_llavero.bootstrap("owner@example.com")
    assert first is not None
    assert first.email == "owner@example.com"
    assert any_llavero.tokens.authenticate(first.management_token).is_admin
    assert any_llavero.users.redeem_signin_link(first.signin_token).role == "admin"
    assert any_llavero.bootstrap("second@example.com") is None
    assert any_llavero.users.count() == 1


def test_a_second_instance_racing_the_bootstrap_serves_without_one(
    any_llavero: Llavero, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances started at once on an empty database both find no user; the one that
    creates the admin second gets None, not an error that would stop its server."""
    other = Llavero(any_llavero.settings, clock=any_llavero.ctx.clock)
    try:
        monkeypatch.setattr(other.users, "count", lambda: 0)  # it looked before the first won
        assert any_llavero.bootstrap() is not None
        assert other.bootstrap() is None
        assert any_llavero.users.count() == 1
    finally:
        other.close()
