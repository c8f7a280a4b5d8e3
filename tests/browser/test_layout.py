"""The keys page at 1280×800 shows the guide's five columns and every row action without sideways
scrolling, as AI Studio does; at 390×844 (a phone) the tabs wrap rather than cut "Registro de
auditoría", charts fit, and each row's actions stay in view. Measured in Debian's Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from llavero.service import Actor, Llavero

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
LANGUAGES = pytest.mark.parametrize(
    ("hl", "email", "password", "submit", "actions"),
    [
        ("es_419", "Correo electrónico", "Contraseña", "Iniciar sesión",
         ("Ver datos de uso", "Más acciones", "Eliminar")),
        ("en", "Email", "Password", "Sign in", ("View usage data", "More actions", "Delete")),
    ],
    ids=["es_419", "en"],
)  # fmt: skip

# Boxes of the page's parts, in CSS pixels, read in the browser.
MEASURE = """() => {
  const ROW_ACTIONS = '.actions > a, .actions > details > summary, .actions > form > button';
  const box = (element) => { const r = element.getBoundingClientRect();
                             return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const wrap = document.querySelector('.table-wrap');
  return {
    page: document.documentElement.scrollWidth,
    wrap: wrap ? box(wrap) : null,
    table: wrap ? wrap.querySelector('table').getBoundingClientRect().width : null,
    scrolls: wrap ? wrap.scrollWidth > wrap.clientWidth : null,
    actions: [...document.querySelectorAll('tbody tr')].map(
      (row) => [...row.querySelectorAll(ROW_ACTIONS)]
        .map((element) => ({text: element.textContent.trim(), ...box(element)}))),
    tabs: [...document.querySelectorAll('.site-nav a')].map(
      (tab) => ({text: tab.textContent.trim(), ...box(tab)})),
    charts: [...document.querySelectorAll('svg[role="img"]')].map(box),
  };
}"""


@pytest.fixture
def keys(llavero: Llavero, admin: Actor) -> str:
    """Rows as they come in real use: a long project name, restrictions, an environment, a
    disabled key; returns one key's id."""
    project = llavero.projects.create(admin, "Gemini API de producción")
    restricted = llavero.keys.create(
        admin,
        project.id,
        display_name="Servidor de integración continua",
        environment="production",
        restrictions={
            "allowed_ips": ["203.0.113.0/24"],
            "api_targets": [{"service": "generativelanguage.googleapis.com"}],
        },
    )
    llavero.keys.create(admin, project.id, display_name="Portátil")
    disabled = llavero.keys.create(admin, project.id, display_name="Staging")
    llavero.keys.update(admin, disabled.key.id, {"state": "DISABLED"})
    return restricted.key.id


def sign_in(page: Any, hl: str, email: str, password: str, submit: str) -> None:
    page.goto(f"/app/apikey?hl={hl}")
    page.get_by_label(email).fill("ana@example.com")
    page.get_by_label(password).fill("correct horse battery")
    page.get_by_role("button", name=submit).click()
    expect(page.locator("tbody tr")).to_have_count(3)


@LANGUAGES
def test_at_1280_every_action_is_in_view_without_scrolling(
    page: Any, keys: str, hl: str, email: str, password: str, submit: str, actions: tuple[str, ...]
) -> None:
    page.set_viewport_size(DESKTOP)
    sign_in(page, hl, email, password, submit)
    measured = page.evaluate(MEASURE)
    assert measured["page"] <= DESKTOP["width"]
    assert not measured["scrolls"], f"the table is {measured['table']} px wide"
    headers = page.locator("thead th").all_inner_texts()
    assert len(headers) >= 5
    right = measured["wrap"]["right"]
    for row in measured["actions"]:
        assert [item["text"].split(":")[0] for item in row] == list(actions)
        for item in row:
            assert item["left"] >= 0 and item["right"] <= right, item
            assert item["bottom"] <= DESKTOP["height"], item  # in the first screen


@LANGUAGES
def test_at_390_the_tabs_charts_and_actions_fit(
    page: Any,
    keys: str,
    hl: str,
    email: str,
    password: str,
    submit: str,
    actions: tuple[str, ...],
) -> None:
    page.set_viewport_size(PHONE)
    sign_in(page, hl, email, password, submit)
    measured = page.evaluate(MEASURE)
    assert measured["page"] <= PHONE["width"], "the page scrolls sideways"
    for tab in measured["tabs"]:
        assert tab["left"] >= 0 and tab["right"] <= PHONE["width"], tab  # none is cut
    for row in measured["actions"]:  # the table scrolls; the actions column stays in view
        assert [item["text"].split(":")[0] for item in row] == list(actions)
        for item in row:
            assert item["left"] >= 0 and item["right"] <= PHONE["width"], item

    page.goto(f"/app/usage?key={keys}")
    usage = page.evaluate(MEASURE)
    assert usage["page"] <= PHONE["width"]
    assert len(usage["charts"]) == 2
    for chart in usage["charts"]:
        assert chart["left"] >= 0 and chart["right"] <= PHONE["width"], chart

    page.goto("/app/audit")
    audit = page.evaluate(MEASURE)
    assert audit["page"] <= PHONE["width"]
    assert audit["wrap"]["right"] <= PHONE["width"]
