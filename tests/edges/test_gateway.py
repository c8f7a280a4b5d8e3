from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llavero.config import Settings
from llavero.core.verify import VerifyRequest, VerifyResult
from llavero.edges.credentials import ProxyTrust
from llavero.edges.gateway import (
    Gateway,
    Upstream,
    from_settings,
    service_may_block,
    unit_counter,
)
from llavero.edges.logs import install_access_log_filter
from llavero.edges.units import UnitsScanner
from llavero.errors import FailedPrecondition, InvalidArgument
from llavero.service import Actor, Llavero
from llavero.store import tables
from tests.loopback import serve

UPSTREAM_KEY = "AIzaSyUPSTREAM-secret-0123456789abcdefghij"
GEMINI = "generativelanguage.googleapis.com"
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
COUNT = "/v1beta/models/gemini-2.5-flash:countTokens"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
FREE_UPM = 250_000


@dataclass
class FakeUpstream:
    """Gemini on loopback: echoes what it saw and states its tokens like Gemini and OpenAI."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    first_sent: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    second_sent: threading.Event = field(default_factory=threading.Event)

    async def record(self, request: Request) -> dict[str, Any]:
        try:
            body = await request.body()
        except ClientDisconnect:  # the gateway dropped a request its client abandoned
            body = b""
        entry = {
            "headers": dict(request.headers),
            "pairs": [(name.decode(), value.decode()) for name, value in request.headers.raw],
            "path": request.url.path,
            "query": request.url.query,
            "body": body.decode(),
        }
        self.seen.append(entry)
        return entry

    async def generate(self, request: Request) -> Response:
        entry = await self.record(request)
        return JSONResponse({"seen": entry, "usageMetadata": {"totalTokenCount": 42}})

    async def chat(self, request: Request) -> Response:
        await self.record(request)
        answer = JSONResponse({"choices": [], "usage": {"total_tokens": 33}})
        answer.raw_headers += [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
        answer.raw_headers.append((b"alt-svc", b'h3=":443"'))
        return answer

    async def stream(self, request: Request) -> Response:
        await self.record(request)

        async def events() -> AsyncIterator[bytes]:
            yield b'data: {"candidates": [], "usageMetadata": {"totalTokenCount": 10}}\r\n\r\n'
            self.first_sent.set()
            await anyio.to_thread.run_sync(self.release.wait, 10)
            self.second_sent.set()
            yield b'data: {"candidates": [], "usageMetadata": {"totalTokenCount": 57}}\r\n\r\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    async def held(self, request: Request) -> Response:
        """Answers nothing until released: an upstream slower than the read timeout."""
        await self.record(request)
        await anyio.to_thread.run_sync(self.release.wait, 10)
        return JSONResponse({})

    async def preflight(self, request: Request) -> Response:
        await self.record(request)
        allow = {"access-control-allow-origin": "*", "access-control-allow-headers": "*"}
        return Response(status_code=204, headers=allow)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(GENERATE, self.generate, methods=["POST"]),
                Route(GENERATE, self.preflight, methods=["OPTIONS"]),
                Route(COUNT, self.generate, methods=["POST"]),
                Route(STREAM, self.stream, methods=["POST"]),
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/held", self.held, methods=["GET"]),
            ]
        )


@pytest.fixture
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    with serve(fake.app()) as url:
        try:
            yield fake, url
        finally:
            fake.release.set()  # a stream still held back must end for the server to stop


class Reports:
    """Units counted as `llavero gateway` counts them, with a way to wait for a count: the
    gateway counts after the answer's last byte, so a client can be faster than the count."""

    def __init__(self, llavero: Llavero) -> None:
        self.count = unit_counter(llavero)
        self.done = threading.Semaphore(0)

    def __call__(self, key: str, units: int) -> None:
        self.count(key, units)
        self.done.release()

    def wait(self) -> None:
        assert self.done.acquire(timeout=10), "the gateway counted no units"


@pytest.fixture
def reports(llavero: Llavero) -> Reports:
    return Reports(llavero)


def gateway_for(
    llavero: Llavero, upstream_url: str, reports: Reports | None = None, **options: Any
) -> Gateway:
    return Gateway(
        llavero.verifier,
        Upstream(upstream_url, key=UPSTREAM_KEY, service=options.pop("service", None)),
        trust=ProxyTrust(llavero.settings.trusted_proxies),
        count_units=reports or Reports(llavero),
        may_block=service_may_block(llavero),
        **options,
    )


