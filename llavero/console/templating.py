"""Jinja2 for the console: one Environment per language, autoescaped, gettext-backed.

An Environment holds its translations as globals, so sharing one across languages would let two
concurrent requests see each other's language. One per language keeps them apart and lets
templates compile once.
"""

from __future__ import annotations

import gettext
from datetime import datetime
from functools import cache, partial
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from llavero.console import i18n, labels

TEMPLATE_DIR: Final = Path(__file__).parent / "templates"
ELLIPSIS: Final = "\u2026"

_AUTONYMS: Final = {"es_419": "Español (Latinoamérica)", "en": "English"}


def masked_number(number: int | str) -> str:
    """`…6692` from a 12-digit project number: enough to tell projects apart at a glance."""
    return ELLIPSIS + str(number)[-4:]


def masked_key(last4: str) -> str:
    """`…BMog` from the last four characters of a key string."""
    return ELLIPSIS + last4


def create_environment(
    lang: str, translations: gettext.NullTranslations | None = None
) -> Environment:
    """A fresh Environment for `lang`; tests pass their own `translations` to inspect the output."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    if translations is None:
        translations = i18n.translations(lang)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(
        lang=lang,
        html_lang=i18n.html_lang(lang),
        language_choices=[
            {"code": code, "name": _AUTONYMS[code], "html_lang": i18n.html_lang(code)}
            for code in i18n.LANGUAGES
        ],
    )
    env.filters.update(
        date=partial(i18n.format_date, lang=lang),
        datetime=partial(i18n.format_datetime, lang=lang),
        relative=partial(_relative, lang=lang),
        masked_number=masked_number,
        masked_key=masked_key,
        outcome=partial(labels.translate, names=labels.OUTCOMES, translations=translations),
        audit_action=partial(
            labels.translate, names=labels.AUDIT_ACTIONS, translations=translations
        ),
        plan_name=partial(labels.translate, names=labels.PLANS, translations=translations),
    )
    return env


@cache
def environment(lang: str) -> Environment:
    """The shared Environment of a language (built on first use)."""
    return create_environment(lang)


def render(lang: str, template_name: str, **context: Any) -> str:
    return environment(lang).get_template(template_name).render(**context)


def _relative(value: datetime, now: datetime, lang: str) -> str:
    return i18n.format_relative(value, lang, now=now)
