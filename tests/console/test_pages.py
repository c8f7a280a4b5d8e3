"""The console over HTTP: sign-in and sessions, CSRF, the keys page and its actions, users,
audit and account pages, in both languages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from llavero.application import create_app
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero
from llavero.service.models import User
from llavero.store import tables
from tests.console.console_client import PASSWORD, Rows, body_rows, csrf_of, key_names, sign_in

SPEC_COLUMNS = {
    "es_419": [
        "Nº de proyecto",
        "Nombre del proyecto",
        "Clave de API",
        "Fecha de creación",
        "Plan / Facturación",
    ],
    "en": ["Project number", "Project name", "API key", "Created", "Plan / Billing"],
}


def guide_key(llavero: Llavero, admin: Actor) -> str:
    """The key of the guide's row: project …6692 "Gemini API", key …BMog, made 1 Aug 2025."""
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, display_name="Servidor")
    with llavero.db.transaction() as session:
        session.execute(
            update(tables.Project)
            .where(tables.Project.id == project.id)
            .values(number=482913576692)
        )
        session.execute(
            update(tables.Key).where(tables.Key.id == created.key.id).values(last4="BMog")
        )
    return created.key.id


def test_root_and_signed_out_pages_lead_to_sign_in(anonymous: TestClient) -> None:
    assert anonymous.get("/").headers["location"] == "/app/apikey"
    for path in ("/app/apikey?hl=en", "/app/users", "/app/audit", "/app/account"):
        answer = anonymous.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/signin?next=%2Fapp%2F")