@pytest.fixture
def gateway(
    llavero: Llavero, upstream: tuple[FakeUpstream, str], reports: Reports
) -> Iterator[str]:
    with serve(gateway_for(llavero, upstream[1], reports).app(), access_log=True) as url:
        yield url


def new_key(llavero: Llavero, admin: Actor, **fields: Any) -> tuple[str, str]:
    project = llavero.projects.create(admin, "Gemini API")
    created = llavero.keys.create(admin, project.id, **fields)
    return created.key.id, created.key_string


def units_used(llavero: Llavero, key: str) -> int:
    """Units counted against the key's project, read from the minute limit verify reports."""
    result = llavero.verifier.verify(VerifyRequest(key))
    return FREE_UPM - result.limits["upm"]["remaining"]


@pytest.mark.parametrize("how", ["x-goog-api-key", "query", "bearer", "x-api-key"])
def test_the_upstream_sees_its_own_key_never_the_clients(
    gateway: str, upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor, how: str
) -> None:
    _, key = new_key(llavero, admin)
    headers = {
        "x-goog-api-key": {"x-goog-api-key": key},
        "query": {},
        "bearer": {"Authorization": f"Bearer {key}"},
        "x-api-key": {"X-API-Key": key},
    }[how]
    params = {"key": key, "alt": "json"} if how == "query" else {"alt": "json"}
    response = httpx.post(
        gateway + GENERATE, params=params, headers=headers, json={"contents": [{"parts": []}]}
    )
    assert response.status_code == 200
    seen = upstream[0].seen[-1]
    assert seen["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert key not in json.dumps(seen)
    assert "authorization" not in seen["headers"]
    assert "x-api-key" not in seen["headers"]
    assert seen["query"] == "alt=json"
    assert json.loads(seen["body"]) == {"contents": [{"parts": []}]}


def test_a_client_header_named_like_the_upstream_credential_stays_behind(
    upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin)
    custom = Gateway(
        llavero.verifier, Upstream(upstream[1], key=UPSTREAM_KEY, key_header="Api-Key")
    )
    with serve(custom.app()) as url:
        headers = {"x-goog-api-key": key, "api-key": "chosen-by-the-client"}
        assert httpx.post(url + GENERATE, headers=headers, json={}).status_code == 200
    pairs = upstream[0].seen[-1]["pairs"]
    assert [value for name, value in pairs if name == "api-key"] == [UPSTREAM_KEY]


def test_hop_by_hop_and_cookie_headers_stay_behind(
    gateway: str, upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin)
    headers = {
        "x-goog-api-key": key,
        "Cookie": "session=1",
        "Connection": "keep-alive, X-Hop",
        "X-Hop": "for the gateway only",
        "X-Forwarded-For": "198.51.100.1",
        "X-Kept": "yes",
    }
    assert httpx.post(gateway + GENERATE, headers=headers, json={}).status_code == 200
    seen = upstream[0].seen[-1]["headers"]
    for name in ("cookie", "x-hop", "x-forwarded-for"):
        assert name not in seen
    assert seen["x-kept"] == "yes"
    assert seen["accept-encoding"] == "identity"


def test_repeated_answer_headers_all_reach_the_client(
    gateway: str, upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin)
    response = httpx.post(gateway + "/v1/chat/completions", headers={"x-api-key": key}, json={})
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["ratelimit-limit"] == "10"
    assert "alt-svc" not in response.headers


def test_an_upstream_cookie_never_rides_along_on_a_later_request(
    upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    _, key = new_key(llavero, admin)
    headers = {"x-api-key": key}
    by_name = upstream[1].replace("127.0.0.1", "localhost")  # cookie jars skip IP addresses
    with serve(gateway_for(llavero, by_name).app()) as url:
        for _ in range(2):
            assert httpx.post(url + "/v1/chat/completions", headers=headers, json={}).is_success
    assert "cookie" not in upstream[0].seen[-1]["headers"]


def test_server_sent_events_stream_chunk_by_chunk(
    gateway: str, upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    fake = upstream[0]
    _, key = new_key(llavero, admin)
    url = gateway + STREAM + "?alt=sse"
    with httpx.stream("POST", url, headers={"x-goog-api-key": key}, json={}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.iter_lines()
        first = next(line for line in events if line)
        # The first event arrived while the upstream was still holding back the second.
        assert '"totalTokenCount": 10' in first
        assert not fake.second_sent.is_set()
        fake.release.set()
        rest = [line for line in events if line]
    assert rest == ['data: {"candidates": [], "usageMetadata": {"totalTokenCount": 57}}']


def test_usage_counts_the_upstreams_tokens(
    gateway: str,
    upstream: tuple[FakeUpstream, str],
    reports: Reports,
    llavero: Llavero,
    admin: Actor,
) -> None:
    upstream[0].release.set()
    _, key = new_key(llavero, admin)
    headers = {"x-goog-api-key": key}
    assert httpx.post(gateway + GENERATE, headers=headers, json={}).status_code == 200
    reports.wait()
    assert units_used(llavero, key) == 42
    streamed = httpx.post(gateway + STREAM + "?alt=sse", headers=headers, json={})
    assert streamed.status_code == 200
    reports.wait()
    assert units_used(llavero, key) == 42 + 57  # the last running total, not the sum
    chat = httpx.post(gateway + "/v1/chat/completions", headers=headers, json={})
    assert chat.status_code == 200
    reports.wait()
    assert units_used(llavero, key) == 42 + 57 + 33


def test_metering_writes_no_report_rows_yet_counts_in_usage_and_against_the_keys_upm(
    gateway: str, reports: Reports, llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin, limits={"upm": 50})
    headers = {"x-goog-api-key": key}
    for _ in range(2):  # 42 units leave 8 of the key's 50 a minute; 84 spend them all
        assert httpx.post(gateway + GENERATE, headers=headers, json={}).status_code == 200
        reports.wait()
    refused = httpx.post(gateway + GENERATE, headers=headers, json={})
    assert refused.status_code == 429
    assert refused.json()["error"]["details"][0]["metadata"]["code"] == "RATE_LIMITED"
    with llavero.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(tables.UsageReport)) == 0
    llavero.usage_meter.flush()
    series = llavero.usage.key_series(admin, key_id, granularity="minute")
    assert series.totals.units == 84
    assert series.totals.requests == {"VALID": 2, "RATE_LIMITED": 1}


def test_a_stream_the_client_abandons_is_metered_for_what_went_through(
    gateway: str,
    upstream: tuple[FakeUpstream, str],
    reports: Reports,
    llavero: Llavero,
    admin: Actor,
) -> None:
    fake = upstream[0]
    _, key = new_key(llavero, admin)
    url = gateway + STREAM + "?alt=sse"
    with httpx.stream("POST", url, headers={"x-goog-api-key": key}, json={}) as response:
        first = next(line for line in response.iter_lines() if line)
    assert '"totalTokenCount": 10' in first
    reports.wait()  # the gateway noticed the client leave while the upstream still held back
    assert not fake.second_sent.is_set()
    assert units_used(llavero, key) == 10


def test_cors_preflights_reach_the_upstream_without_any_key(
    gateway: str, upstream: tuple[FakeUpstream, str]
) -> None:
    preflight = {
        "Origin": "https://app.example.com",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-goog-api-key",
    }
    response = httpx.options(gateway + GENERATE, headers=preflight)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "x-goog-api-key" not in upstream[0].seen[-1]["headers"]
    assert "ratelimit-limit" not in response.headers
    assert "content-length" not in response.headers  # none on a 204 (RFC 9110 §8.6)
    bare = httpx.options(gateway + GENERATE)  # not a preflight: verified like any request
    assert bare.status_code == 401


def test_a_revoked_key_is_refused_on_the_next_request(
    gateway: str, upstream: tuple[FakeUpstream, str], llavero: Llavero, admin: Actor
) -> None:
    key_id, key = new_key(llavero, admin)
    headers = {"x-goog-api-key": key}
    assert httpx.post(gateway + GENERATE, headers=headers, json={}).status_code == 200
    llavero.keys.delete(admin, key_id)
    refused = httpx.post(gateway + GENERATE, headers=headers, json={})
    assert refused.status_code == 401
    assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert len(upstream[0].seen) == 1


def test_a_request_without_a_key_never_reaches_the_upstream(
    gateway: str, upstream: tuple[FakeUpstream, str]
) -> None:
    response = httpx.post(gateway + GENERATE, json={})
    assert response.status_code == 401
    assert response.json()["error"]["details"][0]["reason"] == "API_KEY_MISSING"
    assert upstream[0].seen == []


def test_api_targets_are_checked_against_the_service_and_the_verb(
    llavero: Llavero, admin: Actor, upstream: tuple[FakeUpstream, str]
) -> None:
    targets = [{"service": GEMINI, "methods": ["*.generateContent"]}]
    _, key = new_key(llavero, admin, restrictions={"api_targets": targets})
    headers = {"x-goog-api-key": key}
    with serve(gateway_for(llavero, upstream[1], service=GEMINI).app()) as url:
        assert httpx.post(url + GENERATE, headers=headers, json={}).status_code == 200
        refused = httpx.post(url + COUNT, headers=headers, json={})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"][0]["metadata"]["code"] == "API_NOT_ALLOWED"
    assert len(upstream[0].seen) == 1


@pytest.mark.parametrize("length", [1_000, 100_000])  # read whole first, streamed upstream
def test_a_client_leaving_mid_body_is_no_server_error(
    gateway: str,
    upstream: tuple[FakeUpstream, str],
    llavero: Llavero,
    admin: Actor,
    caplog: pytest.LogCaptureFixture,
    length: int,
) -> None:
    _, key = new_key(llavero, admin)
    host, port = gateway.removeprefix("http://").split(":")
    head = (
        f"POST {GENERATE} HTTP/1.1\r\nHost: {host}\r\nx-goog-api-key: {key}\r\n"
        f'Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{"contents": ['
    )
    with socket.create_connection((host, int(port))) as client:
        client.sendall(head.encode())
    # The next request is answered once the gateway is done with the abandoned one.
    assert httpx.post(gateway + GENERATE, headers={"x-goog-api-key": key}, json={}).is_success
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class BrokenStore:
    def verify(self, request: VerifyRequest) -> VerifyResult:
        raise OSError("database unreachable")


def test_a_verifier_failure_is_a_503_and_nothing_is_forwarded(
    upstream: tuple[FakeUpstream, str], caplog: pytest.LogCaptureFixture
) -> None:
    with serve(Gateway(BrokenStore(), Upstream(upstream[1], key=UPSTREAM_KEY)).app()) as url:
        response = httpx.post(url + GENERATE, headers={"x-goog-api-key": "llv_x"}, json={})
    assert response.status_code == 503
    assert response.json()["error"]["status"] == "UNAVAILABLE"
    assert upstream[0].seen == []
    assert "verify failed" in caplog.text


def test_an_unreachable_upstream_is_a_502(llavero: Llavero, admin: Actor) -> None:
    _, key = new_key(llavero, admin)
    with serve(Starlette()) as dead:
        pass  # the port is free again: nothing listens there
    with serve(gateway_for(llavero, dead).app()) as url:
        response = httpx.post(url + GENERATE, headers={"x-goog-api-key": key}, json={})
    assert response.status_code == 502
    assert response.json()["error"]["status"] == "UNAVAILABLE"


def test_an_upstream_slower_than_the_read_timeout_is_a_504(
    llavero: Llavero, admin: Actor, upstream: tuple[FakeUpstream, str]
) -> None:
    _, key = new_key(llavero, admin)
    slow = Gateway(llavero.verifier, Upstream(upstream[1], key=UPSTREAM_KEY, read_timeout=0.2))
    with serve(slow.app()) as url:
        response = httpx.get(url + "/held", headers={"x-goog-api-key": key})
    assert response.status_code == 504
    assert response.json()["error"]["status"] == "DEADLINE_EXCEEDED"


def test_no_key_reaches_a_log_line(
    llavero: Llavero,
    admin: Actor,
    upstream: tuple[FakeUpstream, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream[0].release.set()
    install_access_log_filter()
    _, key = new_key(llavero, admin)
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    caplog.set_level(logging.DEBUG)
    with serve(gateway_for(llavero, upstream[1]).app(), access_log=True) as url:
        for params in ({"key": key, "alt": "sse"}, {"key": typo}):
            httpx.post(url + STREAM, params=params, json={})
        httpx.post(url + GENERATE, headers={"Authorization": f"Bearer {key}"}, json={})
    access_lines = [r for r in caplog.records if r.name == "uvicorn.access"]
    redacted = [r for r in access_lines if "key=[REDACTED]" in r.getMessage()]
    assert len(redacted) == 2
    # Every line but the test client's own request lines (httpx logs the URL it was given).
    lines = [record.getMessage() for record in caplog.records]
    server_lines = [line for line in lines if not line.startswith(f"HTTP Request: POST {url}")]
    assert [entry["query"] for entry in upstream[0].seen] == ["alt=sse", ""]  # no ?key=
    for secret in (key, typo, UPSTREAM_KEY):
        assert not [line for line in server_lines if secret in line]


def test_only_a_key_cache_miss_sends_verify_to_a_thread(
    llavero: Llavero, admin: Actor, settings: Settings
) -> None:
    _, key = new_key(llavero, admin)
    local = Llavero(settings.model_copy(update={"rate_limit_backend": "memory"}))
    redis = {"rate_limit_backend": "redis", "redis_url": "redis://127.0.0.1:1/0"}
    remote = Llavero(settings.model_copy(update=redis))  # never connects: nothing is verified
    try:
        may_block = service_may_block(local)
        assert may_block(key)  # not cached yet: verify reads the database
        local.verifier.verify(VerifyRequest(key))
        assert not may_block(key)
        assert service_may_block(remote)(key)  # Redis is awaited, but this one is not cached
        shared = service_may_block(llavero)  # the database limiter: a held slice, no thread
        assert shared(key)
        llavero.verifier.verify(VerifyRequest(key))
        assert not shared(key)
    finally:
        local.close()
        remote.close()


@pytest.mark.parametrize("cut", range(1, 40))
def test_the_scanner_finds_a_total_cut_by_a_chunk_boundary(cut: int) -> None:
    answer = b'{"x": 1, "usageMetadata": {"totalTokenCount": 123456}}'
    scanner = UnitsScanner()
    scanner.feed(answer[:cut])
    scanner.feed(answer[cut:])
    assert scanner.units == 123456


def test_the_cli_gateway_takes_the_upstream_key_from_the_environment(
    llavero: Llavero, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(FailedPrecondition, match="GEMINI_API_KEY"):
        from_settings(llavero, "https://generativelanguage.googleapis.com")
    with pytest.raises(InvalidArgument, match="upstream"):
        from_settings(llavero, "generativelanguage.googleapis.com", key_env="")
    monkeypatch.setenv("OPENAI_KEY", UPSTREAM_KEY)
    openai = from_settings(
        llavero, "https://api.openai.com", key_env="OPENAI_KEY", key_header="authorization"
    )
    assert openai.upstream.credential() == {"authorization": f"Bearer {UPSTREAM_KEY}"}
    assert openai.upstream.service_name == "api.openai.com"
    keyless = from_settings(llavero, "http://127.0.0.1:9000", key_env="")
    assert keyless.upstream.credential() == {}


def test_the_llavero_gateway_command_end_to_end(
    upstream: tuple[FakeUpstream, str], tmp_path: Path
) -> None:
    """`llavero gateway` as users run it: its own process, the key from the environment."""
    env = {
        **os.environ,
        "LLAVERO_DATA_DIR": str(tmp_path),
        "LLAVERO_DATABASE_URL": f"sqlite:///{tmp_path / 'gateway.sqlite3'}",
        "LLAVERO_SECRET_KEY": "gateway-test-secret-0123456789",
        "GEMINI_API_KEY": UPSTREAM_KEY,
    }
    settings = Settings(
        data_dir=tmp_path,
        database_url=env["LLAVERO_DATABASE_URL"],
        secret_key=env["LLAVERO_SECRET_KEY"],
    )
    service = Llavero(settings)
    service.upgrade()
    project = service.projects.create(Actor.system("test"), "Gemini API")
    key = service.keys.create(Actor.system("test"), project.id).key_string
    service.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "llavero", "gateway", "--upstream", upstream[1],
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                response = httpx.post(url + GENERATE, params={"key": key}, json={})
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        else:
            pytest.fail("llavero gateway did not start")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert response.status_code == 200
    assert upstream[0].seen[-1]["headers"]["x-goog-api-key"] == UPSTREAM_KEY
    assert "key=[REDACTED]" in output
    assert key not in output
    assert UPSTREAM_KEY not in output
