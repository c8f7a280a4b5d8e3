from __future__ import annotations

import gettext
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from llavero.console import charts, i18n, templating
from llavero.console.key_settings import APPLICATION_KINDS, FieldError, settings_of
from llavero.core.plans import LIMIT_NAMES
from llavero.service import models

NOW = datetime(2025, 8, 2, 12, 0, tzinfo=UTC)
STATIC = Path(templating.__file__).parent / "static"

# The SPEC's console table, (es-419, en), plus the sign-in fields.
SPEC_TEXTS = [
    ("Claves de API", "API keys"),
    ("Crear clave de API", "Create API key"),
    ("Se generó la clave de API", "API key generated"),
    ("Copiar", "Copy"),
    (
        "Guarda tu clave en un lugar seguro. No la compartas ni la incluyas en repositorios "
        "públicos.",
        "Keep your key somewhere safe. Don't share it or commit it to public repositories.",
    ),
    ("Nº de proyecto", "Project number"),
    ("Nombre del proyecto", "Project name"),
    ("Clave de API", "API key"),
    ("Fecha de creación", "Created"),
    ("Plan / Facturación", "Plan / Billing"),
    ("Configurar facturación", "Set up billing"),
    ("Ver datos de uso", "View usage data"),
    ("Eliminar", "Delete"),
]
SIGNIN_TEXTS = [
    ("Iniciar sesión", "Sign in"),
    ("Correo electrónico", "Email"),
    ("Contraseña", "Password"),
]
SPANISH = {"es_419": 0, "en": 1}
VISIBLE_ATTRIBUTES = {
    "title",
    "aria-label",
    "placeholder",
    "alt",
    "data-copied-text",
    "data-manual-copy-text",
}


def key_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key_id": "k-1",
        "display_name": "",
        "project_id": "gemini-api",
        "project_number": 482913576692,
        "project_name": "Gemini API",
        "last4": "BMog",
        "create_time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
        "plan": "free",
        "plan_display_name": "Free",
        "billing_url": "/app/billing?project=gemini-api",
        "usage_url": "/app/usage?key=k-1",
        "delete_url": "/app/apikey/k-1/delete",
        "environment": None,
        "state": "ACTIVE",
        "restrictions": [],
        "last_used_time": None,
        "leak": None,
    }
    row.update(overrides)
    return row


LEAK: dict[str, Any] = {
    "time": datetime(2025, 8, 2, 9, 0, tzinfo=UTC),
    "url": "https://github.com/octo/demo/blob/abc/.env#L1",
    "link": True,
    "source": "github",
}
"""A key's reported leak as the console shows it (llavero.console.web.leak_context)."""


def keys_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        "user": {"email": "ana@example.com", "is_admin": True},
        "csrf_token": "csrf-abc",
        "now": NOW,
        "rows": [
            key_row(),
            key_row(
                key_id="k-2",
                display_name="Servidor",
                plan="tier-1",
                plan_display_name="Tier 1",
                environment="production",
                state="DISABLED",
                restrictions=["ips", "api_targets"],
                last_used_time=NOW - timedelta(minutes=3),
                action_url="/app/apikey/k-2",
                leak=LEAK,
            ),
        ],
        "leaked": [
            key_row(
                key_id="k-3",
                state="DELETED",
                action_url="/app/apikey/k-3",
                leak={**LEAK, "url": "pastebin: paste 42", "link": False, "source": None},
            )
        ],
        "projects": [{"id": "gemini-api", "display_name": "Gemini API", "number": 482913576692}],
        "created": {"key_string": "llv_created0key0string", "project_name": "Gemini API"},
    }
    context.update(overrides)
    return context


class MarkingTranslations(gettext.NullTranslations):
    """Wraps every translated string in ⟪⟫, so text that bypassed gettext stands out."""

    def gettext(self, message: str) -> str:
        return f"⟪{message}⟫"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"⟪{msgid1 if n == 1 else msgid2}⟫"


SIGNED_IN: dict[str, Any] = {
    "user": {"email": "ana@example.com", "is_admin": True},
    "csrf_token": "csrf-abc",
}


def a_project() -> models.Project:
    return models.Project(
        id="gemini-api",
        number=482913576692,
        display_name="Gemini API",
        create_time=NOW,
        update_time=NOW,
        billing_account=None,
        plan="free",
    )


