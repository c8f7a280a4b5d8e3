"""Debian's nginx with the shipped deploy/nginx/llavero.conf, in front of a loopback app, asking
a loopback Llavero: what reaches the client for an allowed key, a missing or bad one, a
restricted one and a spent rate limit (nginx itself passes only 2xx/401/403 from auth)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llavero.application import create_app
from llavero.config import Settings
from llavero.service import Actor, Llavero
from tests.conftest import require
from tests.loopback import free_port, serve

pytestmark = pytest.mark.nginx

SHIPPED = Path(__file__).parents[2] / "deploy" / "nginx" / "llavero.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Llavero believes X-Forwarded-For from nginx on loopback, as the config asks."""
    return settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"]})


async def echo(request: Request) -> JSONResponse:
    return JSONResponse(
        {"headers": dict(request.headers), "path": request.url.path, "query": request.url.query}
    )


def configure(tmp: Path, llavero_url: str, app_url: str, port: int) -> Path:
    """The shipped file with only its addresses and log path changed, in a minimal nginx.conf."""
    replacements = {
        "server 127.0.0.1:8080;": f"server {llavero_url.removeprefix('http://')};",
        "server 127.0.0.1:9000;": f"server {app_url.removeprefix('http://')};",
        "listen 8000;": f"listen 127.0.0.1:{port};",
        "/var/log/nginx/llavero-access.log": str(tmp / "llavero-access.log"),
    }
    return write_main(tmp, rewrite(SHIPPED, replacements, tmp / "llavero.conf"))


def rewrite(shipped: Path, replacements: dict[str, str], out: Path) -> Path:
    """A copy of a shipped file with each of `replacements` made exactly once."""
    text = shipped.read_text()
    for old, new in replacements.items():
        assert text.count(old) == 1, f"{shipped.name} no longer has {old!r} exactly once"
        text = text.replace(old, new)
    out.write_text(text)
    return out


def write_main(tmp: Path, included: Path) -> Path:
    """A minimal nginx.conf in `tmp` (pid, logs, temp dirs there) whose http block includes
    `included`: the shipped file under test."""
    temp_paths = (
        "\n".join(
            f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi")
        )
        + f"\n    uwsgi_temp_path {tmp / 'uwsgi'};\n    scgi_temp_path {tmp / 'scgi'};"
    )
    main = tmp / "nginx.conf"
    main.write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} info;\nevents {{ worker_connections 512; }}\n"
        f"http {{\n{temp_paths}\n    access_log {tmp / 'access.log'};\n"
        f"    include {included};\n}}\n"
    )
    return main


def wait_for_port(port: int, process: subprocess.Popen[bytes], error_log: Path) -> None:
    for _ in range(500):
        if process.poll() is not None:
            pytest.fail(f"nginx exited: {error_log.read_text() if error_log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.1):
                return
        except OSError:
            threading.Event().wait(0.01)
    pytest.fail("nginx did not listen")


def wait_for_line(path: Path) -> str:
    for _ in range(500):
        if path.exists() and path.read_text().strip():
            return path.read_text()
        threading.Event().wait(0.01)
    pytest.fail(f"nothing was written to {path}")


@dataclass
class Stack:
    url: str
    llavero: Llavero
    tmp: Path

    def key(self, admin: Actor, **fields: Any) -> tuple[str, str]:
        project = self.llavero.projects.create(admin, "Gemini API")
        created = self.llavero.keys.create(admin, project.id, **fields)
        return created.key.id, created.key_string


@pytest.fixture
def stack(llavero: Llavero, tmp_path: Path) -> Iterator[Stack]:
    require("nginx", shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx"))
    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    with serve(create_app(llavero)) as llavero_url, serve(app) as app_url:
        port = free_port()
        main = configure(tmp_path, llavero_url, app_url, port)
        error_log = tmp_path / "error.log"
        process = subprocess.Popen(
            [NGINX, "-p", str(tmp_path), "-c", str(main), "-e", str(error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, process, error_log)
            yield Stack(f"http://127.0.0.1:{port}", llavero, tmp_path)
        finally:
            process.terminate()
            process.wait(10)


def test_an_allowed_key_reaches_the_app_with_its_identity_and_without_the_key(
    stack: Stack, admin: Actor
) -> None:
    key_id, key = stack.key(admin)
    forged = {"x-goog-api-key": key, "X-Llavero-Key-Id": "forged"}
    response = httpx.post(stack.url + GENERATE, headers=forged)
    assert response.status_code == 200
    seen = response.json()["headers"]
    assert seen["x-llavero-key-id"] == key_id
    assert seen["x-llavero-project"] == "gemini-api"
    assert "x-goog-api-key" not in seen
    assert response.headers["ratelimit-limit"] == "10"


def test_a_missing_or_unknown_key_is_401_with_a_google_body(stack: Stack) -> None:
    missing = httpx.post(stack.url + GENERATE)
    assert missing.status_code == 401
    challenges = missing.headers.get_list("www-authenticate")
    assert len(challenges) == 1, challenges  # nginx copies Llavero's; the config adds none
    assert challenges[0].startswith("Bearer")
    assert missing.json()["error"]["status"] == "UNAUTHENTICATED"
    unknown = httpx.post(stack.url + GENERATE, params={"key": "llv_" + "A" * 38})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "API key not valid. Please pass a valid API key."


def test_a_restricted_key_is_403(stack: Stack, admin: Actor) -> None:
    _, key = stack.key(admin, restrictions={"allowed_ips": ["203.0.113.0/24"]})
    response = httpx.post(stack.url + GENERATE, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    assert response.json()["error"]["details"][0]["reason"] == "API_KEY_IP_ADDRESS_BLOCKED"
    assert "retry-after" not in response.headers


def test_a_spent_rate_limit_reaches_the_client_as_429_with_retry_after(
    stack: Stack, admin: Actor
) -> None:
    _, key = stack.key(admin, limits={"rpm": 1})
    assert httpx.post(stack.url + GENERATE, headers={"x-api-key": key}).status_code == 200
    refused = httpx.post(stack.url + GENERATE, headers={"x-api-key": key})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_a_query_key_reaches_neither_the_app_nor_the_access_log(stack: Stack, admin: Actor) -> None:
    key_id, key = stack.key(admin)
    response = httpx.get(stack.url + "/v1beta/models", params={"alt": "json", "key": key})
    assert response.status_code == 200
    assert response.json()["query"] == "alt=json"
    access_log = stack.tmp / "llavero-access.log"
    line = wait_for_line(access_log)  # nginx logs after the answer has gone
    assert "/v1beta/models" in line
    assert f"key={key_id}" in line
    assert key not in access_log.read_text()
