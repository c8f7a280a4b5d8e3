"""Sign-in with an OpenID provider, in a real browser against a real provider on loopback.

The provider is panva's `oidc-provider` (OpenID Certified) on Node.js, installed by `.ci/run`
with `npm ci` in tests/browser/oidc_provider; its development login form takes any login, which
it returns as the account's email. Every refusal is checked by what the user sees and by what
the database then holds: no account, no session.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pytest
from playwright.sync_api import expect

from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.service import Actor, Llavero
from tests.browser.conftest import PASSWORD, LiveServer, free_port, require
from tests.conftest import make_service

pytestmark = pytest.mark.browser

PROVIDER_DIR = Path(__file__).parent / "oidc_provider"
CLIENT_ID, CLIENT_SECRET = "llavero", "llavero-test-secret-0123456789"
OTHER_ID, OTHER_SECRET = "other-app", "other-app-secret-0123456789"


class Provider:
    """`node provider.mjs` on a free port, with Llavero (and another app) as its clients."""

    def __init__(self, redirect_uri: str, token_clock_offset: int) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        clients = [
            {"client_id": cid, "client_secret": secret, "redirect_uris": [redirect_uri]}
            for cid, secret in ((CLIENT_ID, CLIENT_SECRET), (OTHER_ID, OTHER_SECRET))
        ]
        config = json.dumps({"clients": clients, "token_clock_offset": token_clock_offset})
        self.process = subprocess.Popen(
            ["node", "provider.mjs", str(self.port), config],
            cwd=PROVIDER_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the OpenID provider did not start: {line!r}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        assert self.process.stdout is not None
        self.process.stdout.close()


@pytest.fixture
def start(
    pytestconfig: pytest.Config, settings: Settings, admin: Actor
) -> Iterator[Callable[..., tuple[Llavero, LiveServer]]]:
    """Starts a provider and a Llavero that signs in through it, with the given settings."""
    available = shutil.which("node") is not None and (PROVIDER_DIR / "node_modules").is_dir()
    require(pytestconfig, f"Node.js and `npm ci` in {PROVIDER_DIR}", available)
    started: list[Any] = []

    def start(token_clock_offset: int = 0, **overrides: Any) -> tuple[Llavero, LiveServer]:
        port = free_port()
        provider = Provider(f"http://127.0.0.1:{port}/signin/oidc/callback", token_clock_offset)
        started.append(provider)
        oidc = {
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_provider_name": "Google",
            "oidc_allowed_domains": ["example.com"],
        }
        services = make_service(settings.model_copy(update=oidc | overrides), FrozenClock())
        llavero = next(services)
        started.append(services)
        llavero.users.create(admin, "ana@example.com", PASSWORD, role="member")
        server = LiveServer(llavero, port=port)
        server.start()
        started.append(server)
        return llavero, server

    yield start
    for thing in reversed(started):
        if isinstance(thing, Iterator):
            next(thing, None)
        else:
            thing.stop()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def provider_login(page: Any, email: str) -> None:
    """The provider's development login form, then its consent page."""
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()
    page.get_by_role("button", name="Continue").click()


BUTTON = {"en": "Sign in with Google", "es_419": "Iniciar sesión con Google"}
FAILED = "Signing in with your provider did not work. Try again."


def through_provider(page: Any, server: LiveServer, email: str, hl: str = "en") -> None:
    """From the sign-in page, through the provider's button, as `email`."""
    page.goto(f"{server.url}/signin?hl={hl}")
    page.get_by_role("link", name=BUTTON[hl]).click()
    provider_login(page, email)


def refused(page: Any, llavero: Llavero) -> None:
    """The sign-in failed as the user sees it, and left no account and no session behind."""
    expect(page.get_by_role("alert")).to_have_text(FAILED)
    assert "maria@example.com" not in emails(llavero)
    assert session_count(llavero) == 0


def rewrite_redirect(page: Any, pattern: str, leads_to: str, rewrite: Callable[[str], str]) -> None:
    """Requests matching `pattern` are sent by the test instead, following redirects by hand
    until one leads to a URL containing `leads_to`; the browser is then sent to `rewrite` of it.
    (A route sees only the first request of a navigation, not the redirects that follow it.)"""

    def handle(route: Any) -> None:
        if route.request.method == "POST" and "prompt=consent" not in (
            route.request.post_data or ""
        ):
            route.continue_()
            return
        answer = route.fetch(max_redirects=0)
        location = urljoin(route.request.url, answer.headers["location"])
        while leads_to not in location:
            answer = page.request.get(location, max_redirects=0)
            location = urljoin(location, answer.headers["location"])
        route.fulfill(status=303, headers={"location": rewrite(location)}, body="")

    page.route(pattern, handle)


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def emails(llavero: Llavero) -> set[str]:
    return {user.email for user in llavero.users.list(Actor.system())}


def session_count(llavero: Llavero) -> int:
    from sqlalchemy import func, select

    from llavero.store import tables

    with llavero.db.reading() as session:
        return session.scalar(select(func.count()).select_from(tables.ConsoleSession)) or 0


@pytest.mark.parametrize(
    ("hl", "button", "heading"),
    [
        ("es_419", "Iniciar sesión con Google", "Claves de API"),
        ("en", "Sign in with Google", "API keys"),
    ],
)
def test_first_sign_in_of_an_allowed_address_creates_a_member(
    start: Callable[..., tuple[Llavero, LiveServer]],
    browser_page: Any,
    hl: str,
    button: str,
    heading: str,
) -> None:
    llavero, server = start()
    browser_page.goto(f"{server.url}/signin?hl={hl}")
    browser_page.get_by_role("link", name=button).click()
    provider_login(browser_page, "maria@example.com")
    expect(browser_page.get_by_role("heading", name=heading)).to_be_visible()
    user = next(u for u in llavero.users.list(Actor.system()) if u.email == "maria@example.com")
    assert user.role == "member"
    actions = [event.action for event in llavero.audit.list(Actor.system()).items]
    assert "user.create" in actions and "user.signin" in actions


