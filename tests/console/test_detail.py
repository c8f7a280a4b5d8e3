"""The key detail page: the key's facts, the advanced credential settings (every restriction
kind, environment, expiry, limits, annotations) with errors beside the refused input, the
dry-run tester and the key's audit trail."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llavero.console import i18n, labels
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero, models
from tests.console.console_client import csrf_of
from tests.console.marking import mark_translations, untranslated

TEXT_AREAS = ("allowed_ips", "allowed_referrers", "ios_bundle_ids", "annotations")
SHA1 = "DA:39:A3:EE:5E:6B:4B:0D:32:55:BF:EF:95:60:18:90:AF:D8:07:09"


@pytest.fixture(autouse=True)
def english_browser(anonymous: TestClient) -> None:
    """English unless a test asks for es-419 with `?hl=` (which is then remembered)."""
    anonymous.headers["Accept-Language"] = "en"


@pytest.fixture
def key(llavero: Llavero, admin: Actor) -> models.Key:
    project = llavero.projects.create(admin, "Gemini API")
    return llavero.keys.create(admin, project.id, display_name="Servidor").key


def page_of(console: TestClient, key: models.Key, hl: str | None = None) -> Any:
    """The page; a given `hl` is remembered for the requests that follow."""
    answer = console.get(f"/app/keys/{key.id}", params={"hl": hl} if hl else None)
    assert answer.status_code == 200
    return answer


def save(console: TestClient, key: models.Key, **fields: Any) -> Any:
    """Posts the settings form as a browser would: every field, empty unless given."""
    form = {"csrf_token": csrf_of(page_of(console, key)), "display_name": key.display_name}
    return console.post(f"/app/keys/{key.id}", data=form | fields)


def dry_run(console: TestClient, key: models.Key, **context: str) -> Any:
    form = {"csrf_token": csrf_of(page_of(console, key))}
    return console.post(f"/app/keys/{key.id}/test", data=form | context)


def element(page: Any, tag: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<{tag}\b[^>]*\bid="{re.escape(element_id)}"[^>]*>', page.text)
    assert match, f"no <{tag} id={element_id}>"
    return match.group(0)


def error_text(page: Any, input_id: str) -> str:
    match = re.search(rf'<p id="{re.escape(input_id)}-error"[^>]*>(.*?)</p>', page.text, re.S)
    assert match, f"no error beside {input_id}"
    return " ".join(html.unescape(match.group(1)).split())


def textarea(page: Any, textarea_id: str) -> str:
    match = re.search(rf'<textarea id="{textarea_id}"[^>]*>(.*?)</textarea>', page.text, re.S)
    assert match
    return html.unescape(match.group(1))


@pytest.mark.parametrize(
    ("hl", "texts"),
    [
        (
            "es_419",
            ["Configuración de credenciales avanzadas", "¿Pasaría esta solicitud?", "Activa"],
        ),
        ("en", ["Advanced credential settings", "Would this request pass?", "Active"]),
    ],
)
def test_the_page_shows_the_key_in_both_languages(
    console: TestClient, llavero: Llavero, admin: Actor, key: models.Key, hl: str, texts: list[str]
) -> None:
    page = page_of(console, key, hl)
    project = llavero.projects.get(admin, key.project)
    assert f'<html lang="{i18n.html_lang(hl)}">' in page.text
    for text in [*texts, "Servidor", "Gemini API", f"…{key.last4}", f"…{str(project.number)[-4:]}"]:
        assert text in page.text, text
    created = i18n.format_datetime(key.create_time, hl)
    assert created in html.unescape(page.text)
    assert labels.name("key.create", labels.AUDIT_ACTIONS, hl) in page.text  # the audit trail
    assert "key.create" not in page.text  # a code for the API, a name for people
    assert page.headers["cache-control"] == "no-store"


def test_signed_out_visitors_are_sent_to_sign_in(anonymous: TestClient, key: models.Key) -> None:
    answer = anonymous.get(f"/app/keys/{key.id}")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=%2Fapp%2Fkeys%2F")


def test_an_unknown_key_is_not_found(console: TestClient) -> None:
    assert console.get("/app/keys/no-such-key").status_code == 404


def test_every_setting_is_saved_through_the_service(
    console: TestClient, llavero: Llavero, admin: Actor, key: models.Key, clock: FrozenClock
) -> None:
    answer = save(
        console,
        key,
        display_name="Servidor principal",
        application="allowed_ips",
        allowed_ips="203.0.113.0/24\n\n2001:db8::/32\n",
        api_service=["generativelanguage.googleapis.com", ""],
        api_methods=["*.generateContent countTokens", ""],
        environment="production",
        expire_time="2025-09-01T12:30",
        limit_rpm="5",
        limit_upd="1000",
        annotations="team=search\nowner = ana",
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/app/keys/{key.id}?notice=saved#settings"
    saved = llavero.keys.get(admin, key.id)
    assert saved.display_name == "Servidor principal"
    assert saved.restrictions == {
        "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
        "api_targets": [
            {
                "service": "generativelanguage.googleapis.com",
                "methods": ["*.generateContent", "countTokens"],
            }
        ],
    }
    assert saved.environment == "production"
    assert saved.expire_time is not None
    assert saved.expire_time.isoformat().startswith("2025-09-01T12:30:00")
    assert saved.limits == {"rpm": 5, "upd": 1000}
    assert saved.annotations == {"team": "search", "owner": "ana"}
    events = llavero.audit.list(admin, target=key.id).items
    assert events[0].action == "key.update" and events[0].actor == "user:ana@example.com"

    shown = console.get(answer.headers["location"])
    assert "Settings saved" in shown.text
    assert textarea(shown, "allowed_ips") == "203.0.113.0/24\n2001:db8::/32"
    assert 'value="production"' in shown.text and 'value="2025-09-01T12:30"' in shown.text
    assert "checked" in element(shown, "input", "application-allowed_ips")
    assert "checked" not in element(shown, "input", "application-none")


@pytest.mark.parametrize(
    ("application", "fields", "expected"),
    [
        ("allowed_referrers", {"allowed_referrers": "*.example.com/*"}, "allowed_referrers"),
        ("ios_bundle_ids", {"ios_bundle_ids": "com.example.app"}, "ios_bundle_ids"),
        (
            "android_apps",
            {"android_package": ["", "com.example.app"], "android_sha1": ["", SHA1]},
            "android_apps",
        ),
        ("none", {}, None),
    ],
)
def test_one_application_restriction_at_a_time(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    key: models.Key,
    application: str,
    fields: dict[str, Any],
    expected: str | None,
) -> None:
    """Whatever else is typed, only the chosen kind is saved (the others are left behind)."""
    typed = {"allowed_ips": "198.51.100.0/24", **fields}
    assert save(console, key, application=application, **typed).status_code == 303
    kept = llavero.keys.get(admin, key.id).restrictions
    assert list(kept) == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("hl", "line", "hint"),
    [("en", "Line 2:", "CIDR range"), ("es_419", "Línea 2:", "rango CIDR")],
)
def test_a_refused_ip_is_shown_beside_its_field_with_what_was_typed(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    key: models.Key,
    hl: str,
    line: str,
    hint: str,
) -> None:
    page_of(console, key, hl)  # remembers the language
    events = len(llavero.audit.list(admin, target=key.id).items)
    typed = "203.0.113.0/24\n10.0.0.1/24\n<b>x</b>"
    answer = save(console, key, application="allowed_ips", allowed_ips=typed, environment="prod")
    assert answer.status_code == 400
    message = error_text(answer, "allowed_ips")
    assert message.startswith(line) and hint in message
    field = element(answer, "textarea", "allowed_ips")
    assert 'aria-invalid="true"' in field and "allowed_ips-error" in field
    assert textarea(answer, "allowed_ips") == typed
    assert "<b>x</b>" not in answer.text
    assert 'value="prod"' in answer.text
    assert llavero.keys.get(admin, key.id).restrictions == {}
    assert llavero.keys.get(admin, key.id).environment is None
    assert len(llavero.audit.list(admin, target=key.id).items) == events


@pytest.mark.parametrize(
    ("fields", "input_id", "hint"),
    [
        (
            {
                "application": "android_apps",
                "android_package": ["com.example.app", "com.example.other"],
                "android_sha1": [SHA1, "not-a-fingerprint"],
            },
            "android_sha1-1",
            "SHA-1",
        ),
        (
            {"application": "android_apps", "android_package": ["1bad"], "android_sha1": [SHA1]},
            "android_package-0",
            "package name",
        ),
        ({"api_service": ["bad service"], "api_methods": [""]}, "api_service-0", "service name"),
        (
            {"api_service": ["a.example.com"], "api_methods": ["ok bad-method"]},
            "api_methods-0",
            "wildcard",
        ),
        (
            {"application": "allowed_referrers", "allowed_referrers": "ftp://example.com"},
            "allowed_referrers",
            "website",
        ),
        (
            {"application": "ios_bundle_ids", "ios_bundle_ids": "com.example.app\nno_dots"},
            "ios_bundle_ids",
            "bundle ID",
        ),
        ({"limit_rpm": "abc"}, "limit_rpm", "whole number"),
        ({"limit_rpd": "0"}, "limit_rpd", "whole number"),
        ({"environment": "Production!"}, "environment", "lowercase"),
        ({"expire_time": "2020-01-01T00:00"}, "expire_time", "future"),
        ({"expire_time": "tomorrow"}, "expire_time", "future"),
        ({"annotations": "ok=1\nbad key=2"}, "annotations", "name=value"),
        ({"display_name": " "}, "display_name", "name of 1 to 100"),
    ],
)
def test_each_refused_value_is_named_beside_its_input(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    key: models.Key,
    fields: dict[str, Any],
    input_id: str,
    hint: str,
) -> None:
    answer = save(console, key, **fields)
    assert answer.status_code == 400
    assert hint in error_text(answer, input_id)
    tag = "textarea" if input_id in TEXT_AREAS else "input"
    assert 'aria-invalid="true"' in element(answer, tag, input_id)
    assert answer.text.count('aria-invalid="true"') == 1
    assert llavero.keys.get(admin, key.id) == key


def test_the_line_of_an_annotation_is_named(console: TestClient, key: models.Key) -> None:
    answer = save(console, key, annotations="team=search\n\nbad key=2")
    assert error_text(answer, "annotations").startswith("Line 3:")


def test_a_post_without_the_csrf_token_writes_nothing(
    console: TestClient, llavero: Llavero, admin: Actor, key: models.Key
) -> None:
    form = {"display_name": "Renamed", "application": "allowed_ips", "allowed_ips": "10.0.0.0/8"}
    refused = console.post(f"/app/keys/{key.id}", data=form)
    assert refused.status_code == 403
    wrong = console.post(f"/app/keys/{key.id}", data=form | {"csrf_token": "forged"})
    assert wrong.status_code == 403
    tested = console.post(f"/app/keys/{key.id}/test", data={"ip": "10.0.0.1"})
    assert tested.status_code == 403
    assert llavero.keys.get(admin, key.id) == key
    assert [event.action for event in llavero.audit.list(admin, target=key.id).items] == [
        "key.create"
    ]


def test_a_deleted_key_cannot_be_changed(
    console: TestClient, llavero: Llavero, admin: Actor, key: models.Key
) -> None:
    csrf = csrf_of(page_of(console, key))
    llavero.keys.delete(admin, key.id)
    answer = console.post(
        f"/app/keys/{key.id}", data={"csrf_token": csrf, "display_name": "Renamed"}
    )
    assert answer.status_code == 412
    assert "current state" in answer.text
    assert llavero.keys.get(admin, key.id).display_name == "Servidor"


def test_html_in_names_is_shown_as_text(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "<i>Proyecto</i>")
    key = llavero.keys.create(admin, project.id, display_name="<script>alert(1)</script>").key
    page = page_of(console, key)
    assert "<script>alert(1)</script>" not in page.text
    assert "<i>Proyecto</i>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;i&gt;Proyecto&lt;/i&gt;" in page.text


@pytest.mark.parametrize(
    ("hl", "refused", "reason", "passes"),
    [
        (
            "en",
            "This request would be refused: IP address not allowed",
            "198.51.100.7 is outside every allowed address and range.",
            "This request would pass.",
        ),
        (
            "es_419",
            "Esta solicitud se rechazaría: Dirección IP no permitida",
            "198.51.100.7 está fuera de todas las direcciones y rangos permitidos.",
            "Esta solicitud pasaría.",
        ),
    ],
)
def test_the_dry_run_explains_and_counts_nothing(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    key: models.Key,
    hl: str,
    refused: str,
    reason: str,
    passes: str,
) -> None:
    page_of(console, key, hl)
    llavero.keys.update(admin, key.id, {"restrictions": {"allowed_ips": ["203.0.113.0/24"]}})
    answer = dry_run(console, key, ip="198.51.100.7")
    assert answer.status_code == 200
    text = " ".join(html.unescape(answer.text).split())
    assert refused in text and reason in text
    assert 'value="198.51.100.7"' in answer.text  # the form keeps what was typed

    allowed = dry_run(console, key, ip="203.0.113.9")
    text = " ".join(html.unescape(allowed.text).split())
    assert passes in text and "203.0.113.0/24" in text

    missing = dry_run(console, key)
    assert "no IP address" in missing.text or "ninguna dirección IP" in missing.text

    llavero.usage_meter.flush()
    assert llavero.usage.key_series(admin, key.id).totals.requests == {}
    actions = [event.action for event in llavero.audit.list(admin, target=key.id).items]
    assert actions == ["key.update", "key.create"]


def test_the_dry_run_agrees_with_verify_on_every_step(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    project = llavero.projects.create(admin, "Apps")
    created = llavero.keys.create(
        admin,
        project.id,
        environment="production",
        restrictions={
            "android_apps": [{"package_name": "com.example.app", "sha1_fingerprint": SHA1}],
            "api_targets": [{"service": "a.example.com", "methods": ["get*"]}],
        },
    )
    context = {
        "android_package": "com.example.app",
        "android_cert": SHA1,
        "service": "a.example.com",
        "method": "list",
        "environment": "production",
    }
    answer = dry_run(console, created.key, **context)
    assert "would be refused: API not allowed" in answer.text
    assert "allowed by the rule com.example.app" in answer.text
    assert "the request declares production, as the key requires." in answer.text
    verdict = llavero.verifier.verify(VerifyRequest(key=created.key_string, **context))
    assert verdict.code == "API_NOT_ALLOWED"


def test_a_refused_dry_run_field_is_named(console: TestClient, key: models.Key) -> None:
    answer = dry_run(console, key, referrer="https://example.com/" + "a" * 3000)
    assert answer.status_code == 400
    assert "too long" in error_text(answer, "test-referrer")


def test_the_keys_page_links_each_key_to_its_page(console: TestClient, key: models.Key) -> None:
    assert f'href="/app/keys/{key.id}"' in console.get("/app/apikey").text


def test_every_visible_string_goes_through_gettext(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    key: models.Key,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llavero.keys.update(
        admin,
        key.id,
        {"restrictions": {"allowed_ips": ["203.0.113.0/24"]}, "annotations": {"team": "a"}},
    )
    project = llavero.projects.get(admin, key.project)
    mark_translations(monkeypatch)
    for answer in (
        page_of(console, key),
        save(console, key, application="allowed_ips", allowed_ips="nope"),
        dry_run(console, key, ip="198.51.100.7", environment="dev"),
    ):
        event_times = [
            i18n.format_datetime(event.time, "en")
            for event in llavero.audit.list(admin, target=key.id).items
        ]
        data = [
            "Servidor",
            "Gemini API",
            "ana@example.com",
            "user:ana@example.com",
            "test",
            "testclient",
            "restrictions",
            "annotations",
            "nope",
            "team=a",
            f"…{key.last4}",
            f"…{str(project.number)[-4:]}",
            i18n.format_datetime(key.create_time, "en"),
            *event_times,
            "com.example.app",
            "generativelanguage.googleapis.com",
            "production",
            "*.generateContent",
        ]
        assert untranslated(answer.text, data) == []


def test_an_unchanged_expiry_is_left_alone(
    console: TestClient, llavero: Llavero, admin: Actor, key: models.Key, clock: FrozenClock
) -> None:
    """Even once passed: an expired key can still be renamed without picking a new expiry."""
    expiry = clock.now() + timedelta(hours=1, seconds=17)
    llavero.keys.update(admin, key.id, {"expire_time": expiry})
    clock.advance(7200)
    shown = expiry.strftime("%Y-%m-%dT%H:%M")
    answer = save(console, key, display_name="Caducada", expire_time=shown)
    assert answer.status_code == 303
    saved = llavero.keys.get(admin, key.id)
    assert saved.display_name == "Caducada"
    assert saved.expire_time == expiry
