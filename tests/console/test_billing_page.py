"""The billing page: create, close and reopen billing accounts, link and unlink projects, and the
plan and limits that follow, on this page and on the keys page."""

from __future__ import annotations

from typing import Any

import pytest
from babel.numbers import get_currency_name
from fastapi.testclient import TestClient

from llavero.application import create_app
from llavero.console.pages.billing import CURRENCIES
from llavero.service import Actor, Llavero, models
from llavero.service.billing import BillingAccount
from tests.console.console_client import PASSWORD, Rows, csrf_of, sign_in
from tests.console.marking import mark_translations, untranslated


@pytest.fixture(autouse=True)
def english_browser(anonymous: TestClient) -> None:
    """English unless a test asks for es-419 with `?hl=`."""
    anonymous.headers["Accept-Language"] = "en"


@pytest.fixture
def project(llavero: Llavero, admin: Actor) -> models.Project:
    project = llavero.projects.create(admin, "Gemini API")
    llavero.keys.create(admin, project.id, display_name="Servidor")
    return project


@pytest.fixture
def account(llavero: Llavero, admin: Actor) -> BillingAccount:
    return llavero.billing.create(admin, "Finanzas", "MXN")


def post(console: TestClient, path: str, **fields: str) -> Any:
    form = {"csrf_token": csrf_of(console.get("/app/billing")), **fields}
    return console.post(path, data=form)


def rows_of(page: Any) -> list[list[str]]:
    return [row for row in Rows(page.text).rows if row]


def project_row(page: Any, project: models.Project) -> list[str]:
    """The project's row of the projects table, without its actions cell (the leak policy
    table below names the project too, in a row of two cells)."""
    name = f"{project.display_name} …{str(project.number)[-4:]}"
    found = [row[:7] for row in rows_of(page) if len(row) > 2 and row[0] == name]
    assert len(found) == 1, rows_of(page)
    return found[0]


@pytest.mark.parametrize(
    ("hl", "heading", "row"),
    [
        ("en", "Billing", ["Free", "10", "250", "250,000", "1,000,000", "None"]),
        ("es_419", "Facturación", ["Gratuito", "10", "250", "250,000", "1,000,000", "Ninguna"]),
    ],
)
def test_projects_show_their_plan_and_limits(
    console: TestClient, project: models.Project, hl: str, heading: str, row: list[str]
) -> None:
    page = console.get("/app/billing", params={"hl": hl})
    assert page.status_code == 200
    assert f'<h1 id="page-heading">{heading}</h1>' in page.text
    assert project_row(page, project)[1:] == row


def test_the_keys_page_leads_here_with_the_project_chosen(
    console: TestClient, project: models.Project, account: BillingAccount
) -> None:
    keys = console.get("/app/apikey")
    assert f'href="/app/billing?project={project.id}">Set up billing</a>' in keys.text
    page = console.get("/app/billing", params={"project": project.id})
    assert f'<option value="{project.id}" selected>' in page.text
    assert f'<tr id="project-{project.id}" aria-current="true">' in page.text