def test_an_address_outside_the_allowed_domains_is_refused_with_a_clear_page(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    llavero, server = start()
    before = emails(llavero)
    browser_page.goto(f"{server.url}/signin?hl=es_419")
    browser_page.get_by_role("link", name="Iniciar sesión con Google").click()
    provider_login(browser_page, "eve@elsewhere.test")
    expect(browser_page.get_by_role("alert")).to_have_text(
        "La dirección eve@elsewhere.test no puede iniciar sesión aquí. Pide a un administrador "
        "que la invite."
    )
    assert emails(llavero) == before
    assert session_count(llavero) == 0


def test_a_tampered_state_is_refused(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    llavero, server = start()

    rewrite_redirect(
        browser_page,
        "**/interaction/**",
        "/signin/oidc/callback",
        lambda url: with_query(url, state="forged-state"),
    )
    through_provider(browser_page, server, "maria@example.com")
    refused(browser_page, llavero)


def test_an_expired_id_token_is_refused(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    """The provider's token endpoint runs two hours behind: its ID token (valid for one hour)
    has expired when Llavero reads it."""
    llavero, server = start(token_clock_offset=-7200)
    through_provider(browser_page, server, "maria@example.com")
    refused(browser_page, llavero)


def test_a_code_for_another_audience_is_refused(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    """Llavero's own request, rewritten for another client of the same provider: the code and
    its ID token are that client's, and Llavero must not accept them."""
    llavero, server = start()

    rewrite_redirect(
        browser_page, "**/signin/oidc", "/auth?", lambda url: with_query(url, client_id=OTHER_ID)
    )
    through_provider(browser_page, server, "maria@example.com")
    refused(browser_page, llavero)


def test_an_owner_invites_a_viewer_who_reads_keys_but_cannot_change_them(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    llavero, server = start()
    page = browser_page
    # Ana, a member, signs in with her password, makes a project with a key, invites Bob.
    page.goto(f"{server.url}/signin?hl=en")
    page.get_by_label("Email").fill("ana@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    ana = next(u for u in llavero.users.list(Actor.system()) if u.email == "ana@example.com")
    from llavero.service.users import actor_for

    project = llavero.projects.create(actor_for(ana), "Shared API")
    key = llavero.keys.create(actor_for(ana), project.id, display_name="team key").key
    page.goto(f"{server.url}/app/members?project={project.id}&hl=en")
    page.get_by_label("Email").fill("bob@partner.test")
    page.get_by_label("Role", exact=True).select_option("viewer")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_role("status")).to_have_text(
        "Invitation saved. It becomes a membership when the person first signs in."
    )
    page.context.clear_cookies()

    # Bob signs in with the provider (his domain is not allowed: the invitation lets him in).
    page.goto(f"{server.url}/signin?hl=en")
    page.get_by_role("link", name="Sign in with Google").click()
    provider_login(page, "bob@partner.test")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    row = page.locator("tr", has_text="team key")
    expect(row).to_be_visible()
    expect(page.get_by_role("button", name="Create API key")).to_have_count(0)
    expect(row.get_by_role("button", name="Delete")).to_have_count(0)
    expect(row.get_by_text("More actions")).to_have_count(0)
    page.goto(f"{server.url}/app/keys/{key.id}?hl=en")
    expect(page.get_by_label("Key name")).to_be_disabled()
    expect(page.get_by_role("button", name="Save settings")).to_have_count(0)
    members = llavero.members.list(Actor.system(), project.id)
    assert [(m.email, m.role, m.invited) for m in members] == [
        ("ana@example.com", "owner", False),
        ("bob@partner.test", "viewer", False),
    ]

    # The API, with Bob's own session and CSRF token, refuses his writes.
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.delete(f"{server.url}/v1/keys/{key.id}", headers={"X-CSRF-Token": csrf})
    assert answer.status == 403
    assert page.request.get(f"{server.url}/v1/keys/{key.id}").status == 200
    assert llavero.keys.get(Actor.system(), key.id).state == "ACTIVE"


def test_password_sign_in_can_be_turned_off(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    llavero, server = start(password_signin=False)
    browser_page.goto(f"{server.url}/signin?hl=es_419")
    expect(browser_page.get_by_role("link", name="Iniciar sesión con Google")).to_be_visible()
    expect(browser_page.get_by_label("Contraseña")).to_have_count(0)
    answer = browser_page.request.post(
        f"{server.url}/signin", form={"email": "ana@example.com", "password": PASSWORD}
    )
    assert answer.status == 403
    assert session_count(llavero) == 0


def test_the_browser_returns_to_the_page_it_asked_for_and_never_leaves_the_site(
    start: Callable[..., tuple[Llavero, LiveServer]], browser_page: Any
) -> None:
    llavero, server = start()
    browser_page.goto(f"{server.url}/app/billing?hl=en")  # signed out: sent to sign in
    browser_page.get_by_role("link", name="Sign in with Google").click()
    provider_login(browser_page, "maria@example.com")
    expect(browser_page).to_have_url(f"{server.url}/app/billing?hl=en")
    browser_page.context.clear_cookies()
    browser_page.goto(f"{server.url}/signin/oidc?next=//evil.example/steal")
    provider_login(browser_page, "maria@example.com")
    expect(browser_page).to_have_url(f"{server.url}/app/apikey")
