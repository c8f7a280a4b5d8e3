"""Project members in the service layer, on SQLite and PostgreSQL: roles, invitations that
become memberships at the first sign-in, the last owner, who may manage, and audit events."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from llavero.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    LlaveroError,
    NotFound,
    PermissionDenied,
)
from llavero.service import Actor, Llavero
from llavero.service.models import Member
from llavero.service.users import actor_for

PASSWORD = "correct horse battery"


def a_user(llavero: Llavero, admin: Actor, email: str) -> Actor:
    return actor_for(llavero.users.create(admin, email, PASSWORD))


@pytest.fixture
def team(any_llavero: Llavero, admin: Actor) -> tuple[Llavero, Actor, str]:
    """Ana, a member, owns a project she created."""
    ana = a_user(any_llavero, admin, "ana@example.com")
    return any_llavero, ana, any_llavero.projects.create(ana, "Shared API").id


def rows(llavero: Llavero, project: str) -> list[tuple[str, str, bool]]:
    return [(m.email, m.role, m.invited) for m in llavero.members.list(Actor.system(), project)]


def test_the_creator_is_the_owner(team: tuple[Llavero, Actor, str]) -> None:
    llavero, _, project = team
    assert rows(llavero, project) == [("ana@example.com", "owner", False)]


def test_an_owner_adds_members_and_invites_addresses_without_an_account(
    team: tuple[Llavero, Actor, str], admin: Actor
) -> None:
    llavero, ana, project = team
    a_user(llavero, admin, "eve@example.com")
    assert llavero.members.add(ana, project, "Eve@Example.com ", "editor") == Member(
        email="eve@example.com", role="editor", invited=False
    )
    assert llavero.members.add(ana, project, "bob@partner.test", "viewer").invited
    assert rows(llavero, project) == [
        ("ana@example.com", "owner", False),
        ("eve@example.com", "editor", False),
        ("bob@partner.test", "viewer", True),
    ]
    actions = [
        e.action for e in llavero.audit.list(Actor.system(), target=f"project/{project}").items
    ]
    assert actions.count("member.add") == 2


def test_an_invitation_becomes_a_membership_at_the_first_sign_in(
    team: tuple[Llavero, Actor, str], admin: Actor
) -> None:
    llavero, ana, project = team
    llavero.members.add(ana, project, "bob@partner.test", "viewer")
    bob = llavero.users.create(admin, "bob@partner.test", PASSWORD)
    assert rows(llavero, project)[-1] == ("bob@partner.test", "viewer", True)
    llavero.sessions.create(llavero.users.authenticate("bob@partner.test", PASSWORD))
    assert rows(llavero, project)[-1] == ("bob@partner.test", "viewer", False)
    assert [p.id for p in llavero.projects.list(actor_for(bob)).items] == [project]
    actions = [
        e.action for e in llavero.audit.list(Actor.system(), target=f"project/{project}").items
    ]
    assert "member.join" in actions


def test_roles_decide_who_may_change_what(team: tuple[Llavero, Actor, str], admin: Actor) -> None:
    llavero, ana, project = team
    eve, bob = a_user(llavero, admin, "eve@example.com"), a_user(llavero, admin, "bob@x.test")
    llavero.members.add(ana, project, "eve@example.com", "editor")
    llavero.members.add(ana, project, "bob@x.test", "viewer")
    key = llavero.keys.create(eve, project, display_name="by the editor").key  # editors: keys
    assert llavero.keys.get(bob, key.id).id == key.id  # viewers read
    with pytest.raises(PermissionDenied):
        llavero.keys.create(bob, project)
    with pytest.raises(PermissionDenied):
        llavero.keys.delete(bob, key.id)
    for who in (eve, bob):  # only owners manage members, rename and delete
        with pytest.raises(PermissionDenied):
            llavero.members.add(who, project, "new@example.com", "viewer")
        with pytest.raises(PermissionDenied):
            llavero.projects.rename(who, project, "Taken over")
    assert rows(llavero, project)[-1] == ("bob@x.test", "viewer", False)


def test_an_outsider_does_not_learn_the_project_exists(
    team: tuple[Llavero, Actor, str], admin: Actor
) -> None:
    llavero, _, project = team
    mallory = a_user(llavero, admin, "mallory@example.com")
    with pytest.raises(NotFound):
        llavero.members.list(mallory, project)
    with pytest.raises(NotFound):
        llavero.members.add(mallory, project, "mallory@example.com", "owner")


def test_a_project_keeps_at_least_one_owner(team: tuple[Llavero, Actor, str], admin: Actor) -> None:
    llavero, ana, project = team
    with pytest.raises(FailedPrecondition):
        llavero.members.set_role(ana, project, "ana@example.com", "editor")
    with pytest.raises(FailedPrecondition):
        llavero.members.remove(ana, project, "ana@example.com")
    a_user(llavero, admin, "eve@example.com")
    llavero.members.add(ana, project, "eve@example.com", "owner")
    llavero.members.set_role(ana, project, "ana@example.com", "viewer")
    assert rows(llavero, project) == [
        ("eve@example.com", "owner", False),
        ("ana@example.com", "viewer", False),
    ]


def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    team: tuple[Llavero, Actor, str], admin: Actor
) -> None:
    llavero, ana, project = team
    eve = a_user(llavero, admin, "eve@example.com")
    llavero.members.add(ana, project, "eve@example.com", "owner")

    def demote(pair: tuple[Actor, str]) -> str:
        try:
            llavero.members.set_role(pair[0], project, pair[1], "editor")
        except LlaveroError as error:
            return error.status
        except Exception as error:  # the database refused one of the two writers
            return type(error).__name__
        return "OK"

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(demote, [(ana, "eve@example.com"), (eve, "ana@example.com")]))
    owners = [email for email, role, _ in rows(llavero, project) if role == "owner"]
    assert len(owners) == 1, outcomes
    assert outcomes.count("OK") == 1, outcomes


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [("not an address", "viewer", "email"), ("x@example.com", "admin", "role")],
)
def test_bad_input_names_the_field_and_changes_nothing(
    team: tuple[Llavero, Actor, str], email: str, role: str, field: str
) -> None:
    llavero, ana, project = team
    before = rows(llavero, project)
    with pytest.raises(InvalidArgument) as refused:
        llavero.members.add(ana, project, email, role)
    assert refused.value.field == field
    assert rows(llavero, project) == before


def test_adding_twice_is_a_conflict_and_unknown_members_are_not_found(
    team: tuple[Llavero, Actor, str],
) -> None:
    llavero, ana, project = team
    llavero.members.add(ana, project, "bob@partner.test", "viewer")
    with pytest.raises(AlreadyExists):
        llavero.members.add(ana, project, "bob@partner.test", "editor")
    with pytest.raises(NotFound):
        llavero.members.set_role(ana, project, "nobody@example.com", "viewer")
    llavero.members.remove(ana, project, "bob@partner.test")
    assert rows(llavero, project) == [("ana@example.com", "owner", False)]