def test_sign_in_returns_to_the_page_asked_for(anonymous: TestClient, ana: User) -> None:
    asked = anonymous.get("/app/apikey?hl=en").headers["location"]
    assert asked == "/signin?next=%2Fapp%2Fapikey%3Fhl%3Den&hl=en"
    form = anonymous.get(asked)
    assert '<h1 id="signin-heading">Sign in</h1>' in form.text
    assert form.status_code == 200 and 'name="next" value="/app/apikey?hl=en"' in form.text
    answer = anonymous.post(
        "/signin",
        data={
            "email": ana.email,
            "password": PASSWORD,
            "csrf_token": csrf_of(form),
            "next": "/app/apikey?hl=en",
        },
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/apikey?hl=en"
    cookie = next(
        value for value in answer.headers.get_list("set-cookie") if "llavero_session=" in value
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert "API keys" in anonymous.get("/app/apikey?hl=en").text


def test_next_never_leaves_the_site(anonymous: TestClient, ana: User) -> None:
    answer = sign_in(anonymous, ana.email, next="//evil.example/x")
    assert answer.headers["location"] == "/app/apikey"


def test_secure_cookies_when_asked(llavero: Llavero, ana: User) -> None:
    llavero.settings.secure_cookies = True
    with TestClient(create_app(llavero), follow_redirects=False) as client:
        answer = sign_in(client, ana.email)
    assert "Secure" in answer.headers["set-cookie"]


def test_wrong_password_is_refused_in_the_visitors_language(
    anonymous: TestClient, ana: User
) -> None:
    answer = sign_in(anonymous, ana.email, "not the password")
    assert answer.status_code == 401
    assert "El correo electrónico o la contraseña no son correctos." in answer.text
    assert "llavero_session" not in answer.headers.get("set-cookie", "")
    anonymous.cookies.set("llavero_hl", "en")
    assert "The email or password is incorrect." in sign_in(anonymous, "x@y.z", "nope").text


def test_repeated_failures_are_throttled_even_with_the_right_password(
    anonymous: TestClient, ana: User
) -> None:
    for _ in range(5):
        assert sign_in(anonymous, ana.email, "wrong password!").status_code == 401
    answer = sign_in(anonymous, ana.email)
    assert answer.status_code == 429
    assert "Demasiados intentos fallidos. Espera unos minutos" in answer.text
    assert anonymous.get("/app/apikey").status_code == 303


def test_sign_in_form_without_its_token_is_refused(anonymous: TestClient, ana: User) -> None:
    anonymous.get("/signin")
    answer = anonymous.post(
        "/signin", data={"email": ana.email, "password": PASSWORD, "csrf_token": "forged"}
    )
    assert answer.status_code == 403
    assert anonymous.get("/app/apikey").status_code == 303


def test_first_run_link_signs_in_once(llavero: Llavero, anonymous: TestClient) -> None:
    bootstrap = llavero.bootstrap("root@example.com")
    assert bootstrap is not None
    first = anonymous.get("/signin/link", params={"token": bootstrap.signin_token})
    assert first.status_code == 303 and first.headers["location"] == "/app/apikey"
    assert anonymous.get("/app/apikey").status_code == 200
    anonymous.cookies.clear()
    again = anonymous.get("/signin/link", params={"token": bootstrap.signin_token})
    assert again.status_code == 401
    assert "ya se usó o venció" in again.text
    assert anonymous.get("/app/apikey").status_code == 303


def test_sign_out_ends_the_session(console: TestClient) -> None:
    page = console.get("/app/apikey")
    session = console.cookies["llavero_session"]
    answer = console.post("/signout", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    console.cookies.set("llavero_session", session)
    answer = console.get("/app/apikey")
    assert answer.status_code == 303
    assert "Tu sesión venció" in console.get(answer.headers["location"]).text


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_posts_without_the_right_csrf_token_change_nothing(
    console: TestClient, llavero: Llavero, admin: Actor, token: str | None
) -> None:
    key_id = guide_key(llavero, admin)
    data = {} if token is None else {"csrf_token": token}
    create = console.post("/app/apikey", data=data | {"project": "", "display_name": "x"})
    delete = console.post(f"/app/apikey/{key_id}/delete", data=data)
    signout = console.post("/signout", data=data)
    assert [create.status_code, delete.status_code, signout.status_code] == [403, 403, 403]
    assert llavero.keys.get(admin, key_id).state == "ACTIVE"
    assert len(llavero.projects.list(admin).items) == 1
    assert console.get("/app/apikey").status_code == 200


def test_the_guide_row_in_spanish(
    console: TestClient, llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    assert clock.now() == datetime(2025, 8, 1, tzinfo=UTC)
    guide_key(llavero, admin)
    page = console.get("/app/apikey?hl=es_419")
    headers = Rows(page.text).rows[0]
    assert headers[:5] == SPEC_COLUMNS["es_419"]
    row = body_rows(page)[0]
    assert " | ".join(row[:5]) == "…6692 | Gemini API | …BMog | 1 ago 2025 | Configurar facturación"
    assert row[-1] == "Ver datos de uso"
    assert "Eliminar" in page.text and "Más acciones" in page.text
    assert '<h1 id="page-heading">Claves de API</h1>' in page.text
    assert "Crear clave de API" in page.text
    assert 'href="/app/billing?project=' in page.text and 'href="/app/usage?key=' in page.text


def test_the_guide_row_in_english_by_accept_language(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    guide_key(llavero, admin)
    page = console.get("/app/apikey", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert Rows(page.text).rows[0][:5] == SPEC_COLUMNS["en"]
    assert " | ".join(body_rows(page)[0][:5]) == (
        "…6692 | Gemini API | …BMog | Aug 1, 2025 | Set up billing"
    )
    assert '<html lang="en">' in page.text


def test_hl_is_remembered_over_accept_language(console: TestClient) -> None:
    spanish_browser = {"Accept-Language": "es-MX,es;q=0.9"}
    chosen = console.get("/app/apikey?hl=en", headers=spanish_browser)
    assert "llavero_hl=en" in chosen.headers["set-cookie"]
    later = console.get("/app/apikey", headers=spanish_browser)
    assert "<title>API keys · Llavero</title>" in later.text
    assert "Claves de API" not in later.text
    console.get("/app/apikey?hl=es_419")
    assert "<title>Claves de API · Llavero</title>" in console.get("/app/apikey").text


def test_names_are_shown_as_text(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "<script>alert(1)</script>")
    llavero.keys.create(admin, project.id, display_name='<img src=x onerror="alert(2)">')
    page = console.get("/app/apikey")
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_create_in_a_new_project_shows_the_key_once(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    page = console.get("/app/apikey?hl=en")
    answer = console.post(
        "/app/apikey",
        data={"csrf_token": csrf_of(page), "project": "", "new_project_name": "Gemini API"},
    )
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert "API key generated" in answer.text
    assert "Keep your key somewhere safe." in answer.text
    shown = answer.text.split('id="created-key" class="mono" type="text" value="')[1].split('"')[0]
    assert llavero.verifier.verify(VerifyRequest(key=shown)).code == "VALID"
    again = console.get("/app/apikey?hl=en")
    assert shown not in again.text and f"…{shown[-4:]}" in again.text
    assert body_rows(again)[0][1] == "Gemini API"


def test_create_in_an_existing_project(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Backend")
    page = console.get("/app/apikey")
    console.post(
        "/app/apikey",
        data={"csrf_token": csrf_of(page), "project": project.id, "display_name": "Servidor"},
    )
    keys = llavero.keys.list(admin, project.id).items
    assert [key.display_name for key in keys] == ["Servidor"]
    assert len(llavero.projects.list(admin).items) == 1


def test_delete_then_undo(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    key_id = guide_key(llavero, admin)
    page = console.get("/app/apikey")
    deleted = console.post(f"/app/apikey/{key_id}/delete", data={"csrf_token": csrf_of(page)})
    assert deleted.status_code == 303
    assert llavero.keys.get(admin, key_id).state == "DELETED"
    notice = console.get(deleted.headers["location"])
    assert "Puedes restaurarla" in notice.text or "30 días" in notice.text
    assert f'action="/app/apikey/{key_id}/undelete"' in notice.text and "Deshacer" in notice.text
    assert body_rows(notice) == []
    trash = console.get("/app/apikey?show=deleted")
    assert body_rows(trash)[0][2] == "…BMog" and "Restaurar" in trash.text
    undone = console.post(f"/app/apikey/{key_id}/undelete", data={"csrf_token": csrf_of(page)})
    assert undone.status_code == 303
    assert llavero.keys.get(admin, key_id).state == "ACTIVE"
    assert "Se restauró la clave de API." in console.get(undone.headers["location"]).text


def test_service_errors_show_as_translated_messages(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id = guide_key(llavero, admin)
    csrf = csrf_of(console.get("/app/apikey"))
    answer = console.post(f"/app/apikey/{key_id}/undelete", data={"csrf_token": csrf})
    page = console.get(answer.headers["location"])
    assert page.status_code == 200
    assert "No se puede hacer eso con esta clave en su estado actual." in page.text
    missing = console.post("/app/apikey/no-such-key/disable", data={"csrf_token": csrf})
    assert "ya no existe" in console.get(missing.headers["location"]).text
    blank = console.post(f"/app/apikey/{key_id}/rename", data={"csrf_token": csrf})
    assert "no son válidos" in console.get(blank.headers["location"]).text
    assert llavero.keys.get(admin, key_id).display_name == "Servidor"


def test_rotate_disable_enable_rename(console: TestClient, llavero: Llavero, admin: Actor) -> None:
    project = llavero.projects.create(admin, "Gemini API")
    original = llavero.keys.create(admin, project.id)
    key_id = original.key.id
    csrf = csrf_of(console.get("/app/apikey"))

    rotated = console.post(
        f"/app/apikey/{key_id}/rotate", data={"csrf_token": csrf, "grace_period": "3600"}
    )
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new_string = rotated.text.split('value="llv_')[1].split('"')[0]
    assert llavero.keys.lookup(admin, "llv_" + new_string).key == key_id
    assert llavero.keys.get(admin, key_id).previous_last4 == original.key.last4
    odd = console.post(
        f"/app/apikey/{key_id}/rotate", data={"csrf_token": csrf, "grace_period": "5"}
    )
    assert odd.status_code == 303 and "error=invalid_argument" in odd.headers["location"]

    console.post(f"/app/apikey/{key_id}/disable", data={"csrf_token": csrf})
    assert llavero.keys.get(admin, key_id).state == "DISABLED"
    assert "Habilitar clave" in console.get("/app/apikey").text
    console.post(f"/app/apikey/{key_id}/enable", data={"csrf_token": csrf})
    assert llavero.keys.get(admin, key_id).state == "ACTIVE"
    console.post(f"/app/apikey/{key_id}/rename", data={"csrf_token": csrf, "display_name": "Web"})
    assert llavero.keys.get(admin, key_id).display_name == "Web"


def test_search_filter_and_pages(
    console: TestClient, llavero: Llavero, admin: Actor, clock: FrozenClock
) -> None:
    web = llavero.projects.create(admin, "Web")
    backend = llavero.projects.create(admin, "Backend")
    for number in range(55):
        clock.advance(1)
        llavero.keys.create(admin, web.id, display_name=f"web key {number:02d}")
    server = llavero.keys.create(admin, backend.id, display_name="Servidor principal")
    llavero.keys.update(admin, server.key.id, {"state": "DISABLED", "environment": "production"})

    first = console.get("/app/apikey")
    assert len(body_rows(first)) == 50
    next_url = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    second = console.get(next_url.replace("&amp;", "&"))
    assert len(body_rows(second)) == 6

    def names(query: str) -> list[str]:
        return key_names(console.get("/app/apikey?" + query))

    assert names("q=servidor") == ["Servidor principal"]
    assert names("q=principal+servidor") == ["Servidor principal"]
    assert names("state=DISABLED") == ["Servidor principal"]
    assert names("environment=production") == ["Servidor principal"]
    assert names(f"project={backend.id}") == ["Servidor principal"]
    with_zero = sorted(f"web key {number:02d}" for number in range(55) if "0" in f"{number:02d}")
    assert names("q=web+key+0&sort=oldest") == with_zero
    assert names("q=web+key+0") == with_zero[::-1]
    assert "Ninguna clave de API coincide" in console.get("/app/apikey?q=nothing").text


def test_plan_name_replaces_set_up_billing_for_paid_projects(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id = guide_key(llavero, admin)
    project = llavero.keys.get(admin, key_id).project
    with llavero.db.transaction() as session:
        now = llavero.ctx.clock.now()
        session.add(
            tables.BillingAccount(
                id="acct-1",
                display_name="Acme",
                currency="USD",
                open=True,
                create_time=now,
                update_time=now,
            )
        )
        session.flush()
        session.execute(
            update(tables.Project)
            .where(tables.Project.id == project)
            .values(billing_account_id="acct-1")
        )
    row = body_rows(console.get("/app/apikey?hl=en"))[0]
    assert row[4] == "Tier 1"


def test_users_page_invites_with_a_one_time_link(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    page = console.get("/app/users?hl=en")
    assert page.status_code == 200 and "ana@example.com" in page.text
    answer = console.post(
        "/app/users",
        data={"csrf_token": csrf_of(page), "email": "bea@example.com", "role": "member"},
    )
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    link = answer.text.split('id="invite-link" class="mono" type="text" value="')[1].split('"')[0]
    assert link.startswith("http://testserver/signin/link?token=")
    bea = next(user for user in llavero.users.list(admin) if user.email == "bea@example.com")

    console.post(f"/app/users/{bea.id}/role", data={"csrf_token": csrf_of(page), "role": "admin"})
    assert llavero.users.get(bea.id).role == "admin"
    console.post(f"/app/users/{bea.id}/disable", data={"csrf_token": csrf_of(page)})
    assert llavero.users.get(bea.id).disabled
    console.post(f"/app/users/{bea.id}/enable", data={"csrf_token": csrf_of(page)})
    assert not llavero.users.get(bea.id).disabled
    duplicate = console.post(
        "/app/users", data={"csrf_token": csrf_of(page), "email": "bea@example.com"}
    )
    assert duplicate.status_code == 409 and "already exists" in duplicate.text

    console.cookies.clear()
    assert console.get(link.removeprefix("http://testserver")).status_code == 303
    assert "bea@example.com" in console.get("/app/apikey").text


def test_members_cannot_see_users_or_audit(
    anonymous: TestClient, llavero: Llavero, admin: Actor
) -> None:
    llavero.users.create(admin, "memo@example.com", PASSWORD)
    sign_in(anonymous, "memo@example.com")
    assert anonymous.get("/app/users").status_code == 403
    assert anonymous.get("/app/audit").status_code == 403
    assert 'href="/app/users"' not in anonymous.get("/app/apikey").text


def test_audit_page_lists_what_happened(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    guide_key(llavero, admin)
    page = console.get("/app/audit?hl=en")
    assert page.status_code == 200
    actions = [row[2] for row in body_rows(page)]
    assert "Key created" in actions and "Project created" in actions
    spanish = [row[2] for row in body_rows(console.get("/app/audit?hl=es_419"))]
    assert "Clave creada" in spanish and "Proyecto creado" in spanish
    assert not [action for action in spanish if "." in action], spanish
    assert console.get("/app/audit?page_token=garbage").status_code == 404


def test_account_page_sets_a_password(llavero: Llavero, anonymous: TestClient) -> None:
    bootstrap = llavero.bootstrap("root@example.com")
    assert bootstrap is not None
    anonymous.get("/signin/link", params={"token": bootstrap.signin_token})
    page = anonymous.get("/app/account")
    csrf = csrf_of(page)
    mismatch = anonymous.post(
        "/app/account/password",
        data={"csrf_token": csrf, "password": PASSWORD, "password_again": "other one!!"},
    )
    assert mismatch.status_code == 400 and "no coinciden" in mismatch.text
    saved = anonymous.post(
        "/app/account/password",
        data={"csrf_token": csrf, "password": PASSWORD, "password_again": PASSWORD},
    )
    assert saved.status_code == 303
    anonymous.cookies.clear()
    assert sign_in(anonymous, "root@example.com").status_code == 303


def test_unknown_console_pages_answer_in_html(console: TestClient) -> None:
    missing = console.get("/app/nothing-here?hl=en")
    assert missing.status_code == 404 and "Page not found" in missing.text
    assert console.get("/app/users/abc/role").status_code in (404, 405)
    assert console.get("/v1/nothing").headers["content-type"] == "application/json"


def test_row_actions_return_to_the_view_they_came_from(
    console: TestClient, llavero: Llavero, admin: Actor
) -> None:
    key_id = guide_key(llavero, admin)
    page = console.get("/app/apikey?q=Servidor&sort=name")
    assert 'name="back" value="/app/apikey?q=Servidor&amp;sort=name"' in page.text
    csrf = csrf_of(page)
    answer = console.post(
        f"/app/apikey/{key_id}/disable",
        data={"csrf_token": csrf, "back": "/app/apikey?q=Servidor&sort=name"},
    )
    assert answer.headers["location"] == (
        f"/app/apikey?q=Servidor&sort=name&notice=key_disabled&key={key_id}"
    )
    elsewhere = console.post(
        f"/app/apikey/{key_id}/enable",
        data={"csrf_token": csrf, "back": "https://evil.example/app/apikey?q=x"},
    )
    assert elsewhere.headers["location"] == f"/app/apikey?notice=key_enabled&key={key_id}"


def test_a_bug_behind_a_page_shows_the_error_page(
    llavero: Llavero, ana: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    with TestClient(create_app(llavero), raise_server_exceptions=False) as client:
        sign_in(client, ana.email)
        monkeypatch.setattr(llavero.keys, "list", broken)
        answer = client.get("/app/apikey?hl=en")
    assert answer.status_code == 500
    assert "Something went wrong" in answer.text and "boom" not in answer.text
