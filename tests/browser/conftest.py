"""Browser tests: Debian's Chromium driven by Playwright against a live Llavero on loopback.

The server is the real app (`create_app`) under uvicorn in a thread, so the browser goes through
every middleware, cookie and header a deployment has; the test keeps the service object to check
outcomes (a copied key verifies, a deleted key is DELETED) without going through the page.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from llavero.application import create_app
from llavero.service import Actor, Llavero
from tests.loopback import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery"
SHARED_CONFTEST = Path(__file__).parents[1] / "conftest.py"


def require(config: pytest.Config, what: str, available: bool) -> None:
    """`tests/conftest.py`'s `require` (skip here, fail under CI=true). Taken from the plugin
    manager: every test folder has a module named `conftest`, so importing one by name is a
    lottery."""
    shared = config.pluginmanager.get_plugin(str(SHARED_CONFTEST))
    assert shared is not None, SHARED_CONFTEST
    shared.require(what, available)


class LiveServer:
    """uvicorn in a daemon thread; `stop` asks it to exit and waits for it."""

    def __init__(self, llavero: Llavero, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(llavero),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        started = threading.Event()
        while not self.server.started and self.thread.is_alive():
            started.wait(0.05)
        if not self.server.started:
            raise RuntimeError("the live server did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live_server(llavero: Llavero, admin: Actor) -> Iterator[LiveServer]:
    llavero.users.create(admin, "ana@example.com", PASSWORD, role="admin")
    server = LiveServer(llavero)
    server.start()
    yield server
    server.stop()


# Module scope, not session: while Playwright's sync API is open its event loop runs in this
# thread, and any later test calling asyncio.run() would fail.
@pytest.fixture(scope="module")
def chromium(pytestconfig: pytest.Config) -> Iterator[Any]:
    require(pytestconfig, f"Chromium at {CHROMIUM}", os.path.exists(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies) that may read and write the clipboard."""
    context = chromium.new_context(
        base_url=live_server.url,
        permissions=["clipboard-read", "clipboard-write"],
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(10_000)
    browser_page = context.new_page()
    yield browser_page
    context.close()