def marked(message: str) -> str:
    """A text the page itself translates before handing it to a template (chart titles)."""
    return MarkingTranslations().gettext(message)


def a_key(**overrides: Any) -> models.Key:
    fields: dict[str, Any] = {
        "id": "k-2",
        "project": "gemini-api",
        "display_name": "Servidor",
        "last4": "BMog",
        "state": "DISABLED",
        "create_time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
        "update_time": datetime(2025, 8, 1, 11, 30, tzinfo=UTC),
        "expire_time": datetime(2026, 1, 31, 23, 0, tzinfo=UTC),
        "delete_time": None,
        "purge_time": None,
        "environment": "production",
        "restrictions": {
            "allowed_ips": ["203.0.113.0/24", "2001:db8::/32"],
            "api_targets": [{"service": "generativelanguage.googleapis.com", "methods": ["Get*"]}],
        },
        "annotations": {"team": "ml"},
        "limits": {"rpm": 60},
        "last_used_time": NOW - timedelta(minutes=3),
        "last_used_ip": "203.0.113.7",
        "previous_last4": "Xy12",
        "previous_expire_time": NOW + timedelta(hours=1),
    }
    return models.Key(**(fields | overrides))


def key_context(key: models.Key, **overrides: Any) -> dict[str, Any]:
    """The detail page of `key`, with its form filled in as the page fills it."""
    context: dict[str, Any] = {
        **SIGNED_IN,
        "now": NOW,
        "key": key.model_dump(),
        "leak": LEAK,
        "project": {
            "id": key.project,
            "display_name": "Gemini API",
            "number": 482913576692,
            "plan": "Free",
        },
        "form": settings_of(key).values,
        "application_kinds": APPLICATION_KINDS,
        "limit_names": LIMIT_NAMES,
        "test": {
            "ip": "192.0.2.1",
            "referrer": "https://evil.example/",
            "android_package": "",
            "android_cert": "",
            "ios_bundle_id": "com.example.other",
            "service": "",
            "method": "",
            "environment": "staging",
        },
        "events": [
            {
                "time": datetime(2025, 8, 1, 11, 30, tzinfo=UTC),
                "actor": "ana@example.com",
                "action": "key.update",
                "source_ip": "198.51.100.4",
                "details": {"fields": ["restrictions", "limits"]},
            },
            {
                "time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
                "actor": "cli",
                "action": "key.create",
                "source_ip": None,
                "details": {},
            },
        ],
        "usage_url": f"/app/usage?key={key.id}",
    }
    context.update(overrides)
    return context


def check(restriction: str, allowed: bool, reason: str, rule: str | None = None) -> dict[str, Any]:
    return {"restriction": restriction, "allowed": allowed, "rule": rule, "reason": reason}


# One line for every way the template words a dry-run check.
DRY_RUN_LINES = [
    check("state", True, "passed"),
    check("state", False, "refused"),
    check("expire_time", False, "refused"),
    check("expire_time", True, "matched", "2026-01-31T23:00:00Z"),
    check("expire_time", True, "passed"),
    check("environment", False, "refused", "production"),
    check("environment", True, "matched", "production"),
    check("environment", True, "passed"),
    check("restrictions", True, "passed"),
    check("allowed_ips", True, "matched", "203.0.113.0/24"),
    check("allowed_ips", False, "refused"),
    check("allowed_ips", False, "missing_ip"),
    check("allowed_referrers", False, "refused"),
    check("allowed_referrers", False, "missing_referrer"),
    check("android_apps", False, "refused"),
    check("android_apps", False, "missing_android_package"),
    check("android_apps", False, "missing_android_cert"),
    check("ios_bundle_ids", False, "refused"),
    check("ios_bundle_ids", False, "missing_ios_bundle_id"),
    check("api_targets", False, "refused"),
    check("api_targets", False, "missing_service"),
]


