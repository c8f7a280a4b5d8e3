"""Finding text on a console page that bypassed gettext: every translated string is wrapped in
⟪⟫, so whatever is left, once the page's own data is taken out, came from nowhere."""

from __future__ import annotations

import gettext
import re
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser

import pytest

from llavero.console import templating

VISIBLE_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")


class MarkingTranslations(gettext.NullTranslations):
    def gettext(self, message: str) -> str:
        return f"⟪{message}⟫"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"⟪{msgid1 if n == 1 else msgid2}⟫"


class VisibleText(HTMLParser):
    """Text nodes and visible attributes, outside <svg> (charts carry the caller's titles and
    codes and numbers only, see llavero.console.charts)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._in_svg = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self._in_svg += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value:
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg -= 1

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._in_svg:
            self.texts.append(data.strip())


def mark_translations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages rendered from here on are in English with every translated string in ⟪⟫."""
    marked = templating.create_environment("en", MarkingTranslations())
    monkeypatch.setattr(templating, "environment", lambda lang: marked)


def untranslated(html: str, data: Iterable[str]) -> list[str]:
    """Visible texts with letters left once translated strings and `data` are taken out."""
    known = {*data, "Llavero", "English", "Español (Latinoamérica)"}
    allowed = sorted(known, key=len, reverse=True)
    return list(_leftovers(VisibleText(html).texts, allowed))


def _leftovers(texts: Iterable[str], allowed: list[str]) -> Iterator[str]:
    for text in texts:
        rest, nested = text, 1
        while nested:  # innermost first: a translated name inside a translated sentence
            rest, nested = re.subn(r"⟪[^⟪⟫]*⟫", "", rest)
        for value in allowed:
            rest = rest.replace(value, "")
        if re.search(r"[^\W\d_]", rest):
            yield text
