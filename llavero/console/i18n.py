"""Languages of the console: which one a request gets, its catalog, and locale-aware dates.

Spanish (Latin America) comes first because the guide users already follow for AI Studio is in
es-419; English is the other language. Message ids are the English strings, so English needs no
catalog and a missing Spanish entry shows English rather than a raw key.

Catalog upkeep, from the repository root (`babel.cfg` names the sources):

    pybabel extract -F babel.cfg -o llavero/console/locale/messages.pot --no-wrap \
        --sort-by-file --project Llavero --version 0.1.0 .
    pybabel update -i llavero/console/locale/messages.pot -d llavero/console/locale \
        -D messages -l es_419 --no-wrap
    pybabel compile -d llavero/console/locale -D messages
"""

from __future__ import annotations

import gettext
import io
from datetime import UTC, date, datetime, tzinfo
from functools import cache
from pathlib import Path
from typing import Final

from babel import dates as babel_dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES: Final = ("es_419", "en")
DEFAULT_LANGUAGE: Final = "es_419"
LANGUAGE_COOKIE: Final = "llavero_hl"
"""Name of the cookie that remembers a choice made with `?hl=`."""

LOCALE_DIR: Final = Path(__file__).parent / "locale"
DOMAIN: Final = "messages"

_HTML_LANG: Final = {"es_419": "es-419", "en": "en"}
_PRIMARY_SUBTAG: Final = {"es": "es_419", "en": "en"}

# The SPEC pins the visible date form (`1 ago 2025`, `Aug 1, 2025`). These are today's CLDR
# "medium" patterns, written out so that a CLDR update cannot silently change the console.
_DATE_PATTERN: Final = {"es_419": "d MMM y", "en": "MMM d, y"}


def normalize(tag: str | None) -> str | None:
    """Map a language tag in any usual spelling (`es-419`, `ES_mx`, `en_US`) to a console language.

    Only the primary subtag decides: every Spanish goes to es_419, every English to en.
    """
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return _PRIMARY_SUBTAG.get(primary)


def negotiate(hl: str | None, cookie: str | None, accept_language: str | None) -> str:
    """Pick the language of a response.

    `?hl=` wins (it is how a link or the language menu asks), then the remembered choice, then the
    browser's Accept-Language, then es_419. A value that names no console language is skipped.
    """
    for explicit in (hl, cookie):
        lang = normalize(explicit)
        if lang:
            return lang
    for tag in parse_accept_language(accept_language):
        lang = normalize(tag)
        if lang:
            return lang
    return DEFAULT_LANGUAGE


def parse_accept_language(header: str | None) -> list[str]:
    """Language ranges of an Accept-Language header, most preferred first (RFC 9110 §12.5.4).

    Hand-written because neither Starlette nor Babel parses q-values, and the rules are small:
    ties keep header order, `q=0` means "not acceptable", a malformed q drops that range.
    """
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.partition(";")
        tag = tag.strip()
        quality = _quality(params)
        if tag and tag != "*" and quality is not None and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def _quality(params: str) -> float | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return None
            return quality if 0 <= quality <= 1 else None
    return 1.0


def html_lang(lang: str) -> str:
    """The BCP 47 form for `<html lang>` and `hreflang` (`es-419`, `en`)."""
    return _HTML_LANG[_known(lang)]


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The gettext catalog of a language, loaded once per process.

    The compiled `.mo` is used when it is at least as new as the `.po`; otherwise the `.po` is
    compiled in memory, so a source checkout works before `pybabel compile` has run.
    """
    if _known(lang) == "en":
        return gettext.NullTranslations()
    messages = LOCALE_DIR / lang / "LC_MESSAGES"
    po_path, mo_path = messages / f"{DOMAIN}.po", messages / f"{DOMAIN}.mo"
    if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
        with mo_path.open("rb") as mo_file:
            return Translations(mo_file, domain=DOMAIN)
    with po_path.open("rb") as po_file:
        catalog = read_po(po_file, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


def format_date(value: date, lang: str) -> str:
    """`1 ago 2025` in es_419, `Aug 1, 2025` in en (the SPEC's row format)."""
    return babel_dates.format_date(value, _DATE_PATTERN[_known(lang)], locale=lang)


def format_datetime(value: datetime, lang: str, tz: tzinfo = UTC) -> str:
    """Date as in `format_date`, then the locale's short time: `1 ago 2025, 2:05 p.m.`."""
    local = _aware(value).astimezone(tz)
    time_part = babel_dates.format_time(local, "short", tzinfo=tz, locale=lang)
    pattern = str(babel_dates.get_datetime_format("medium", locale=lang))
    return pattern.replace("{1}", format_date(local.date(), lang)).replace("{0}", time_part)


def format_relative(value: datetime, lang: str, *, now: datetime) -> str:
    """`hace 3 minutos` / `3 minutes ago` (or `dentro de…` / `in…` for the future)."""
    delta = _aware(value) - _aware(now)
    return babel_dates.format_timedelta(delta, add_direction=True, locale=_known(lang))


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _known(lang: str) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"lang: {lang!r} is not one of {', '.join(LANGUAGES)}")
    return lang
