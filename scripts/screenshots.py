"""Screenshots of every console page in es-419 and English, for docs/console.md.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts Llavero on a throw-away SQLite database with demo data (clock frozen at 1 Aug 2025, as in
the guide), signs in with Debian's Chromium and saves `<page>-<lang>.png` at 1280×800, plus
`<page>-mobile-<lang>.png` of the keys, usage and audit pages at 390×844 (shrunk with pngquant
when it is installed). A page that
answers 404 is skipped with a note.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import uvicorn
from playwright.sync_api import Page, sync_playwright

from llavero.application import create_app
from llavero.config import Settings
from llavero.core.clock import FrozenClock
from llavero.core.verify import VerifyRequest
from llavero.service import Actor, Llavero

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
]
LANGUAGES: Final = ("es_419", "en")
DESKTOP: Final = {"width": 1280, "height": 800}
MOBILE: Final = {"width": 390, "height": 844}
MOBILE_PAGES: Final = ("apikey", "usage", "audit")
EMAIL: Final = "ana@example.com"
PASSWORD: Final = "correct horse battery"


def demo_service(data_dir: Path) -> tuple[Llavero, FrozenClock, dict[str, str]]:
    """Two projects (one on a paid plan), keys in each state, one restricted, one deleted, a
    second user, some traffic."""
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'demo.sqlite3'}",
        secret_key="screenshots-0123456789abcdef",
        change_poll_seconds=0,
    )
    clock = FrozenClock()
    llavero = Llavero(settings, clock=clock)
    llavero.upgrade()
    admin = Actor.system("demo")
    llavero.users.create(admin, EMAIL, PASSWORD, role="admin")
    llavero.users.create(admin, "beto@example.com", None)
    gemini = llavero.projects.create(admin, "Gemini API")
    backend = llavero.projects.create(admin, "Backend")
    first = llavero.keys.create(admin, gemini.id, display_name="Gemini API key")
    clock.advance(3600)
    server = llavero.keys.create(
        admin,
        backend.id,
        display_name="Servidor",
        environment="production",
        restrictions={"allowed_ips": ["203.0.113.0/24"]},
    )
    clock.advance(3600)
    staging = llavero.keys.create(admin, backend.id, display_name="Staging", environment="staging")
    llavero.keys.update(admin, staging.key.id, {"state": "DISABLED"})
    clock.advance(3600)
    old = llavero.keys.create(admin, gemini.id, display_name="Old key")
    llavero.keys.delete(admin, old.key.id)
    demo_traffic(llavero, clock, first.key_string, server.key_string)
    account = llavero.billing.create(admin, "Finanzas", "USD")
    llavero.billing.link(admin, backend.id, account.id)
    return llavero, clock, {"key": first.key.id, "project": gemini.id, "server": server.key.id}


def demo_traffic(llavero: Llavero, clock: FrozenClock, gemini_key: str, server_key: str) -> None:
    """Six hours of verifies, so the usage page has bars: mostly allowed, one burst over the
    free plan's 10 requests per minute, and callers outside the server key's IP range."""
    for step in range(24):
        for _ in range(12 if step == 20 else step % 5 + 1):
            llavero.verifier.verify(VerifyRequest(key=gemini_key, cost=300 + 20 * step))
        if step % 4 == 0:
            llavero.verifier.verify(VerifyRequest(key=server_key, ip="203.0.113.7"))
            llavero.verifier.verify(VerifyRequest(key=server_key, ip="198.51.100.7"))
        clock.advance(900)
    llavero.usage_meter.flush()


class Server:
    def __init__(self, llavero: Llavero) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            create_app(llavero), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        ready = threading.Event()
        while not self.server.started and self.thread.is_alive():
            ready.wait(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def sign_in(page: Page, lang: str) -> None:
    page.goto(f"/signin?hl={lang}")
    page.locator("#signin-email").fill(EMAIL)
    page.locator("#signin-password").fill(PASSWORD)
    page.locator("form[action='/signin'] button[type=submit]").click()
    page.wait_for_url("**/app/apikey")


def open_create_dialog(page: Page) -> None:
    page.locator("[data-dialog-open='create-key-dialog']").click()
    page.locator("#create-key-dialog").wait_for(state="visible")


def create_key(page: Page) -> None:
    open_create_dialog(page)
    page.locator("#create-key-dialog button[type=submit]").click()
    page.locator("#key-created-dialog").wait_for(state="visible")


def confirm_delete(page: Page) -> None:
    page.locator("tbody form[data-confirm] button[type=submit]").first.click()
    page.locator("#delete-key-dialog").wait_for(state="visible")


def open_row_menu(page: Page) -> None:
    page.locator("tbody details.row-menu summary").first.click()


Shot = tuple[str, str, Callable[[Page], None] | None]


def shots(ids: dict[str, str]) -> list[Shot]:
    """(file stem, path, what to do on the page before the picture)."""
    return [
        ("apikey", "/app/apikey", None),
        ("apikey-create", "/app/apikey", open_create_dialog),
        ("apikey-created", "/app/apikey", create_key),
        ("apikey-delete", "/app/apikey", confirm_delete),
        ("apikey-actions", "/app/apikey", open_row_menu),
        ("apikey-deleted", "/app/apikey?show=deleted", None),
        ("usage", f"/app/usage?key={ids['key']}", None),
        ("billing", f"/app/billing?project={ids['project']}", None),
        ("key-detail", f"/app/keys/{ids['server']}", None),
        ("users", "/app/users", None),
        ("audit", "/app/audit", None),
        ("account", "/app/account", None),
    ]


def capture(out: Path) -> list[Path]:
    saved: list[Path] = []
    with tempfile.TemporaryDirectory() as data_dir:
        llavero, clock, ids = demo_service(Path(data_dir))
        with Server(llavero) as base_url, sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            for lang in LANGUAGES:
                saved += capture_language(browser, base_url, lang, ids, out, clock)
            browser.close()
        llavero.close()
    return saved


def capture_language(
    browser: Any, base_url: str, lang: str, ids: dict[str, str], out: Path, clock: FrozenClock
) -> list[Path]:
    saved: list[Path] = []
    context = browser.new_context(base_url=base_url, viewport=DESKTOP, locale=lang[:2])
    page = context.new_page()
    page.goto(f"/signin?hl={lang}")
    saved.append(save(page, out / f"signin-{lang}.png"))
    sign_in(page, lang)
    clock.advance(600)  # so the users page shows the sign-in as "10 minutes ago"
    for stem, path, prepare in shots(ids):
        answer = page.goto(path)
        if answer is None or answer.status == 404:
            print(f"skipped {stem}: {path} answers 404", file=sys.stderr)
            continue
        if prepare is not None:
            prepare(page)
        saved.append(save(page, out / f"{stem}-{lang}.png"))
    page.goto("/app/no-such-page")
    saved.append(save(page, out / f"error-{lang}.png"))
    page.set_viewport_size(MOBILE)
    for stem, path, _ in shots(ids):
        if stem in MOBILE_PAGES:
            page.goto(path)
            saved.append(save(page, out / f"{stem}-mobile-{lang}.png"))
    context.close()
    return saved


def save(page: Page, path: Path) -> Path:
    """The picture, shrunk by pngquant when it is installed (`apt-get install pngquant`): the
    PNGs live in the repository, and a 256-colour palette loses nothing on flat UI."""
    page.screenshot(path=str(path), animations="disabled", caret="hide")
    pngquant = shutil.which("pngquant")
    if pngquant:
        subprocess.run(
            [pngquant, "--force", "--skip-if-larger", "--quality=70-95", "--output", path, path],
            check=False,
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for path in capture(args.out):
        print(path)


if __name__ == "__main__":
    main()
