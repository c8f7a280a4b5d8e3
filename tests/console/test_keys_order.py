"""The keys page's sort orders the whole listing on the server: following `Next page` goes on
in the chosen order, so the pages stitched together are every key in that order."""

from __future__ import annotations

from fastapi.testclient import TestClient

from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from tests.console.console_client import key_names


def next_url(html: str) -> str:
    """The `Next page` link of a page, or "" on the last one."""
    if 'rel="next"' not in html:
        return ""
    href = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    return href.replace("&amp;", "&")


def every_name(console: TestClient, url: str) -> list[str]:
    names: list[str] = []
    while url:
        page = console.get(url)
        assert page.status_code == 200
        names.extend(key_names(page))
        url = next_url(page.text)
    return names


def test_each_sort_orders_every_page(
    console: TestClient, llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    """Names made in an order unlike their alphabetical one, in two projects whose ids sort
    the other way round from their creation."""
    zulu = llavero.projects.create(admin, "Zulu", "zulu-project")
    alpha = llavero.projects.create(admin, "Alpha", "alpha-project")
    made: list[tuple[str, str]] = []
    for number in range(56):
        clock.advance(1)
        project = zulu if number % 2 else alpha
        name = f"key {(number * 37) % 56:02d}"
        llavero.keys.create(admin, project.id, display_name=name)
        made.append((project.id, name))

    newest = [name for _, name in reversed(made)]
    by_project = [name for project, name in reversed(made) if project == alpha.id] + [
        name for project, name in reversed(made) if project == zulu.id
    ]
    assert every_name(console, "/app/apikey") == newest
    assert every_name(console, "/app/apikey?sort=oldest") == newest[::-1]
    assert every_name(console, "/app/apikey?sort=name") == sorted(newest)
    assert every_name(console, "/app/apikey?sort=project") == by_project
