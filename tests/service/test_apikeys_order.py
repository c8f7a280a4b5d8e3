"""Listing keys in each `order_by`, on SQLite and PostgreSQL: pages stitched together are the
whole list in that order (ties broken by id), and a page token continues only its own order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from llavero.core.clock import FrozenClock
from llavero.errors import InvalidArgument
from llavero.service import Actor, Llavero, models
from llavero.service.key_listing import ORDERS

# (project, display name, seconds after the previous key): equal names and equal times on
# purpose, so that only the id can break some ties.
KEYS = (
    ("zeta-project", "beta", 0),
    ("alpha-project", "Beta", 0),
    ("zeta-project", "alpha", 5),
    ("alpha-project", "gamma", 0),
    ("zeta-project", "beta", 0),
    ("alpha-project", "Alpha", 7),
    ("zeta-project", "delta", 0),
    ("alpha-project", "beta", 3),
    ("zeta-project", "Gamma", 0),
)


def newest_first(keys: list[models.Key]) -> list[models.Key]:
    return sorted(keys, key=lambda key: (key.create_time, key.id), reverse=True)


EXPECTED: dict[str, Callable[[list[models.Key]], list[models.Key]]] = {
    "create_time desc": newest_first,
    "create_time": lambda keys: sorted(keys, key=lambda key: (key.create_time, key.id)),
    "display_name": lambda keys: sorted(keys, key=lambda key: (key.display_name.lower(), key.id)),
    # sorted() is stable: within a project the keys stay newest first
    "project": lambda keys: sorted(newest_first(keys), key=lambda key: key.project),
}


@pytest.fixture
def made(any_llavero: Llavero, admin: Actor, clock: FrozenClock) -> list[models.Key]:
    for project in ("zeta-project", "alpha-project"):
        any_llavero.projects.create(admin, project.replace("-", " ").title(), project)
    made = []
    for project, name, wait in KEYS:
        clock.advance(wait)
        made.append(any_llavero.keys.create(admin, project, display_name=name).key)
    return made


def every_page(llavero: Llavero, actor: Actor, size: int, **listing: Any) -> list[models.Key]:
    keys: list[models.Key] = []
    token = None
    while True:
        page = llavero.keys.list(actor, page_size=size, page_token=token, **listing)
        assert len(page.items) <= size
        keys.extend(page.items)
        if not page.next_page_token:
            return keys
        token = page.next_page_token


def ids(keys: list[models.Key]) -> list[str]:
    return [key.id for key in keys]


def test_the_expectations_cover_every_order() -> None:
    assert set(EXPECTED) == set(ORDERS)


@pytest.mark.parametrize("order_by", sorted(EXPECTED))
def test_pages_stitched_together_are_the_whole_sorted_list(
    any_llavero: Llavero, admin: Actor, made: list[models.Key], order_by: str
) -> None:
    expected = ids(EXPECTED[order_by](made))
    for size in (1, 2, 4, len(made)):
        assert ids(every_page(any_llavero, admin, size, order_by=order_by)) == expected


def test_the_orders_differ_on_this_data(made: list[models.Key]) -> None:
    """Otherwise the test above could pass with one order for all."""
    orders = {tuple(ids(sort(made))) for sort in EXPECTED.values()}
    assert len(orders) == len(EXPECTED)


def test_newest_first_is_the_default_and_asc_and_spacing_are_accepted(
    any_llavero: Llavero, admin: Actor, made: list[models.Key]
) -> None:
    assert ids(every_page(any_llavero, admin, 2)) == ids(newest_first(made))
    spelled = {"create_time  asc": "create_time", " display_name ": "display_name"}
    for given, order_by in spelled.items():
        assert every_page(any_llavero, admin, 3, order_by=given) == every_page(
            any_llavero, admin, 3, order_by=order_by
        )


def test_order_with_a_filter_and_one_project(
    any_llavero: Llavero, admin: Actor, made: list[models.Key]
) -> None:
    listed = every_page(
        any_llavero, admin, 1, project_id="zeta-project", filter="name:a", order_by="display_name"
    )
    chosen = [key for key in made if key.project == "zeta-project" and "a" in key.display_name]
    assert ids(listed) == ids(EXPECTED["display_name"](chosen))


def test_names_outside_ascii_page_in_the_databases_own_order(
    any_llavero: Llavero, admin: Actor
) -> None:
    """SQLite lowers ASCII only, Python and PostgreSQL lower more: paging must follow the
    database whatever it does."""
    project = any_llavero.projects.create(admin, "Unicode", "unicode-names").id
    for name in ("Ñandú", "ñu", "Árbol", "árbol", "Zorro", "nube", "Éter", "ÑANDÚ"):
        any_llavero.keys.create(admin, project, display_name=name)
    whole = every_page(any_llavero, admin, 1000, order_by="display_name")
    assert len(whole) == 8
    assert every_page(any_llavero, admin, 1, order_by="display_name") == whole
    assert every_page(any_llavero, admin, 3, order_by="display_name") == whole


@pytest.mark.parametrize("order_by", sorted(EXPECTED))
def test_a_page_token_of_another_order_is_refused(
    any_llavero: Llavero, admin: Actor, made: list[models.Key], order_by: str
) -> None:
    token = any_llavero.keys.list(admin, page_size=2, order_by=order_by).next_page_token
    for other in sorted(set(EXPECTED) - {order_by}):
        with pytest.raises(InvalidArgument) as refused:
            any_llavero.keys.list(admin, page_size=2, page_token=token, order_by=other)
        assert refused.value.field == "page_token"


@pytest.mark.parametrize(
    "order_by", ["last_used_time", "display_name desc", "create_time sideways", "project,id"]
)
def test_an_unknown_order_is_refused_naming_order_by(
    any_llavero: Llavero, admin: Actor, order_by: str
) -> None:
    with pytest.raises(InvalidArgument) as refused:
        any_llavero.keys.list(admin, order_by=order_by)
    assert refused.value.field == "order_by"
