"""The AI Studio guide, step by step in a real browser, in es-419 and in English: sign in, create
a key in a new project, copy it, close the dialog, read the row, delete and undo, rotate,
disable."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import expect

from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero

pytestmark = pytest.mark.browser


@dataclass(frozen=True)
class Texts:
    hl: str
    email: str
    password: str
    sign_in: str
    heading: str
    create: str
    new_project: str
    create_key: str
    generated: str
    copy: str
    copied: str
    warning: str
    done: str
    columns: tuple[str, str, str, str, str]
    date: str
    billing: str
    delete: str
    deleted: str
    undo: str
    restored: str
    more: str
    grace_hour: str
    rotate: str
    disable: str
    disabled: str


SPANISH = Texts(
    hl="es_419",
    email="Correo electrónico",
    password="Contraseña",
    sign_in="Iniciar sesión",
    heading="Claves de API",
    create="Crear clave de API",
    new_project="Crear la clave en un proyecto nuevo",
    create_key="Crear clave",
    generated="Se generó la clave de API",
    copy="Copiar",
    copied="Copiado",
    warning="Guarda tu clave en un lugar seguro. No la compartas ni la incluyas en repositorios "
    "públicos.",
    done="Listo",
    columns=(
        "Nº de proyecto",
        "Nombre del proyecto",
        "Clave de API",
        "Fecha de creación",
        "Plan / Facturación",
    ),
    date="1 ago 2025",
    billing="Configurar facturación",
    delete="Eliminar",
    deleted="Se eliminó la clave de API.",
    undo="Deshacer",
    restored="Se restauró la clave de API.",
    more="Más acciones",
    grace_hour="Durante 1 hora",
    rotate="Rotar clave",
    disable="Inhabilitar clave",
    disabled="Inhabilitada",
)
ENGLISH = Texts(
    hl="en",
    email="Email",
    password="Password",
    sign_in="Sign in",
    heading="API keys",
    create="Create API key",
    new_project="Create the key in a new project",
    create_key="Create key",
    generated="API key generated",
    copy="Copy",
    copied="Copied",
    warning="Keep your key somewhere safe. Don't share it or commit it to public repositories.",
    done="Done",
    columns=("Project number", "Project name", "API key", "Created", "Plan / Billing"),
    date="Aug 1, 2025",
    billing="Set up billing",
    delete="Delete",
    deleted="API key deleted.",
    undo="Undo",
    restored="API key restored.",
    more="More actions",
    grace_hour="For 1 hour",
    rotate="Rotate key",
    disable="Disable key",
    disabled="Disabled",
)


def cells(row: Any) -> list[str]:
    return [" ".join(text.split()) for text in row.locator("td").all_inner_texts()]


def key_in_dialog(page: Any, texts: Texts) -> str:
    dialog = page.get_by_role("dialog", name=texts.generated)
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(texts.warning)
    value: str = dialog.get_by_role("textbox").input_value()
    return value


@pytest.mark.parametrize("texts", [SPANISH, ENGLISH], ids=["es_419", "en"])
def test_the_guide_in_a_browser(page: Any, llavero: Llavero, admin: Actor, texts: Texts) -> None:
    page.goto(f"/app/apikey?hl={texts.hl}")
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.get_by_label(texts.email).fill("ana@example.com")
    page.get_by_label(texts.password).fill("correct horse battery")
    page.get_by_role("button", name=texts.sign_in).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(texts.heading)

    page.get_by_role("button", name=texts.create).click()
    create_dialog = page.get_by_role("dialog", name=texts.create)
    expect(create_dialog.get_by_role("combobox")).to_have_value("")
    expect(create_dialog.get_by_role("combobox").locator("option:checked")).to_have_text(
        texts.new_project
    )
    expect(create_dialog.get_by_role("textbox").first).to_have_value("Gemini API")
    create_dialog.get_by_role("button", name=texts.create_key).click()

    shown = key_in_dialog(page, texts)
    page.get_by_role("button", name=texts.copy, exact=True).click()
    expect(page.get_by_role("status").filter(has_text=texts.copied)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == shown
    assert llavero.verifier.verify(VerifyRequest(key=shown)).code == "VALID"

    page.get_by_role("button", name=texts.done).click()
    expect(page.locator("#key-created-dialog")).to_have_count(0)
    assert shown not in page.content()
    header = page.locator("thead th")
    assert [" ".join(text.split()) for text in header.all_inner_texts()[:5]] == list(texts.columns)
    row = page.locator("tbody tr").first
    project = llavero.projects.list(admin).items[0]
    expected = [f"…{str(project.number)[-4:]}", "Gemini API", f"…{shown[-4:]}", texts.date]
    assert cells(row)[:5] == [*expected, texts.billing]

    row.get_by_role("button", name=texts.delete).click()
    page.get_by_role("dialog").get_by_role("button", name=texts.delete).click()
    expect(page.get_by_role("status").filter(has_text=texts.deleted)).to_be_visible()
    key_id = llavero.keys.lookup(admin, shown).key
    assert llavero.keys.get(admin, key_id).state == "DELETED"
    page.get_by_role("button", name=texts.undo).click()
    expect(page.get_by_role("status").filter(has_text=texts.restored)).to_be_visible()
    assert llavero.keys.get(admin, key_id).state == "ACTIVE"

    row = page.locator("tbody tr").first
    row.get_by_text(texts.more).click()
    row.get_by_role("combobox").select_option(label=texts.grace_hour)
    row.get_by_role("button", name=texts.rotate).click()
    rotated = key_in_dialog(page, texts)
    assert rotated != shown
    assert llavero.verifier.verify(VerifyRequest(key=rotated)).code == "VALID"
    assert llavero.verifier.verify(VerifyRequest(key=shown)).code == "VALID"
    page.get_by_role("button", name=texts.done).click()
    expect(page.locator("tbody tr").first.locator("td").nth(2)).to_have_text(f"…{rotated[-4:]}")

    row = page.locator("tbody tr").first
    row.get_by_text(texts.more).click()
    row.get_by_role("button", name=texts.disable).click()
    expect(page.locator("tbody tr").first.locator(".state")).to_have_text(texts.disabled)
    assert llavero.keys.get(admin, key_id).state == "DISABLED"
    assert llavero.verifier.verify(VerifyRequest(key=rotated)).code == "DISABLED"
