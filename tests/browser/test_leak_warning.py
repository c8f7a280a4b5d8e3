"""A key reported leaked, in a real browser, in es-419 and in English: the keys page and the
key page say so plainly, with the place it was found, and one click rotates it (the leaked
string stops, the new one verifies). The billing page sets the project's leak policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.service.leaks import Match

pytestmark = pytest.mark.browser
PLACE = "https://github.com/octo/demo/blob/abc123/.env#L1"


@dataclass(frozen=True)
class Texts:
    hl: str
    email: str
    password: str
    sign_in: str
    leaked: str
    found: str
    rotate: str
    rotated: str
    copy: str
    policy_label: str
    disable_it: str
    saved: str


SPANISH = Texts(
    hl="es_419",
    email="Correo electrónico",
    password="Contraseña",
    sign_in="Iniciar sesión",
    leaked="Filtrada",
    found="Esta clave se encontró filtrada el",
    rotate="Rotar ahora",
    rotated="Se rotó la clave de API. La clave filtrada ya no funciona.",
    copy="Copiar",
    policy_label="Si se filtra una clave de Gemini API",
    disable_it="Inhabilitarla",
    saved="Se guardó: las claves filtradas de este proyecto se tratarán como elegiste.",
)
ENGLISH = Texts(
    hl="en",
    email="Email",
    password="Password",
    sign_in="Sign in",
    leaked="Leaked",
    found="This key was found leaked on",
    rotate="Rotate now",
    rotated="API key rotated. The leaked key no longer works.",
    copy="Copy",
    policy_label="If a key of Gemini API leaks",
    disable_it="Disable it",
    saved="Saved: keys of this project found leaked are handled as you chose.",
)
LANGUAGES = pytest.mark.parametrize("texts", [SPANISH, ENGLISH], ids=["es_419", "en"])


def sign_in(page: Any, texts: Texts) -> None:
    page.goto(f"/app/apikey?hl={texts.hl}")
    page.get_by_label(texts.email).fill("ana@example.com")
    page.get_by_label(texts.password).fill("correct horse battery")
    page.get_by_role("button", name=texts.sign_in).click()


@LANGUAGES
def test_a_leaked_key_warns_and_rotates_in_one_click(
    page: Any, llavero: Llavero, admin: Actor, texts: Texts
) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, display_name="Servidor")
    llavero.leaks.report(admin, [Match(created.key_string, url=PLACE, source="github")])
    sign_in(page, texts)

    warning = page.locator(".leaked-keys [role=alert]")  # revoked: above the list
    expect(warning).to_contain_text(texts.found)
    expect(warning).to_contain_text(PLACE)
    expect(warning.get_by_role("link", name=PLACE)).to_have_attribute("href", PLACE)

    page.goto(f"/app/keys/{created.key.id}?hl={texts.hl}")
    on_key_page = page.get_by_role("alert").filter(has_text=texts.found)
    expect(on_key_page).to_contain_text(PLACE)
    expect(on_key_page).to_contain_text(texts.leaked)
    on_key_page.get_by_role("button", name=texts.rotate).click()

    expect(page.get_by_role("status").filter(has_text=texts.rotated)).to_be_visible()
    new_string = page.locator("#created-key").input_value()
    assert new_string != created.key_string
    assert llavero.verifier.verify(VerifyRequest(new_string)).code == "VALID"
    assert llavero.verifier.verify(VerifyRequest(created.key_string)).code != "VALID"
    expect(page.locator(".leak-warning")).to_have_count(0)
    assert llavero.keys.get(admin, created.key.id).leak is None


@LANGUAGES
def test_a_key_leaked_under_notify_warns_on_its_row(
    page: Any, llavero: Llavero, admin: Actor, texts: Texts
) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    llavero.projects.update(admin, project.id, leak_policy="notify")
    created = llavero.keys.create(admin, project.id, display_name="Servidor")
    llavero.leaks.report(admin, [Match(created.key_string, url=PLACE, source="gitleaks")])
    sign_in(page, texts)
    row = page.locator("tbody tr").filter(has_text="Servidor")
    expect(row.locator(".badge--danger")).to_have_text(f"⚠ {texts.leaked}")
    expect(row.get_by_role("alert")).to_contain_text(PLACE)
    expect(row.get_by_role("button", name=texts.rotate)).to_be_visible()
    expect(page.locator(".leaked-keys")).to_have_count(0)  # the row itself shows it


@LANGUAGES
def test_the_billing_page_sets_the_leak_policy(
    page: Any, llavero: Llavero, admin: Actor, texts: Texts
) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    sign_in(page, texts)
    page.goto(f"/app/billing?hl={texts.hl}")
    page.get_by_label(texts.policy_label).select_option(label=texts.disable_it)
    page.locator(f"#leak-policy-row-{project.id}").get_by_role("button").filter(
        has_text="Guardar" if texts.hl == "es_419" else "Save"
    ).click()
    expect(page.get_by_role("status")).to_have_text(texts.saved)
    assert llavero.projects.get(admin, project.id).leak_policy == "disable"
    created = llavero.keys.create(admin, project.id)
    llavero.leaks.report(admin, [Match(created.key_string)])
    assert llavero.verifier.verify(VerifyRequest(created.key_string)).code == "DISABLED"
