from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from llavero.console import i18n

REPO = Path(__file__).resolve().parents[2]
PO_PATH = i18n.LOCALE_DIR / "es_419" / "LC_MESSAGES" / "messages.po"


@pytest.mark.parametrize(
    ("hl", "cookie", "accept_language", "expected"),
    [
        # ?hl= wins over everything, in any usual spelling
        ("en", "es_419", "es-MX,es;q=0.9", "en"),
        ("es_419", "en", "en-US", "es_419"),
        ("es-419", None, "en", "es_419"),
        ("ES", None, "en", "es_419"),
        ("en_US", "es_419", None, "en"),
        ("EN-gb", None, None, "en"),
        ("es_MX", None, "en", "es_419"),
        # an unknown hl is skipped: the remembered choice decides
        ("fr", "en", "es", "en"),
        ("", "en", "es", "en"),
        # the cookie beats Accept-Language
        (None, "en", "es-419,es;q=0.9", "en"),
        (None, "es_419", "en-US,en;q=0.9", "es_419"),
        (None, "garbage", "en-US", "en"),
        # Accept-Language with q-values
        (None, None, "en-US,en;q=0.9,es;q=0.8", "en"),
        (None, None, "en;q=0.5, es-AR;q=0.9", "es_419"),
        (None, None, "fr-FR, de;q=0.9, en;q=0.1", "en"),
        (None, None, "es;q=0, en;q=0.2", "en"),
        (None, None, "en;q=abc, es;q=0.3", "es_419"),
        (None, None, "pt-BR,es-ES;q=0.8,en;q=0.8", "es_419"),
        (None, None, "en-GB;q=0.8,es;q=0.8", "en"),
        # nothing usable: es_419
        (None, None, "fr, de;q=0.5, *", "es_419"),
        (None, None, "", "es_419"),
        (None, None, None, "es_419"),
    ],
)
def test_negotiate_precedence(
    hl: str | None, cookie: str | None, accept_language: str | None, expected: str
) -> None:
    assert i18n.negotiate(hl, cookie, accept_language) == expected


def test_parse_accept_language_orders_by_quality_then_position() -> None:
    header = "da, en-gb;q=0.8, en;q=0.7, es;q=0.8, fr;q=1.5, de;q=0"
    assert i18n.parse_accept_language(header) == ["da", "en-gb", "es", "en"]


def test_html_lang_is_bcp47() -> None:
    assert i18n.html_lang("es_419") == "es-419"
    assert i18n.html_lang("en") == "en"
    with pytest.raises(ValueError, match="lang"):
        i18n.html_lang("fr")


def test_dates_read_as_in_the_spec_row() -> None:
    assert i18n.format_date(date(2025, 8, 1), "es_419") == "1 ago 2025"
    assert i18n.format_date(date(2025, 8, 1), "en") == "Aug 1, 2025"
    assert i18n.format_date(datetime(2025, 8, 1, 23, 30, tzinfo=UTC), "es_419") == "1 ago 2025"


def test_datetime_is_shown_in_the_given_zone() -> None:
    moment = datetime(2025, 8, 1, 14, 5, tzinfo=UTC)
    assert i18n.format_datetime(moment, "en") == "Aug 1, 2025, 2:05\u202fPM"
    assert i18n.format_datetime(moment, "es_419") == "1 ago 2025, 2:05\u202fp.m."
    bogota = timezone(timedelta(hours=-5))
    assert i18n.format_datetime(moment, "en", bogota) == "Aug 1, 2025, 9:05\u202fAM"
    assert i18n.format_datetime(moment.replace(tzinfo=None), "en") == "Aug 1, 2025, 2:05\u202fPM"


def test_relative_time_in_both_languages() -> None:
    now = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)
    three_minutes_ago = now - timedelta(minutes=3)
    assert i18n.format_relative(three_minutes_ago, "es_419", now=now) == "hace 3 minutos"
    assert i18n.format_relative(three_minutes_ago, "en", now=now) == "3 minutes ago"
    in_two_hours = datetime(2025, 8, 1, 14, 0)  # naive values are UTC
    assert i18n.format_relative(in_two_hours, "es_419", now=now) == "dentro de 2 horas"


def test_english_needs_no_catalog() -> None:
    assert i18n.translations("en").gettext("Copy") == "Copy"


def test_spanish_catalog_translates_the_spec_texts() -> None:
    spanish = i18n.translations("es_419")
    assert spanish.gettext("Copy") == "Copiar"
    assert spanish.gettext("API key generated") == "Se generó la clave de API"


@pytest.fixture
def locale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the locale dir, so tests can add or age a `.mo` without touching ours."""
    messages = tmp_path / "es_419" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    shutil.copy(PO_PATH, messages / "messages.po")
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    return messages


def _write_mo_with(messages: Path, copy_text: str) -> Path:
    with (messages / "messages.po").open("rb") as po_file:
        catalog = read_po(po_file, locale="es_419")
    catalog["Copy"].string = copy_text
    mo_path = messages / "messages.mo"
    with mo_path.open("wb") as mo_file:
        write_mo(mo_file, catalog)
    return mo_path


def test_source_checkout_without_mo_reads_the_po(locale_copy: Path) -> None:
    assert not (locale_copy / "messages.mo").exists()
    assert i18n.translations.__wrapped__("es_419").gettext("Copy") == "Copiar"


def test_compiled_mo_is_used_when_current(locale_copy: Path) -> None:
    _write_mo_with(locale_copy, "Copiar (mo)")
    po_time = (locale_copy / "messages.po").stat().st_mtime
    os.utime(locale_copy / "messages.mo", (po_time + 10, po_time + 10))
    assert i18n.translations.__wrapped__("es_419").gettext("Copy") == "Copiar (mo)"


def test_stale_mo_loses_to_a_newer_po(locale_copy: Path) -> None:
    mo_path = _write_mo_with(locale_copy, "Copiar (old)")
    po_time = (locale_copy / "messages.po").stat().st_mtime
    os.utime(mo_path, (po_time - 10, po_time - 10))
    assert i18n.translations.__wrapped__("es_419").gettext("Copy") == "Copiar"


def _extracted_msgids() -> set[str]:
    with (REPO / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)  # type: ignore[no-untyped-call]
    return {
        message if isinstance(message, str) else message[0]
        for _, _, message, _, _ in extract_from_dir(str(REPO), method_map, options_map)
    }


def test_every_console_string_has_a_spanish_translation() -> None:
    with PO_PATH.open("rb") as po_file:
        catalog = read_po(po_file, locale="es_419")
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    extracted = _extracted_msgids()
    assert "Create API key" in extracted  # the extractor really read the templates
    assert sorted(extracted - translated) == []
    assert sorted({m.id for m in catalog if m.id} - extracted) == []  # no leftovers either