def usage_context(**overrides: Any) -> dict[str, Any]:
    series = [("13:00", {"VALID": 40, "RATE_LIMITED": 2}), ("14:00", {"VALID": 12})]
    context: dict[str, Any] = {
        **SIGNED_IN,
        "target": {
            "kind": "key",
            "key_name": "Servidor",
            "key_last4": "BMog",
            "key_url": "/app/keys/k-2",
            "project_name": "Gemini API",
            "project_number": 482913576692,
        },
        "range_name": "24h",
        "range_urls": {name: f"/app/usage?key=k-2&range={name}" for name in ("24h", "7d", "30d")},
        "csv_url": "/app/usage.csv?key=k-2&range=24h",
        "project_url": "/app/usage?project=gemini-api",
        "requests_chart": charts.bar_chart(series, title=marked("Requests by outcome")),
        "units_chart": charts.line_chart(
            [("13:00", 1200.0), ("14:00", 300.0)], title=marked("Units")
        ),
        "totals": {
            "requests": [{"code": "VALID", "count": "52"}, {"code": "RATE_LIMITED", "count": "2"}],
            "all_requests": "54",
            "units": "1,500",
        },
        "limits": [
            {"name": "rpm", "plan": "15", "key": "10", "remaining": "8", "resets": "41 seconds"},
            {
                "name": "rpd",
                "plan": "1,500",
                "key": None,
                "remaining": "1,446",
                "resets": "9 hours",
            },
            {"name": "upm", "plan": None, "key": None, "remaining": None, "resets": None},
            {"name": "upd", "plan": None, "key": None, "remaining": None, "resets": None},
        ],
        "plan": "Free",
        "billing_url": "/app/billing?project=gemini-api",
        "free_plan": True,
        "counted_apart": 2,
        "processes": 3,
    }
    context.update(overrides)
    return context


def billing_project(**overrides: Any) -> dict[str, Any]:
    project: dict[str, Any] = {
        "id": "gemini-api",
        "display_name": "Gemini API",
        "number": 482913576692,
        "plan": "tier-1",
        "plan_name": "Tier 1",
        "paid": True,
        "limits": {"rpm": "1,000", "rpd": "10,000", "upm": None, "upd": None},
        "billing_account": "acct-1",
        "billing_account_name": "Acme",
        "usage_url": "/app/usage?project=gemini-api",
        "leak_policy": "revoke",
    }
    project.update(overrides)
    return project


def billing_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        **SIGNED_IN,
        "is_admin": True,
        "projects": [
            billing_project(),
            billing_project(
                id="backend",
                display_name="Backend",
                number=100000000042,
                plan="free",
                plan_name="Free",
                paid=False,
                limits={"rpm": "15", "rpd": "1,500", "upm": "250,000", "upd": None},
                billing_account=None,
                billing_account_name="",
                usage_url="/app/usage?project=backend",
                leak_policy="notify",
            ),
        ],
        "leak_policies": ["revoke", "disable", "notify"],
        "selected": "gemini-api",
        "accounts": [
            {
                "id": "acct-1",
                "display_name": "Acme",
                "currency": "USD",
                "open": True,
                "projects": ["Gemini API"],
            },
            {
                "id": "acct-2",
                "display_name": "Old",
                "currency": "MXN",
                "open": False,
                "projects": [],
            },
        ],
        "currencies": [{"code": "USD", "name": "US Dollar"}, {"code": "MXN", "name": "Peso"}],
        "typed": {"display_name": "", "currency": "usd"},
        "field_error": "currency",
        "notice": "linked",
        "notice_project": billing_project(),
        "error": "account_closed",
    }
    context.update(overrides)
    return context


def users_context(**overrides: Any) -> dict[str, Any]:
    person: dict[str, Any] = {
        "id": 1,
        "email": "ana@example.com",
        "role": "admin",
        "disabled": False,
        "create_time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
        "last_signin_time": NOW - timedelta(minutes=3),
        "is_self": True,
        "throttled_until": None,
    }
    context: dict[str, Any] = {
        **SIGNED_IN,
        "now": NOW,
        "users": [
            person,
            person
            | {
                "id": 2,
                "email": "beto@example.com",
                "role": "member",
                "is_self": False,
                "throttled_until": NOW + timedelta(minutes=4),
            },
            person
            | {
                "id": 3,
                "email": "caro@example.com",
                "disabled": True,
                "is_self": False,
                "last_signin_time": None,
            },
        ],
        "invited": {"email": "dana@example.com", "link": "https://llavero.test/signin/link?t=x"},
        "notice": "user_updated",
        "error": "already_exists",
    }
    context.update(overrides)
    return context


