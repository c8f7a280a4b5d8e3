"""Client address: `LLAVERO_TRUSTED_PROXIES` is the one source of proxy trust (docs/security.md).

A key restricted to 203.0.113.0/24 and 2001:db8::/32 is presented with every way of claiming an
address (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`; IPv6, ports, several hops, repeated
headers, garbage) to `llavero serve`'s forward auth and `llavero gateway`, each its own process
listening on `::` (so IPv4 peers arrive IPv4-mapped), and to the ASGI and WSGI middleware. From
127.0.0.2 (listed) the claim decides; from 127.0.0.1 (not listed, whatever FORWARDED_ALLOW_IPS
says) and from ::1 where it is not listed, no claim ever does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from llavero.config import Settings
from llavero.edges.middleware import LlaveroMiddleware, LlaveroWSGIMiddleware
from llavero.edges.proxy_trust import ProxyTrust
from llavero.service import Actor, Llavero
from tests.loopback import serve
from tests.security.servers import (
    TRUSTED_PEER,
    UNTRUSTED_PEER,
    UPSTREAM_KEY,
    Instance,
    Server,
    Upstream,
    llavero_process,
    recording_upstream,
    send,
)

LISTED = ["127.0.0.2", "10.0.0.0/8", "2001:db8:ffff::/48"]
ALLOWED = ["203.0.113.0/24", "2001:db8::/32"]
Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Claim:
    """Headers claiming a client address, and whether a listed peer makes the key pass."""

    name: str
    headers: Headers
    believed: bool


def xff(value: str) -> Headers:
    return [("X-Forwarded-For", value)]


CLAIMS = [
    Claim("xff", xff("203.0.113.5"), True),
    Claim("xff-outside", xff("198.51.100.9"), False),
    Claim("x-real-ip", [("X-Real-IP", "203.0.113.5")], True),
    Claim("forwarded", [("Forwarded", "for=203.0.113.5;proto=https")], True),
    Claim("forwarded-quoted-v6", [("Forwarded", 'for="[2001:db8::5]:4711"')], True),
    Claim("forwarded-case", [("Forwarded", "By=10.0.0.1;FOR=203.0.113.5")], True),
    Claim("forwarded-hops", [("Forwarded", "for=198.51.100.9, for=203.0.113.5")], True),
    Claim("forwarded-spoof-left", [("Forwarded", "for=203.0.113.5, for=198.51.100.9")], False),
    Claim("forwarded-unknown", [("Forwarded", "for=unknown")], False),
    Claim("forwarded-obfuscated", [("Forwarded", "for=_hidden, for=203.0.113.5")], True),
    Claim("forwarded-proto-only", [("Forwarded", "proto=https"), *xff("203.0.113.5")], True),
    Claim("xff-v6", xff("2001:db8::5"), True),
    Claim("xff-v6-bracket-port", xff("[2001:db8::5]:443"), True),
    Claim("xff-v4-port", xff("203.0.113.5:8080"), True),
    Claim("xff-v4-mapped", xff("::ffff:203.0.113.5"), True),
    Claim("xff-spoof-left", xff("203.0.113.5, 198.51.100.9"), False),
    Claim("xff-spoof-left-ignored", xff("198.51.100.9, 203.0.113.5"), True),
    Claim("xff-listed-hops-skipped", xff("203.0.113.5, 10.1.2.3, 2001:db8:ffff::1"), True),
    Claim("xff-all-listed-leftmost", xff("10.0.0.1, 10.0.0.2"), False),
    Claim("xff-repeated-headers", [*xff("203.0.113.5"), *xff("198.51.100.9")], False),
    Claim("xff-garbage", xff("not-an-address"), False),
    Claim("xff-garbage-right", xff("203.0.113.5, garbage"), False),
    Claim("xff-garbage-left", xff("garbage, 203.0.113.5"), True),
    Claim("xff-leading-zeros", xff("203.000.113.005"), False),
    Claim("xff-cidr", xff("203.0.113.0/24"), False),
    Claim("xff-space-separated", xff("198.51.100.9 203.0.113.5"), False),
    Claim("xff-trailing-comma", xff("203.0.113.5,"), True),
    Claim("xff-empty", xff(""), False),
    Claim("headers-agree", [*xff("203.0.113.5"), ("X-Real-IP", "203.0.113.5")], True),
    Claim("headers-disagree", [*xff("198.51.100.9"), ("Forwarded", "for=203.0.113.5")], False),
    Claim("real-ip-smuggled", [*xff("198.51.100.9"), ("X-Real-IP", "203.0.113.5")], False),
]
IDS = [claim.name for claim in CLAIMS]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Instance:
    return Instance(tmp_path_factory.mktemp("client-address"))


@pytest.fixture(scope="module")
def key(instance: Instance) -> str:
    return instance.new_key(restrictions={"allowed_ips": ALLOWED})


def proxies_env(instance: Instance, listed: list[str]) -> dict[str, str]:
    # FORWARDED_ALLOW_IPS is what `llavero serve` used to follow: now it changes nothing.
    return {
        **instance.env,
        "LLAVERO_TRUSTED_PROXIES": json.dumps(listed),
        "FORWARDED_ALLOW_IPS": "*",
    }


@pytest.fixture(scope="module")
def served(instance: Instance, key: str) -> Iterator[Server]:
    log = instance.root / "serve.log"
    with llavero_process(["serve"], proxies_env(instance, LISTED), log) as server:
        yield server


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with recording_upstream() as recorder:
        yield recorder


def gateway_process(instance: Instance, upstream: Upstream, host: str) -> Iterator[Server]:
    """uvicorn listens on one family: one gateway on 127.0.0.1, one on ::1 (listed there)."""
    env = {**proxies_env(instance, [*LISTED, "::1"]), "GEMINI_API_KEY": UPSTREAM_KEY}
    command = ["gateway", "--upstream", upstream.url]
    with llavero_process(command, env, instance.root / f"gateway-{host}.log", host) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(instance: Instance, key: str, upstream: Upstream) -> Iterator[Server]:
    yield from gateway_process(instance, upstream, "127.0.0.1")


@pytest.fixture(scope="module")
def gateway_v6(instance: Instance, key: str, upstream: Upstream) -> Iterator[Server]:
    yield from gateway_process(instance, upstream, "::1")


def forward_auth(server: Server, key: str, claim: Headers, source: str, host: str) -> int:
    headers = [("x-goog-api-key", key), *claim]
    return send(server.port, "GET /v1/forward-auth HTTP/1.1", headers, source, host).status


def through_gateway(server: Server, key: str, claim: Headers, source: str, host: str) -> int:
    headers = [("x-goog-api-key", key), *claim]
    line = "GET /v1beta/models/gemini-2.5-flash:generateContent HTTP/1.1"
    return send(server.port, line, headers, source, host).status


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_serve_forward_auth_believes_only_a_listed_peer(
    served: Server, key: str, claim: Claim
) -> None:
    from_listed = forward_auth(served, key, claim.headers, TRUSTED_PEER, "127.0.0.1")
    assert from_listed == (200 if claim.believed else 403)
    assert forward_auth(served, key, claim.headers, UNTRUSTED_PEER, "127.0.0.1") == 403
    assert forward_auth(served, key, claim.headers, "::1", "::1") == 403


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_the_gateway_believes_only_a_listed_peer(
    gateway: Server, gateway_v6: Server, upstream: Upstream, key: str, claim: Claim
) -> None:
    expected = 200 if claim.believed else 403
    assert through_gateway(gateway, key, claim.headers, TRUSTED_PEER, "127.0.0.1") == expected
    assert through_gateway(gateway_v6, key, claim.headers, "::1", "::1") == expected
    assert through_gateway(gateway, key, claim.headers, UNTRUSTED_PEER, "127.0.0.1") == 403
    # The client's claims never travel on to the upstream.
    for recorded in upstream.received:
        assert "203.0.113.5" not in recorded.headers


def test_serve_records_the_vouched_client_in_the_audit_log(
    served: Server, instance: Instance
) -> None:
    """The client address is the app's (ClientAddress), not only forward auth's."""
    llavero = instance.service()
    token = llavero.tokens.create(Actor.system("edge-test"), ["admin"]).token
    llavero.close()
    base = f"http://127.0.0.1:{served.port}"
    for source, expected in ((TRUSTED_PEER, "203.0.113.77"), (UNTRUSTED_PEER, "::ffff:127.0.0.1")):
        transport = httpx.HTTPTransport(local_address=source)
        headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.77"}
        with httpx.Client(base_url=base, transport=transport, headers=headers) as client:
            created = client.post("/v1/projects", json={"display_name": "Audited"})
            assert created.status_code == 200
            target = f"project/{created.json()['id']}"
            events = client.get("/v1/audit", params={"target": target}).json()
        assert events["audit_events"][0]["source_ip"] == expected


# --- the middleware: ASGI over a real loopback socket, WSGI by its environ -------------------


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@pytest.fixture(scope="module")
def middleware_service(instance: Instance, key: str) -> Iterator[Llavero]:
    llavero = Llavero(instance.settings(trusted_proxies=LISTED))
    yield llavero
    llavero.close()


@pytest.fixture(scope="module")
def asgi_app(middleware_service: Llavero) -> Iterator[str]:
    app = Starlette(routes=[Route("/v1beta/{rest:path}", hello, methods=["GET"])])
    wrapped = LlaveroMiddleware(app, middleware_service)
    with serve(wrapped) as url:
        yield url


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_the_asgi_middleware_believes_only_a_listed_peer(
    asgi_app: str, key: str, claim: Claim
) -> None:
    port = int(asgi_app.rsplit(":", 1)[1])
    line = "GET /v1beta/models/m:generateContent HTTP/1.1"
    headers = [("x-goog-api-key", key), *claim.headers]
    from_listed = send(port, line, headers, TRUSTED_PEER).status
    assert from_listed == (200 if claim.believed else 403)
    assert send(port, line, headers, UNTRUSTED_PEER).status == 403


def wsgi_status(
    middleware_service: Llavero, key: str, claim: Headers, peer: str, **options: Any
) -> str:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1beta/models/m:generateContent",
        "QUERY_STRING": "",
        "REMOTE_ADDR": peer,
        "HTTP_X_GOOG_API_KEY": key,
    }
    for name, value in claim:  # a WSGI server joins repeated headers, as RFC 9110 does
        variable = "HTTP_" + name.upper().replace("-", "_")
        environ[variable] = f"{environ[variable]}, {value}" if variable in environ else value
    statuses: list[str] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    def start_response(status: str, headers: Any, *exc: Any) -> None:
        statuses.append(status)

    LlaveroWSGIMiddleware(app, middleware_service, **options)(environ, start_response)
    return statuses[0].split()[0]


@pytest.mark.parametrize("claim", CLAIMS, ids=IDS)
def test_the_wsgi_middleware_believes_only_a_listed_peer(
    middleware_service: Llavero, key: str, claim: Claim
) -> None:
    expected = "200" if claim.believed else "403"
    assert wsgi_status(middleware_service, key, claim.headers, TRUSTED_PEER) == expected
    assert wsgi_status(middleware_service, key, claim.headers, UNTRUSTED_PEER) == "403"
    assert wsgi_status(middleware_service, key, claim.headers, "::1") == "403"


def test_the_default_trusts_nobody() -> None:
    """`LLAVERO_TRUSTED_PROXIES` unset: not even loopback may claim an address."""
    assert Settings().trusted_proxies == []
    trust = ProxyTrust(Settings().trusted_proxies)
    for peer in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert trust.client_ip(peer, {"x-forwarded-for": "203.0.113.5"}) == peer


def test_a_setting_that_is_no_address_stops_the_program(instance: Instance) -> None:
    env = {**instance.env, "LLAVERO_TRUSTED_PROXIES": '["127.0.0.1", "localhost"]'}
    command = [sys.executable, "-m", "llavero", "serve", "--port", "1"]
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    assert result.returncode == 1
    assert "LLAVERO_TRUSTED_PROXIES" in result.stderr
    assert "'localhost' is not an IP address or CIDR" in result.stderr


def test_scheme_comes_only_from_a_listed_peer() -> None:
    trust = ProxyTrust(LISTED)
    assert trust.scheme("127.0.0.2", {"x-forwarded-proto": "https"}) == "https"
    assert trust.scheme("127.0.0.2", {"forwarded": "for=203.0.113.5;proto=https"}) == "https"
    assert trust.scheme("127.0.0.1", {"x-forwarded-proto": "https"}) is None
    assert trust.scheme("127.0.0.2", {"x-forwarded-proto": "gopher"}) is None
