"""Reading console pages in tests: CSRF tokens, table rows as text, signing in."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any, Protocol

from fastapi.testclient import TestClient

PASSWORD = "correct horse battery"
HIDING_TAGS = ("details", "form")
"""Row menus and forms: their controls are not part of what a row reads like."""
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


class Page(Protocol):
    """An answer of the TestClient (httpx or its fork, depending on Starlette's version)."""

    @property
    def text(self) -> str: ...


class Rows(HTMLParser):
    """Visible text of each table row's cells; screen-reader-only text and forms are left out."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._hidden = 0
        self._hidden_tag: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self._hidden_tag is None and ("visually-hidden" in classes or tag in HIDING_TAGS):
            self._hidden_tag = tag
        if tag == self._hidden_tag:
            self._hidden += 1
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == self._hidden_tag:
            self._hidden -= 1
            if not self._hidden:
                self._hidden_tag = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._hidden:
            self._cell.append(data)


def csrf_of(page: Page) -> str:
    match = CSRF_INPUT.search(page.text)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def body_rows(page: Page) -> list[list[str]]:
    return [row for row in Rows(page.text).rows[1:] if row]


def key_names(page: Page) -> list[str]:
    """The keys page's rows by key name (the link to each key's page), top to bottom."""
    return [
        html.unescape(name) for name in re.findall(r'href="/app/keys/[^"]+">([^<]*)</a>', page.text)
    ]


def sign_in(client: TestClient, email: str, password: str = PASSWORD, **extra: str) -> Any:
    form = client.get("/signin", params={"next": extra.get("next", "")} if extra else None)
    return client.post(
        "/signin", data={"email": email, "password": password, "csrf_token": csrf_of(form), **extra}
    )