def audit_context(**overrides: Any) -> dict[str, Any]:
    context: dict[str, Any] = {
        **SIGNED_IN,
        "events": [
            {
                "time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
                "actor": "ana@example.com",
                "action": "key.create",
                "target": "k-2",
                "source_ip": "198.51.100.4",
            },
            {
                "time": datetime(2025, 8, 1, 9, 0, tzinfo=UTC),
                "actor": "bootstrap",
                "action": "user.create",
                "target": "1",
                "source_ip": None,
            },
        ],
        "next_url": "/app/audit?page_token=abc",
        "first_url": "/app/audit",
    }
    context.update(overrides)
    return context


def webhook_context(**overrides: Any) -> dict[str, Any]:
    hook = {
        "id": "0b9f6c1e-2f3a-4c4e-9d55-5c1f0b8f1a7e",
        "project": "gemini-api",
        "url": "https://hooks.example.com/llavero",
        "events": ["key.leaked", "quota.threshold"],
        "description": "Alertas",
        "disabled": True,
        "disabled_reason": "8 failed attempts (HTTP 500)",
    }
    delivery = {
        "event_id": "msg_2b8f0c5e9d6a4f7e8c1b3a2d4e6f8a0b",
        "type": "key.leaked",
        "target": "webhook:0b9f6c1e-2f3a-4c4e-9d55-5c1f0b8f1a7e",
        "status": "pending",
        "attempts": 2,
        "last_status": 500,
        "last_error": "HTTP 500",
        "create_time": datetime(2025, 8, 1, 10, 0, tzinfo=UTC),
        "last_attempt_time": datetime(2025, 8, 1, 10, 5, tzinfo=UTC),
        "next_attempt_time": datetime(2025, 8, 1, 10, 35, tzinfo=UTC),
    }
    context: dict[str, Any] = {
        **SIGNED_IN,
        "webhook": hook,
        "webhooks": [hook, hook | {"id": "w-2", "project": None, "events": ["*"]}],
        "deliveries": [
            delivery,
            delivery | {"status": "delivered", "last_status": 204, "next_attempt_time": None},
            delivery | {"status": "failed", "last_status": None, "last_error": "ConnectError"},
        ],
        "projects": [{"id": "gemini-api", "display_name": "Gemini API"}],
        "event_types": ["key.created", "key.leaked", "quota.threshold"],
        "typed": {"url": "", "project": "", "description": "", "events": ["*"]},
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw9bXgxWq3xfo=",
        "notice": "test_sent",
        "error": None,
        "field_error": "url",
    }
    context.update(overrides)
    return context


# Each page with a context that shows as much of it at once as it can; `name#case` is another
# context for the same template, for the parts the first one cannot show.
PAGES: dict[str, dict[str, Any]] = {
    "apikey.html": keys_context(notice="key_deleted", error="create_failed"),
    "signin.html": {
        "csrf_token": "csrf-abc",
        "error": "invalid_credentials",
        "email": "a@b.c",
        "signin": {"password": True, "provider": None},
    },
    "signin.html#oidc": {
        "csrf_token": "csrf-abc",
        "error": "oidc_domain",
        "email": "eve@elsewhere.test",
        "next": "/app/usage",
        "signin": {"password": False, "provider": "Google"},
    },
    "members.html": {
        **SIGNED_IN,
        "projects": [a_project().model_dump()],
        "selected": a_project().model_dump(),
        "members": [
            models.Member(email="ana@example.com", role="owner", invited=False).model_dump(),
            models.Member(email="bob@partner.test", role="viewer", invited=True).model_dump(),
        ],
        "roles": ("owner", "editor", "viewer"),
        "can_manage": True,
        "notice": "member_invited",
        "error": "last_owner",
    },
    "members.html#none": {
        **SIGNED_IN,
        "projects": [],
        "selected": None,
        "members": [],
        "roles": ("owner", "editor", "viewer"),
        "can_manage": False,
    },
    "error.html": {**SIGNED_IN, "status": 404},
    "key.html": key_context(
        a_key(),
        error=FieldError("allowed_ips", "allowed_ips", line=2),
        failure="failed_precondition",
        notice="saved",
        test_result={"allowed": False, "code": "IP_NOT_ALLOWED", "lines": DRY_RUN_LINES},
        test_error=FieldError("test-referrer", "test_field"),
    ),
    "key.html#new": key_context(
        a_key(
            display_name="",
            state="ACTIVE",
            environment=None,
            restrictions={},
            expire_time=None,
            last_used_time=None,
            previous_last4=None,
            previous_expire_time=None,
        ),
        events=[],
        error=FieldError("settings", "invalid"),
        failure="permission_denied",
        test_result={"allowed": True, "code": None, "lines": DRY_RUN_LINES[:1]},
    ),
    "key.html#viewer": key_context(a_key(), read_only=True),
    "usage.html": usage_context(),
    "usage.html#project": usage_context(
        target={
            "kind": "project",
            "key_name": "",
            "key_last4": "",
            "key_url": "",
            "project_name": "Gemini API",
            "project_number": 482913576692,
        },
        range_name="7d",
        requests_chart=charts.bar_chart(
            [("13:00", {}), ("14:00", {})], title=marked("Requests by outcome")
        ),
        totals={"requests": [], "all_requests": "0", "units": "1,200"},
        free_plan=False,
    ),
    "usage.html#choose": {
        **SIGNED_IN,
        "target": None,
        "projects": [
            {"display_name": "Gemini API", "number": 482913576692, "url": "/app/usage?p=1"}
        ],
    },
    "billing.html": billing_context(),
    "billing.html#member": billing_context(
        is_admin=False,
        accounts=[],
        notice="account_closed",
        notice_project=None,
        error="permission_denied",
        field_error=None,
    ),
    "users.html": users_context(),
    "audit.html": audit_context(),
    "audit.html#empty": audit_context(events=[], next_url="", first_url=""),
    "account.html": {**SIGNED_IN, "notice": "password_set", "error": "mismatch"},
    "webhooks.html": webhook_context(notice="deleted"),
    "webhooks.html#empty": webhook_context(webhooks=[], error="permission_denied"),
    "webhook.html": webhook_context(),
    "webhook.html#quiet": webhook_context(deliveries=[], secret=None, error="failed_precondition"),
}


