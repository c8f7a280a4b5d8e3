"""Billing accounts and project billing on SQLite and PostgreSQL: plans follow the link."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from llavero.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from llavero.service import Actor, Llavero
from llavero.service.context import MEMBER_SCOPES
from llavero.store import tables
from llavero.store.changes import PROJECT

ACCOUNT_ID = re.compile(r"[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}")


def account_count(llavero: Llavero) -> int:
    with llavero.db.reading() as session:
        return session.scalar(select(func.count()).select_from(tables.BillingAccount)) or 0


def actions(llavero: Llavero, admin: Actor, target: str) -> list[tuple[str, dict[str, object]]]:
    events = llavero.audit.list(admin, target=target).items
    return [(event.action, event.details) for event in reversed(events)]


def project_changes(llavero: Llavero, project_id: str) -> int:
    with llavero.db.reading() as session:
        query = select(func.count()).where(
            tables.Change.kind == PROJECT, tables.Change.target_id == project_id
        )
        return session.scalar(query.select_from(tables.Change)) or 0


def member(llavero: Llavero, admin: Actor) -> Actor:
    user = llavero.users.create(admin, "member@example.com", "a long enough password 123")
    return Actor(user.email, MEMBER_SCOPES, user_id=user.id)


def test_create_account_with_google_like_id_and_defaults(
    any_llavero: Llavero, admin: Actor
) -> None:
    account = any_llavero.billing.create(admin, "  Acme Corp ")

    assert ACCOUNT_ID.fullmatch(account.id)
    assert (account.display_name, account.currency, account.open) == ("Acme Corp", "USD", True)
    assert any_llavero.billing.get(admin, account.id) == account
    assert actions(any_llavero, admin, f"billing_account/{account.id}") == [
        ("billing.create", {"display_name": "Acme Corp", "currency": "USD", "open": True})
    ]


def test_currency_is_upper_cased_and_account_may_start_closed(
    any_llavero: Llavero, admin: Actor
) -> None:
    account = any_llavero.billing.create(admin, "Euro account", currency="eur", open=False)

    assert (account.currency, account.open) == ("EUR", False)


@pytest.mark.parametrize(
    ("display_name", "currency", "is_open", "field"),
    [
        ("", "USD", True, "display_name"),
        ("Acme", "DOLLARS", True, "currency"),
        ("Acme", "XQZ", True, "currency"),
        ("Acme", None, True, "currency"),
        ("Acme", "USD", "yes", "open"),
    ],
)
def test_invalid_account_names_the_field_and_writes_nothing(
    any_llavero: Llavero,
    admin: Actor,
    display_name: str,
    currency: str,
    is_open: bool,
    field: str,
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        any_llavero.billing.create(admin, display_name, currency, is_open)

    assert raised.value.field == field
    assert account_count(any_llavero) == 0


def test_accounts_are_managed_by_admins_only(any_llavero: Llavero, admin: Actor) -> None:
    someone = member(any_llavero, admin)
    account = any_llavero.billing.create(admin, "Acme")

    with pytest.raises(PermissionDenied):
        any_llavero.billing.create(someone, "Mine")
    with pytest.raises(PermissionDenied):
        any_llavero.billing.list(someone)
    with pytest.raises(PermissionDenied):
        any_llavero.billing.close(someone, account.id)
    assert account_count(any_llavero) == 1


def test_list_pages_by_id(any_llavero: Llavero, admin: Actor) -> None:
    created = sorted(any_llavero.billing.create(admin, f"Account {n}").id for n in range(3))

    first = any_llavero.billing.list(admin, page_size=2)
    second = any_llavero.billing.list(admin, page_size=2, page_token=first.next_page_token)

    assert [account.id for account in first.items] == created[:2]
    assert [account.id for account in second.items] == created[2:]
    assert second.next_page_token == ""


@pytest.mark.parametrize(
    "account_id", ["000000-000000-000000", "not-an-id", "abcdef-abcdef-abcdef"]
)
def test_unknown_account_is_not_found(any_llavero: Llavero, admin: Actor, account_id: str) -> None:
    with pytest.raises(NotFound) as raised:
        any_llavero.billing.get(admin, account_id)

    assert raised.value.field == "billing_account"


def test_linking_an_open_account_moves_the_project_to_the_paid_plan(
    any_llavero: Llavero, admin: Actor
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    account = any_llavero.billing.create(admin, "Acme")
    changes_before = project_changes(any_llavero, project.id)

    info = any_llavero.billing.link(admin, project.id, account.id)

    assert (info.project, info.billing_account, info.plan) == (project.id, account.id, "tier-1")
    assert info.limits == {"rpm": 1_000, "rpd": 10_000, "upm": 1_000_000, "upd": 100_000_000}
    assert any_llavero.projects.get(admin, project.id).plan == "tier-1"
    assert any_llavero.billing.info(admin, project.id) == info
    assert project_changes(any_llavero, project.id) == changes_before + 1
    assert actions(any_llavero, admin, f"project/{project.id}")[-1] == (
        "project.billing_link",
        {"billing_account": account.id, "previous_billing_account": None, "plan": "tier-1"},
    )


def test_linking_again_to_the_same_account_writes_nothing(
    any_llavero: Llavero, admin: Actor
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    account = any_llavero.billing.create(admin, "Acme")
    first = any_llavero.billing.link(admin, project.id, account.id)
    changes = project_changes(any_llavero, project.id)

    again = any_llavero.billing.link(admin, project.id, account.id)

    assert again == first
    assert project_changes(any_llavero, project.id) == changes


def test_linking_a_closed_account_fails_and_changes_nothing(
    any_llavero: Llavero, admin: Actor
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    closed = any_llavero.billing.create(admin, "Old", open=False)

    with pytest.raises(FailedPrecondition) as raised:
        any_llavero.billing.link(admin, project.id, closed.id)

    assert raised.value.field == "billing_account"
    after = any_llavero.projects.get(admin, project.id)
    assert (after.billing_account, after.plan) == (None, "free")


def test_linking_an_unknown_account_or_project_is_not_found(
    any_llavero: Llavero, admin: Actor
) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    account = any_llavero.billing.create(admin, "Acme")

    with pytest.raises(NotFound) as no_account:
        any_llavero.billing.link(admin, project.id, "000000-000000-000000")
    with pytest.raises(NotFound) as no_project:
        any_llavero.billing.link(admin, "no-such-project", account.id)

    assert (no_account.value.field, no_project.value.field) == ("billing_account", "project")


def test_unlinking_moves_the_project_back_to_free(any_llavero: Llavero, admin: Actor) -> None:
    project = any_llavero.projects.create(admin, "Gemini API")
    account = any_llavero.billing.create(admin, "Acme")
    any_llavero.billing.link(admin, project.id, account.id)

    info = any_llavero.billing.link(admin, project.id, None)

    assert (info.billing_account, info.plan) == (None, "free")
    assert info.limits == {"rpm": 10, "rpd": 250, "upm": 250_000, "upd": 1_000_000}
    assert actions(any_llavero, admin, f"project/{project.id}")[-1] == (
        "project.billing_unlink",
        {"billing_account": None, "previous_billing_account": account.id, "plan": "free"},
    )


def test_closing_moves_linked_projects_to_free_and_reopening_back(
    any_llavero: Llavero, admin: Actor
) -> None:
    linked = [any_llavero.projects.create(admin, f"Project {n}").id for n in range(2)]
    other = any_llavero.projects.create(admin, "Unbilled").id
    account = any_llavero.billing.create(admin, "Acme")
    for project_id in linked:
        any_llavero.billing.link(admin, project_id, account.id)
    changes = {pid: project_changes(any_llavero, pid) for pid in [*linked, other]}

    closed = any_llavero.billing.close(admin, account.id)

    assert closed.open is False
    plans = {p.id: (p.plan, p.billing_account) for p in any_llavero.projects.list(admin).items}
    assert plans == {
        linked[0]: ("free", account.id),
        linked[1]: ("free", account.id),
        other: ("free", None),
    }
    assert {pid: project_changes(any_llavero, pid) - n for pid, n in changes.items()} == {
        linked[0]: 1,
        linked[1]: 1,
        other: 0,
    }
    assert actions(any_llavero, admin, f"billing_account/{account.id}")[-1] == (
        "billing.close",
        {"projects": sorted(linked), "open": {"old": True, "new": False}},
    )

    any_llavero.billing.reopen(admin, account.id)

    assert {p.plan for p in any_llavero.projects.list(admin).items if p.id in linked} == {"tier-1"}
    assert actions(any_llavero, admin, f"billing_account/{account.id}")[-1][0] == "billing.update"


def test_rename_is_an_update_and_an_unchanged_patch_writes_nothing(
    any_llavero: Llavero, admin: Actor
) -> None:
    account = any_llavero.billing.create(admin, "Acme")

    renamed = any_llavero.billing.update(admin, account.id, display_name="Acme Corp")
    same = any_llavero.billing.update(admin, account.id, display_name="Acme Corp", open=True)

    assert (renamed.display_name, renamed.open) == ("Acme Corp", True)
    assert same == renamed
    assert [
        action for action, _ in actions(any_llavero, admin, f"billing_account/{account.id}")
    ] == [
        "billing.create",
        "billing.update",
    ]


def test_linking_needs_admin_but_a_project_owner_may_unlink(
    any_llavero: Llavero, admin: Actor
) -> None:
    owner = member(any_llavero, admin)
    project = any_llavero.projects.create(owner, "Member project")
    account = any_llavero.billing.create(admin, "Acme")

    with pytest.raises(PermissionDenied):
        any_llavero.billing.link(owner, project.id, account.id)
    any_llavero.billing.link(admin, project.id, account.id)
    assert any_llavero.billing.info(owner, project.id).plan == "tier-1"

    assert any_llavero.billing.unlink(owner, project.id).plan == "free"


def test_plans_are_listed_in_catalogue_order(any_llavero: Llavero) -> None:
    plans = any_llavero.plans.list()

    assert [plan.name for plan in plans] == ["free", "tier-1", "tier-2", "tier-3"]
    assert plans[3].model_dump() == {
        "name": "tier-3",
        "display_name": "Tier 3",
        "rpm": 10_000,
        "rpd": None,
        "upm": 8_000_000,
        "upd": None,
    }