def test_create_an_account(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    answer = post(console, "/app/billing/accounts", display_name="Finanzas", currency="eur")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/billing?notice=account_created"
    [created] = llavero.billing.list(admin).items
    assert (created.display_name, created.currency, created.open) == ("Finanzas", "EUR", True)
    page = console.get(answer.headers["location"])
    assert "Billing account created." in page.text
    assert ["Finanzas", created.id, "EUR", "Open", "None", ""] in rows_of(page)


@pytest.mark.parametrize(
    ("fields", "error_id", "message"),
    [
        ({"display_name": "Finanzas", "currency": "XYZ"}, "account-currency-error", "ISO 4217"),
        ({"display_name": "  ", "currency": "USD"}, "account-name-error", "1 to 100"),
    ],
)
def test_a_refused_account_field_is_named_and_nothing_is_created(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    fields: dict[str, str],
    error_id: str,
    message: str,
) -> None:
    answer = post(console, "/app/billing/accounts", **fields)
    assert answer.status_code == 400
    assert f'<p id="{error_id}" class="alert">' in answer.text
    assert message in answer.text.split(f'id="{error_id}"')[1].split("</p>")[0]
    assert f'aria-describedby="{error_id}"' in answer.text
    assert f'value="{fields["currency"]}"' in answer.text  # what was typed stays
    assert llavero.billing.list(admin).items == []


@pytest.mark.parametrize(
    ("hl", "notice", "row"),
    [
        (
            "en",
            "Gemini API is now on the Tier 1 plan.",
            ["Tier 1", "1,000", "10,000", "1,000,000", "100,000,000", "Finanzas"],
        ),
        (
            "es_419",
            "Gemini API ahora está en el plan Nivel 1.",
            ["Nivel 1", "1,000", "10,000", "1,000,000", "100,000,000", "Finanzas"],
        ),
    ],
)
def test_linking_shows_the_new_plan_and_limits_at_once(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    account: BillingAccount,
    hl: str,
    notice: str,
    row: list[str],
) -> None:
    console.get("/app/billing", params={"hl": hl})
    answer = post(console, "/app/billing/link", project=project.id, billing_account=account.id)
    assert answer.status_code == 303
    assert llavero.projects.get(admin, project.id).plan == "tier-1"
    page = console.get(answer.headers["location"])
    assert notice in page.text
    assert project_row(page, project)[1:] == row
    keys = console.get("/app/apikey")
    assert f'href="/app/billing?project={project.id}">{row[0]}</a>' in keys.text
    assert "Configurar facturación" not in keys.text and "Set up billing" not in keys.text


def test_unlinking_goes_back_to_free(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    account: BillingAccount,
) -> None:
    llavero.billing.link(admin, project.id, account.id)
    answer = post(console, f"/app/billing/projects/{project.id}/unlink")
    assert answer.status_code == 303
    page = console.get(answer.headers["location"])
    assert "Gemini API is now on the Free plan." in page.text
    assert project_row(page, project)[1:3] == ["Free", "10"]
    assert llavero.billing.info(admin, project.id).billing_account is None


def test_closing_and_reopening_an_account_moves_its_projects(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    account: BillingAccount,
) -> None:
    llavero.billing.link(admin, project.id, account.id)
    closed = post(console, f"/app/billing/accounts/{account.id}/close")
    page = console.get(closed.headers["location"])
    assert "Billing account closed." in page.text
    assert ["Finanzas", account.id, "MXN", "Closed", "Gemini API", ""] in rows_of(page)
    assert project_row(page, project)[1:2] == ["Free"]
    assert "Link project" not in page.text  # no open account to link to

    refused = post(console, "/app/billing/link", project=project.id, billing_account=account.id)
    assert refused.headers["location"] == f"/app/billing?error=account_closed&project={project.id}"
    assert "That billing account is closed." in console.get(refused.headers["location"]).text

    reopened = post(console, f"/app/billing/accounts/{account.id}/reopen")
    page = console.get(reopened.headers["location"])
    assert project_row(page, project)[1:2] == ["Tier 1"]
    assert llavero.billing.get(admin, account.id).open


def test_posts_without_the_csrf_token_change_nothing(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    account: BillingAccount,
) -> None:
    attempts = [
        ("/app/billing/accounts", {"display_name": "Otra", "currency": "USD"}),
        ("/app/billing/link", {"project": project.id, "billing_account": account.id}),
        (f"/app/billing/accounts/{account.id}/close", {}),
    ]
    events = llavero.audit.list(admin).items
    for path, fields in attempts:
        assert console.post(path, data=fields).status_code == 403
        assert console.post(path, data=fields | {"csrf_token": "forged"}).status_code == 403
    assert llavero.billing.list(admin).items == [account]
    assert llavero.projects.get(admin, project.id).plan == "free"
    assert llavero.audit.list(admin).items == events


def test_names_are_shown_as_text(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "<b>Proyecto</b>")
    account = llavero.billing.create(admin, "<script>alert(1)</script>")
    llavero.billing.link(admin, project.id, account.id)
    page = console.get("/app/billing", params={"notice": "linked", "project": project.id})
    assert "<script>alert(1)</script>" not in page.text and "<b>Proyecto</b>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;Proyecto&lt;/b&gt; is now on the Tier 1 plan." in page.text


def test_members_see_plans_but_not_accounts(
    llavero: Llavero, admin: Actor, project: models.Project, account: BillingAccount
) -> None:
    llavero.users.create(admin, "beto@example.com", PASSWORD)
    with TestClient(create_app(llavero), follow_redirects=False) as beto:
        beto.headers["Accept-Language"] = "en"
        assert sign_in(beto, "beto@example.com").status_code == 303
        page = beto.get("/app/billing")
        assert page.status_code == 200
        assert "Only administrators can create billing accounts" in page.text
        assert "Finanzas" not in page.text and "Gemini API" not in page.text
        answer = beto.post(
            "/app/billing/link",
            data={
                "csrf_token": csrf_of(page),
                "project": project.id,
                "billing_account": account.id,
            },
        )
        assert answer.headers["location"].startswith("/app/billing?error=")
    assert llavero.projects.get(admin, project.id).plan == "free"


@pytest.mark.parametrize("path", ["/app/billing", "/app/billing?project=x"])
def test_signed_out_visitors_are_sent_to_sign_in(anonymous: TestClient, path: str) -> None:
    answer = anonymous.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=%2Fapp%2Fbilling")


def test_every_visible_string_goes_through_gettext(
    console: TestClient,
    llavero: Llavero,
    admin: Actor,
    project: models.Project,
    account: BillingAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llavero.billing.link(admin, project.id, account.id)
    closed = llavero.billing.create(admin, "Vieja", "USD")
    llavero.billing.close(admin, closed.id)
    mark_translations(monkeypatch)
    data = [
        "Gemini API",
        "Finanzas",
        "Vieja",
        "Tier 1",
        "ana@example.com",
        account.id,
        closed.id,
        *CURRENCIES,
        *(get_currency_name(code, locale="en") for code in CURRENCIES),
    ]
    pages = [
        console.get("/app/billing", params={"notice": "linked", "project": project.id}),
        post(console, "/app/billing/accounts", display_name="x", currency="nope"),
    ]
    for page in pages:
        assert untranslated(page.text, [*data, "nope", "x"]) == []


def test_the_chosen_project_stays_chosen_after_creating_an_account(
    console: TestClient, project: models.Project
) -> None:
    form_page = console.get("/app/billing", params={"project": project.id})
    assert f'<input type="hidden" name="project" value="{project.id}">' in form_page.text
    answer = post(
        console,
        "/app/billing/accounts",
        display_name="Finanzas",
        currency="USD",
        project=project.id,
    )
    assert answer.headers["location"] == (
        f"/app/billing?notice=account_created&project={project.id}"
    )
    page = console.get(answer.headers["location"])
    assert f'<option value="{project.id}" selected>' in page.text


def test_the_leak_policy_is_set_per_project(
    console: TestClient, llavero: Llavero, admin: Actor, project: models.Project
) -> None:
    page = console.get("/app/billing?hl=es_419")
    assert "Claves filtradas" in page.text and "Revocarla (recomendado)" in page.text
    assert "Leaked keys" in console.get("/app/billing?hl=en").text
    saved = post(console, f"/app/billing/projects/{project.id}/leak-policy", leak_policy="notify")
    assert saved.status_code == 303
    assert "Saved: keys of this project" in console.get(saved.headers["location"]).text
    assert llavero.projects.get(admin, project.id).leak_policy == "notify"
    refused = post(console, f"/app/billing/projects/{project.id}/leak-policy", leak_policy="boom")
    assert "not valid" in console.get(refused.headers["location"]).text
    assert llavero.projects.get(admin, project.id).leak_policy == "notify"