PLACEHOLDER_EXAMPLES = (
    "com.example.app",
    "generativelanguage.googleapis.com",
    "*.generateContent",
    "production",
    "https://example.com/hooks/llavero",
)
"""Example values in placeholders: identifiers, written the same in every language."""


def template_of(page: str) -> str:
    return page.partition("#")[0]


def test_every_template_of_a_page_is_checked() -> None:
    """Templates that extend base.html are pages; the others are parts they include."""
    pages = {
        path.name
        for path in templating.TEMPLATE_DIR.glob("*.html")
        if '{% extends "base.html" %}' in path.read_text()
    }
    assert pages == {template_of(page) for page in PAGES}


class Page(HTMLParser):
    """The parts of a rendered page the tests look at: visible text, tags and their attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.cells: list[list[str]] = []
        self.headers: list[str] = []
        self._cell: list[str] | None = None
        self._hidden_depth = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        for name in VISIBLE_ATTRIBUTES & attributes.keys():
            self.texts.append(attributes[name] or "")
        if tag == "tr":
            self.cells.append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            text = " ".join(" ".join(self._cell).split())
            (self.headers if tag == "th" else self.cells[-1]).append(text)
            self._cell = None

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append(data.strip())
            if self._cell is not None:
                self._cell.append(data)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    def find(self, tag: str, **attributes: str) -> list[dict[str, str | None]]:
        wanted = {name.replace("_", "-"): value for name, value in attributes.items()}
        return [
            attrs
            for name, attrs in self.tags
            if name == tag and all(attrs.get(k) == v for k, v in wanted.items())
        ]


def render(lang: str, template: str, **context: Any) -> Page:
    return Page(templating.render(lang, template, **context))


@pytest.mark.parametrize("lang", ["es_419", "en"])
def test_keys_page_carries_every_spec_text(lang: str) -> None:
    page = render(lang, "apikey.html", **keys_context())
    for texts in SPEC_TEXTS:
        assert texts[SPANISH[lang]] in page.texts, texts[SPANISH[lang]]
    other = 1 - SPANISH[lang]
    leaked = [texts[other] for texts in SPEC_TEXTS if texts[other] in page.text]
    assert leaked == []


@pytest.mark.parametrize("lang", ["es_419", "en"])
def test_sign_in_page_carries_the_spec_texts(lang: str) -> None:
    page = render(lang, "signin.html", csrf_token="t")
    for texts in SIGNIN_TEXTS:
        assert texts[SPANISH[lang]] in page.texts
    other = 1 - SPANISH[lang]
    assert [t[other] for t in SIGNIN_TEXTS + SPEC_TEXTS if t[other] in page.text] == []


def test_table_starts_with_the_spec_columns_and_row() -> None:
    page = render("es_419", "apikey.html", **keys_context())
    assert page.headers[:5] == [
        "Nº de proyecto",
        "Nombre del proyecto",
        "Clave de API",
        "Fecha de creación",
        "Plan / Facturación",
    ]
    first_row = [cells for cells in page.cells if cells][0]
    assert first_row[:5] == ["…6692", "Gemini API", "…BMog", "1 ago 2025", "Configurar facturación"]


def test_english_row_and_columns() -> None:
    page = render("en", "apikey.html", **keys_context())
    assert page.headers[:5] == [
        "Project number",
        "Project name",
        "API key",
        "Created",
        "Plan / Billing",
    ]
    first_row = [cells for cells in page.cells if cells][0]
    assert first_row[:5] == ["…6692", "Gemini API", "…BMog", "Aug 1, 2025", "Set up billing"]


def test_row_details_plan_state_and_restrictions() -> None:
    page = render("es_419", "apikey.html", **keys_context())
    free_row, paid_row = [cells for cells in page.cells if cells]
    assert "⚠ Sin restricciones" in free_row
    assert paid_row[4] == "Nivel 1"  # the packaged plan's name, in the page's language
    assert "Direcciones IP, API" in paid_row
    assert "⚠ Sin restricciones" not in paid_row
    assert any("Inhabilitada" in cell and "production" in cell for cell in paid_row)
    # When a key was last used is on its own page: the list keeps to what fits 1280 px.
    assert "hace 3 minutos" not in " ".join(paid_row) and "Último uso" not in page.headers
    assert {"Ver datos de uso", "Eliminar"} <= set(page.texts)


def test_empty_key_list_explains_what_to_do() -> None:
    page = render("en", "apikey.html", **keys_context(rows=[], projects=[], created=None))
    assert "You don't have any API keys yet." in page.texts
    assert page.headers == []
    new_project = page.find("option", value="")
    assert new_project and "selected" in new_project[0]


def test_created_dialog_shows_the_key_once_read_only_with_copy() -> None:
    page = render("es_419", "apikey.html", **keys_context())
    (field,) = page.find("input", id="created-key")
    assert field["value"] == "llv_created0key0string"
    assert "readonly" in field
    (copy,) = page.find("button", data_copy_target="created-key")
    assert copy["data-copied-text"] == "Copiado"
    assert page.find("p", data_copy_status="created-key", role="status")
    assert page.find("dialog", id="key-created-dialog", aria_labelledby="key-created-title")
    without = render("es_419", "apikey.html", **keys_context(created=None))
    assert not without.find("dialog", id="key-created-dialog")
    assert "Se generó la clave de API" not in without.texts


def test_create_dialog_defaults_to_a_gemini_api_project() -> None:
    page = render("en", "apikey.html", **keys_context())
    (form,) = page.find("form", action="/app/apikey")
    assert form["method"] == "post"
    (name,) = page.find("input", name="new_project_name")
    assert name["value"] == "Gemini API"
    assert page.find("option", value="gemini-api")
    assert page.find("dialog", id="create-key-dialog", aria_labelledby="create-key-title")
    assert page.find("button", data_dialog_open="create-key-dialog")


def test_every_form_that_posts_carries_the_csrf_token() -> None:
    page = Page(templating.render("en", "apikey.html", **keys_context()))
    forms = [attrs for tag, attrs in page.tags if tag == "form" and attrs.get("method") == "post"]
    tokens = page.find("input", type="hidden", name="csrf_token", value="csrf-abc")
    # sign out, two deletes, create, the row actions of k-2 (3), the rotations of two leaks
    assert len(forms) == 9
    assert len(tokens) == len(forms)
    assert page.find("form", action="/signout", method="post")


USER_TEXT = frozenset(
    {
        "display_name",
        "project_name",
        "key_name",
        "email",
        "actor",
        "environment",
        "annotations",
        "allowed_ips",
        "allowed_referrers",
        "ios_bundle_ids",
        "package",
        "sha1",
        "service",
        "methods",
        "ip",
        "referrer",
        "ios_bundle_id",
        "billing_account_name",
        "currency",
        "link",
        "source_ip",
    }
)
"""Context fields that hold text someone typed: each page must show it as text, never markup."""
EVIL = "<script>alert('x')</script>"


def poisoned(value: Any, field: str = "") -> Any:
    """`value` with every string of a `USER_TEXT` field replaced by `EVIL`."""
    if isinstance(value, dict):
        return {name: poisoned(item, name) for name, item in value.items()}
    if isinstance(value, list):
        return [poisoned(item, field) for item in value]
    if isinstance(value, str) and field in USER_TEXT:
        return EVIL
    return value


@pytest.mark.parametrize("page_name", sorted(PAGES))
def test_typed_text_renders_as_text_on_every_page(page_name: str) -> None:
    html = templating.render("en", template_of(page_name), **poisoned(PAGES[page_name]))
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html


def test_html_in_names_renders_as_text() -> None:
    evil = "<script>alert('x')</script>"
    html = templating.render(
        "en",
        "apikey.html",
        **keys_context(
            rows=[key_row(project_name=evil, display_name=evil, environment=evil)],
            created={"key_string": '"><img src=x>', "project_name": evil},
            user={"email": evil, "is_admin": False},
        ),
    )
    assert "<script>alert" not in html
    assert "<img src=x>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    page = Page(html)
    assert evil in page.texts
    assert page.find("form", data_confirm_name=evil)


@pytest.mark.parametrize("lang", ["es_419", "en"])
def test_layout_language_navigation_and_landmarks(lang: str) -> None:
    page = render(lang, "apikey.html", **keys_context())
    assert page.find("html", lang={"es_419": "es-419", "en": "en"}[lang])
    assert page.find("a", href="#main", **{"class": "skip-link"})
    assert page.find("main", id="main")
    assert page.find("a", href="?hl=es_419", hreflang="es-419")
    assert page.find("a", href="?hl=en", hreflang="en")
    assert page.find("a", href=f"?hl={lang}", aria_current="true")
    assert page.find("a", href="/app/apikey", aria_current="page")
    nav = {
        "es_419": ["Claves de API", "Facturación", "Usuarios", "Registro de auditoría"],
        "en": ["API keys", "Billing", "Users", "Audit log"],
    }[lang]
    assert all(entry in page.texts for entry in nav)


def test_members_do_not_see_the_users_page() -> None:
    page = render(
        "en", "apikey.html", **keys_context(user={"email": "m@x.test", "is_admin": False})
    )
    assert not page.find("a", href="/app/users")
    assert page.find("a", href="/app/billing")


@pytest.mark.parametrize("lang", ["es_419", "en"])
def test_sign_in_form_is_labelled_and_reports_errors(lang: str) -> None:
    page = render(lang, "signin.html", csrf_token="t", error="invalid_credentials", email="a@b.c")
    for input_id in ("signin-email", "signin-password"):
        assert page.find("label", **{"for": input_id})
        (field,) = page.find("input", id=input_id)
        assert field["aria-invalid"] == "true"
    (alert,) = page.find("div", role="alert")
    assert alert["id"] == "signin-error"
    message = {"es_419": "El correo electrónico", "en": "The email or password is incorrect."}[lang]
    assert any(text.startswith(message) for text in page.texts)
    assert page.find("input", name="email", value="a@b.c")
    assert not page.find("nav")  # nobody signed in: no navigation, no sign-out


@pytest.mark.parametrize(
    ("status", "es_heading", "en_heading"),
    [
        (404, "No se encontró la página", "Page not found"),
        (403, "Acceso denegado", "Access denied"),
    ],
)
def test_error_pages_in_both_languages(status: int, es_heading: str, en_heading: str) -> None:
    spanish = render("es_419", "error.html", status=status)
    english = render("en", "error.html", status=status)
    assert es_heading in spanish.texts and en_heading not in spanish.text
    assert en_heading in english.texts and es_heading not in english.text
    assert f"{es_heading} · Llavero" in spanish.texts


def _data_strings(context: dict[str, Any]) -> Iterator[str]:
    """Every string a fake context contributes, plus the values filters derive from it."""
    for value in context.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            yield from _data_strings(value)
        elif isinstance(value, list):
            for item in value:
                yield from _data_strings(item if isinstance(item, dict) else {"v": item})
        elif isinstance(value, datetime):
            yield i18n.format_date(value, lang="en")
            yield i18n.format_datetime(value, lang="en")
            yield i18n.format_relative(value, "en", now=NOW)
        elif isinstance(value, int):
            yield templating.masked_number(value)


@pytest.mark.parametrize("page_name", sorted(PAGES))
def test_every_visible_string_goes_through_gettext(page_name: str) -> None:
    context = PAGES[page_name]
    env = templating.create_environment("en", MarkingTranslations())
    page = Page(env.get_template(template_of(page_name)).render(**context))
    allowed = sorted(
        {*_data_strings(context), *PLACEHOLDER_EXAMPLES}
        | {"Llavero", "English", "Español (Latinoamérica)", "…BMog"}
        | {"Aug 1, 2025", "Aug 2, 2025, 11:57\u202fAM", "3 minutes ago", "404"},
        key=len,
        reverse=True,
    )
    untranslated = []
    for text in page.texts:
        rest, nested = text, 1
        while nested:  # innermost first: a translated name inside a translated sentence
            rest, nested = re.subn(r"⟪[^⟪⟫]*⟫", "", rest)
        for value in allowed:
            rest = rest.replace(value, "")
        if re.search(r"[^\W\d_]", rest):
            untranslated.append(text)
    assert untranslated == []


@pytest.mark.parametrize("page_name", sorted(PAGES))
def test_no_inline_script_style_or_handlers(page_name: str) -> None:
    page = Page(templating.render("es_419", template_of(page_name), **PAGES[page_name]))
    for tag, attributes in page.tags:
        assert not [name for name in attributes if name.startswith("on")], tag
        assert "style" not in attributes, tag
        if tag == "script":
            assert (attributes.get("src") or "").startswith("/static/")
    assert not [tag for tag, _ in page.tags if tag == "style"]


@pytest.mark.parametrize("page_name", sorted(PAGES))
def test_references_point_at_ids_that_exist(page_name: str) -> None:
    page = Page(templating.render("en", template_of(page_name), **PAGES[page_name]))
    ids = [attrs["id"] for _, attrs in page.tags if attrs.get("id")]
    assert len(ids) == len(set(ids))
    references = ("for", "aria-labelledby", "aria-describedby", "data-dialog-open", "data-confirm")
    for _, attributes in page.tags:
        for name in references:
            for target in (attributes.get(name) or "").split():
                assert target in ids, f"{name}={target}"


def test_every_behaviour_hook_in_the_templates_is_wired_in_the_script() -> None:
    script = (STATIC / "console.js").read_text()
    hooks = set()
    for page_name, context in PAGES.items():
        page = Page(templating.render("en", template_of(page_name), **context))
        hooks |= {name for _, attrs in page.tags for name in attrs if name.startswith("data-")}
    assert "data-copy-target" in hooks and "data-confirm" in hooks
    assert sorted(hook for hook in hooks if hook not in script) == []


def test_every_class_on_a_page_is_styled() -> None:
    """A class no stylesheet names is a loose end: a page that reads wrong at 360 px or on a
    desktop."""
    css = "\n".join(path.read_text() for path in STATIC.glob("*.css"))
    styled = set(re.findall(r"\.([a-zA-Z][\w-]*)", css))
    used = set()
    for page_name, context in PAGES.items():
        page = Page(templating.render("en", template_of(page_name), **context))
        used |= {name for _, attrs in page.tags for name in (attrs.get("class") or "").split()}
    assert sorted(used - styled) == []


def test_stylesheet_loads_nothing_from_the_network() -> None:
    css = (STATIC / "console.css").read_text()
    assert "@import" not in css and "url(" not in css and "http" not in css


def test_environments_do_not_mix_languages_under_concurrency() -> None:
    def heading(lang: str) -> str:
        page = render(lang, "error.html", status=404)
        return page.find("html")[0]["lang"] or ""

    langs = ["es_419", "en"] * 20
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(heading, langs))
    assert got == [{"es_419": "es-419", "en": "en"}[lang] for lang in langs]
    assert templating.environment("es_419") is not templating.environment("en")


def test_masking_filters() -> None:
    assert templating.masked_number(482913576692) == "…6692"
    assert templating.masked_number("000000000042") == "…0042"
    assert templating.masked_key("BMog") == "…BMog"
