"""Past the guide, in a real browser, in es-419 and in English: restrict a key to an IP range and
see verify refuse a request from outside (and the dry-run say why), read the counts of some
verifies on the usage page, set up billing and see the plan change on the keys page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero, models

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Texts:
    hl: str
    email: str
    password: str
    sign_in: str
    settings: str
    ip_addresses: str
    save: str
    saved: str
    ip_hint: str
    client_ip: str
    would_pass: str
    test: str
    refused: str
    outside: str
    usage: str
    allowed: str
    all_requests: str
    billing: str
    account_name: str
    create_account: str
    link: str
    now_tier_1: str
    tier_1: str


SPANISH = Texts(
    hl="es_419",
    email="Correo electrónico",
    password="Contraseña",
    sign_in="Iniciar sesión",
    settings="Configuración de credenciales avanzadas",
    ip_addresses="Direcciones IP",
    save="Guardar configuración",
    saved="Se guardó la configuración.",
    ip_hint="Línea 2: Ingresa una dirección IPv4 o IPv6",
    client_ip="Dirección IP del cliente",
    would_pass="¿Pasaría esta solicitud?",
    test="Probar la solicitud",
    refused="Esta solicitud se rechazaría: Dirección IP no permitida",
    outside="198.51.100.7 está fuera de todas las direcciones y rangos permitidos.",
    usage="Ver datos de uso",
    allowed="Permitida",
    all_requests="Todas las solicitudes",
    billing="Configurar facturación",
    account_name="Nombre de la cuenta",
    create_account="Crear cuenta de facturación",
    link="Enlazar proyecto",
    now_tier_1="Gemini API ahora está en el plan Nivel 1.",
    tier_1="Nivel 1",
)
ENGLISH = Texts(
    hl="en",
    email="Email",
    password="Password",
    sign_in="Sign in",
    settings="Advanced credential settings",
    ip_addresses="IP addresses",
    save="Save settings",
    saved="Settings saved.",
    ip_hint="Line 2: Enter an IPv4 or IPv6 address",
    client_ip="Client IP address",
    would_pass="Would this request pass?",
    test="Test the request",
    refused="This request would be refused: IP address not allowed",
    outside="198.51.100.7 is outside every allowed address and range.",
    usage="View usage data",
    allowed="Allowed",
    all_requests="All requests",
    billing="Set up billing",
    account_name="Account name",
    create_account="Create billing account",
    link="Link project",
    now_tier_1="Gemini API is now on the Tier 1 plan.",
    tier_1="Tier 1",
)
LANGUAGES = pytest.mark.parametrize("texts", [SPANISH, ENGLISH], ids=["es_419", "en"])


@pytest.fixture
def created(llavero: Llavero, admin: Actor) -> models.CreatedKey:
    project = llavero.projects.create(admin, "Gemini API")
    return llavero.keys.create(admin, project.id, display_name="Servidor")


def sign_in(page: Any, texts: Texts) -> None:
    page.goto(f"/app/apikey?hl={texts.hl}")
    page.get_by_label(texts.email).fill("ana@example.com")
    page.get_by_label(texts.password).fill("correct horse battery")
    page.get_by_role("button", name=texts.sign_in).click()
    expect(page.locator("tbody tr")).to_have_count(1)


@LANGUAGES
def test_restrict_a_key_to_an_ip_range(
    page: Any, llavero: Llavero, created: models.CreatedKey, texts: Texts
) -> None:
    sign_in(page, texts)
    page.get_by_role("link", name="Servidor").click()
    expect(page.get_by_role("heading", name=texts.settings)).to_be_visible()

    page.get_by_role("radio", name=texts.ip_addresses).check()
    ranges = page.get_by_role("textbox", name=texts.ip_addresses)
    ranges.fill("203.0.113.0/24\n10.0.0.1/24")
    page.get_by_role("button", name=texts.save).click()
    expect(page.locator("#allowed_ips-error")).to_contain_text(texts.ip_hint)
    expect(ranges).to_have_attribute("aria-invalid", "true")
    expect(ranges).to_be_focused()
    expect(ranges).to_have_value("203.0.113.0/24\n10.0.0.1/24")
    refused_before = llavero.verifier.verify(VerifyRequest(key=created.key_string, ip="10.9.9.9"))
    assert refused_before.code == "VALID"  # nothing was saved

    ranges.fill("203.0.113.0/24")
    page.get_by_role("button", name=texts.save).click()
    expect(page.get_by_role("status").filter(has_text=texts.saved)).to_be_visible()
    outside = llavero.verifier.verify(VerifyRequest(key=created.key_string, ip="198.51.100.7"))
    inside = llavero.verifier.verify(VerifyRequest(key=created.key_string, ip="203.0.113.40"))
    assert (outside.code, inside.code) == ("IP_NOT_ALLOWED", "VALID")

    expect(page.get_by_role("heading", name=texts.would_pass)).to_be_visible()
    page.get_by_label(texts.client_ip).fill("198.51.100.7")
    page.get_by_role("button", name=texts.test).click()
    verdict = page.locator("#test-result")
    expect(verdict).to_contain_text(texts.refused)
    expect(verdict).to_contain_text(texts.outside)
    expect(page.get_by_label(texts.client_ip)).to_have_value("198.51.100.7")


@LANGUAGES
def test_usage_after_some_verifies(
    page: Any, llavero: Llavero, admin: Actor, created: models.CreatedKey, texts: Texts
) -> None:
    restricted = {"restrictions": {"allowed_ips": ["203.0.113.0/24"]}}
    llavero.keys.update(admin, created.key.id, restricted)
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3", "198.51.100.7"):
        llavero.verifier.verify(VerifyRequest(key=created.key_string, ip=ip, cost=40))
    llavero.usage_meter.flush()

    sign_in(page, texts)
    page.get_by_role("link", name=texts.usage).click()
    totals = page.locator("table").first
    expect(totals.locator("tbody tr").first.locator("td")).to_have_text(
        [texts.allowed, "VALID", "3"]
    )
    expect(totals.locator("tbody tr").nth(1).locator("td")).to_contain_text(["IP_NOT_ALLOWED", "1"])
    expect(totals.locator("tfoot tr").first).to_contain_text(texts.all_requests)
    expect(totals.locator("tfoot tr").first).to_contain_text("4")
    expect(totals.locator("tfoot tr").nth(1)).to_contain_text("120")
    expect(page.locator("svg[role=img]")).to_have_count(2)


@LANGUAGES
def test_set_up_billing_and_see_the_plan_change(
    page: Any, llavero: Llavero, admin: Actor, created: models.CreatedKey, texts: Texts
) -> None:
    sign_in(page, texts)
    plan_cell = page.locator("tbody tr").first.locator("td").nth(4)
    expect(plan_cell).to_have_text(texts.billing)
    plan_cell.get_by_role("link").click()

    page.get_by_label(texts.account_name).fill("Finanzas")
    page.get_by_role("button", name=texts.create_account).click()
    page.get_by_role("button", name=texts.link).click()
    expect(page.get_by_role("status")).to_have_text(texts.now_tier_1)
    assert llavero.projects.get(admin, created.key.project).plan == "tier-1"
    verdict = llavero.verifier.verify(VerifyRequest(key=created.key_string))
    assert (verdict.plan, verdict.limits["rpm"]["limit"]) == ("tier-1", 1000)

    page.goto("/app/apikey")
    expect(page.locator("tbody tr").first.locator("td").nth(4)).to_have_text(texts.tier_1)
