"""The verify fast path answers cached verifies itself, exactly as the route would, and hands
every other request to the route with its body intact."""

from __future__ import annotations

import asyncio
import gc
import io
import logging
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from llavero.api.fast_verify import (
    MAX_FAST_BODY,
    VerifyFastPath,
    plain_request,
    read_body,
    replay,
)
from llavero.application import create_app
from llavero.core import keyformat
from llavero.core.clock import FrozenClock
from llavero.edges.access_log import AccessLogWriter
from llavero.service import Actor, Llavero
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.outage import BACKOFF_SECONDS, Outage

PATH = "/v1/keys:verify"


class Route:
    """Stands in for the FastAPI app: records what reached it and answers 418."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})


@pytest.fixture
def project(llavero: Llavero, admin: Actor) -> str:
    return llavero.projects.create(admin, "Fast", "fast-path").id


@pytest.fixture
def key(llavero: Llavero, admin: Actor, project: str) -> str:
    return llavero.keys.create(admin, project).key_string


@pytest.fixture
def verify_token(llavero: Llavero, admin: Actor) -> str:
    return llavero.tokens.create(admin, ["keys:verify"]).token


@pytest.fixture
def route() -> Route:
    return Route()


@pytest.fixture
def fast(llavero: Llavero, route: Route) -> TestClient:
    return TestClient(VerifyFastPath(route, llavero))  # no lifespan: the stand-in has none


def warm(llavero: Llavero, token: str, key: str) -> None:
    """What the route does on a first verify: authenticate the token, load the key record."""
    llavero.tokens.authenticate(token)
    llavero.verifier.verify(plain_request(b'{"key": "%s"}' % key.encode()) or pytest.fail())


def post(client: TestClient, token: str, body: bytes, **headers: str) -> Any:
    sent = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers}
    return client.post(PATH, content=body, headers=sent)


def test_a_cached_verify_is_answered_without_the_route(
    llavero: Llavero, fast: TestClient, route: Route, verify_token: str, key: str
) -> None:
    warm(llavero, verify_token, key)
    answer = post(fast, verify_token, b'{"key": "%s", "ip": "203.0.113.7"}' % key.encode())
    assert answer.status_code == 200
    assert answer.json()["code"] == "VALID"
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert route.bodies == []


def test_an_unknown_key_cached_as_missing_is_answered_too(
    llavero: Llavero, fast: TestClient, route: Route, verify_token: str
) -> None:
    stranger = keyformat.generate(llavero.ctx.key_prefix)
    warm(llavero, verify_token, stranger)
    answer = post(fast, verify_token, b'{"key": "%s"}' % stranger.encode())
    assert answer.json() == {
        "valid": False,
        "code": "NOT_FOUND",
        "key_id": None,
        "project": None,
        "plan": None,
        "environment": None,
        "limits": {},
    }
    assert route.bodies == []


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'["a list"]',
        b'{"ip": "203.0.113.7"}',
        b'{"key": 12}',
        b'{"key": "KEY", "cost": -1}',
        b'{"key": "KEY", "cost": "3"}',
        b'{"key": "KEY", "cost": 3.0}',
        b'{"key": "KEY", "cost": true}',
        b'{"key": "KEY", "cost": 1000000000001}',
        b'{"key": "KEY", "unknown": 1}',
        b'{"key": "KEY", "ip": 7}',
        b'{"key": "KEY", "referrer": "' + b"r" * 2049 + b'"}',
        b'{"key": "' + b"k" * 257 + b'"}',
        b'{"key": "KEY"' + b" " * 20_000 + b"}",
    ],
)
def test_a_body_in_doubt_goes_to_the_route_intact(
    llavero: Llavero, fast: TestClient, route: Route, verify_token: str, key: str, body: bytes
) -> None:
    warm(llavero, verify_token, key)
    sent = body.replace(b"KEY", key.encode())
    answer = post(fast, verify_token, sent)
    assert answer.status_code == 418
    assert route.bodies == [sent]


def test_a_token_not_yet_authenticated_goes_to_the_route(
    llavero: Llavero, fast: TestClient, route: Route, verify_token: str, key: str
) -> None:
    llavero.verifier.verify(plain_request(b'{"key": "%s"}' % key.encode()) or pytest.fail())
    assert post(fast, verify_token, b'{"key": "%s"}' % key.encode()).status_code == 418


def test_a_key_not_cached_goes_to_the_route(
    llavero: Llavero, fast: TestClient, route: Route, verify_token: str, key: str
) -> None:
    llavero.tokens.authenticate(verify_token)
    assert post(fast, verify_token, b'{"key": "%s"}' % key.encode()).status_code == 418


def test_a_token_without_the_scope_goes_to_the_route(
    llavero: Llavero, admin: Actor, fast: TestClient, key: str
) -> None:
    reader = llavero.tokens.create(admin, ["keys:read"]).token
    warm(llavero, reader, key)
    assert post(fast, reader, b'{"key": "%s"}' % key.encode()).status_code == 418


@pytest.mark.parametrize(
    "headers",
    [{"Content-Type": "text/plain"}, {"Authorization": "Basic dXNlcjpwdw=="}],
)
def test_other_content_types_and_schemes_go_to_the_route(
    llavero: Llavero,
    fast: TestClient,
    route: Route,
    verify_token: str,
    key: str,
    headers: dict[str, str],
) -> None:
    warm(llavero, verify_token, key)
    assert post(fast, verify_token, b'{"key": "%s"}' % key.encode(), **headers).status_code == 418


def test_other_paths_and_methods_go_to_the_route(fast: TestClient, route: Route) -> None:
    assert fast.get(PATH).status_code == 418
    assert fast.post("/v1/keys:verifyX", content=b"{}").status_code == 418
    assert route.bodies == [b"", b"{}"]


def test_the_fast_answer_matches_the_route_answer(
    llavero: Llavero, client: TestClient, verify_token: str, key: str
) -> None:
    """Through the real app: the first verify takes the route (token and key not cached), the
    second the fast path; only the counters in `limits` may differ."""
    body = b'{"key": "%s", "ip": "203.0.113.7", "cost": 2}' % key.encode()
    by_route = post(client, verify_token, body)
    assert llavero.tokens.cached(verify_token) is not None
    by_fast_path = post(client, verify_token, body)
    assert by_route.status_code == by_fast_path.status_code == 200
    assert list(by_route.headers.items()) == list(by_fast_path.headers.items())
    first, second = by_route.json(), by_fast_path.json()
    assert first["limits"]["rpm"]["remaining"] - 1 == second["limits"]["rpm"]["remaining"]
    assert {**first, "limits": None} == {**second, "limits": None}
    assert first["code"] == "VALID"


def test_errors_still_come_from_the_route(
    llavero: Llavero, client: TestClient, verify_token: str, key: str
) -> None:
    warm(llavero, verify_token, key)
    answer = post(client, verify_token, b'{"key": "%s", "cost": -1}' % key.encode())
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith("cost:")


def test_a_chunked_body_is_read_whole_and_replayed_in_order() -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"key": ', "more_body": True},
        {"type": "http.request", "body": b'"k"}', "more_body": False},
        {"type": "http.disconnect"},
    ]
    source = iter(chunks)

    async def receive() -> Message:
        return next(source)

    async def scenario() -> tuple[bytes | None, list[Message]]:
        received, body = await read_body(receive)
        again = replay(received, receive)
        return body, [await again() for _ in range(3)]

    body, replayed = asyncio.run(scenario())
    assert body == b'{"key": "k"}'
    assert replayed == chunks


def test_a_body_past_the_limit_is_left_to_the_route_whole() -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b"x" * MAX_FAST_BODY, "more_body": True},
        {"type": "http.request", "body": b"y", "more_body": False},
    ]
    source = iter(chunks)

    async def receive() -> Message:
        return next(source)

    received, body = asyncio.run(read_body(receive))
    assert body is None
    assert received == chunks


def break_verifier(monkeypatch: pytest.MonkeyPatch, front: VerifyFastPath) -> None:
    """A verifier with a bug, as the fast path calls it: its methods replaced on the fast path
    itself, as the compiled `Verifier` takes no new attributes and the compiled fast path no
    stand-in verifier (setup.py)."""

    def broken(*_args: object) -> None:
        raise RuntimeError("limiter exploded")

    async def abroken(*_args: object) -> None:
        broken()

    monkeypatch.setattr(front, "_verify_now", broken)
    monkeypatch.setattr(front, "_averify", abroken)


def test_the_fast_paths_answers_are_in_the_access_log_like_the_routes(
    llavero: Llavero, verify_token: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path is in front of the access log's layer and queues its own lines."""
    stream = io.BytesIO()
    app = create_app(llavero, access_log=AccessLogWriter(stream))
    body = b'{"key": "%s"}' % key.encode()

    with TestClient(app, raise_server_exceptions=False) as client:
        statuses = [post(client, verify_token, body).status_code for _ in range(2)]
        assert llavero.tokens.cached(verify_token) is not None  # the second was the fast path's
        break_verifier(monkeypatch, app._front)  # type: ignore[attr-defined]
        statuses.append(post(client, verify_token, body).status_code)
    lines = stream.getvalue().decode().splitlines()
    assert statuses == [200, 200, 500]
    assert [line.split('"')[1:] for line in lines] == [
        [f"POST {PATH} HTTP/1.1", f" {status} " + line.rsplit(" ", 1)[1]]
        for status, line in zip(statuses, lines, strict=True)
    ]


def test_an_unexpected_error_is_a_spec_500(
    llavero: Llavero,
    route: Route,
    verify_token: str,
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In front of FastAPI its 500 handler is not around: the fast path gives the same answer."""
    warm(llavero, verify_token, key)

    front = VerifyFastPath(route, llavero)
    break_verifier(monkeypatch, front)
    fast = TestClient(front)
    answer = post(fast, verify_token, b'{"key": "%s"}' % key.encode())
    assert answer.status_code == 500
    assert answer.json()["error"]["status"] == "INTERNAL"
    assert "RuntimeError" in caplog.text
    assert route.bodies == []


def test_serving_freezes_the_startup_heap(llavero: Llavero) -> None:
    """A full collection over the app's startup objects was the verify p99 under load."""
    gc.unfreeze()
    try:
        with TestClient(create_app(llavero, background=True)):
            assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_a_token_that_expired_since_it_was_cached_goes_to_the_route(
    llavero: Llavero, admin: Actor, clock: FrozenClock, route: Route, key: str
) -> None:
    expiring = llavero.tokens.create(
        admin, ["keys:verify"], expire_time=clock.now() + timedelta(hours=1)
    ).token
    warm(llavero, expiring, key)
    fast = TestClient(VerifyFastPath(route, llavero))
    assert post(fast, expiring, b'{"key": "%s"}' % key.encode()).status_code == 200
    clock.advance(3601)
    assert post(fast, expiring, b'{"key": "%s"}' % key.encode()).status_code == 418


def test_a_revoked_token_is_no_longer_answered_here(
    llavero: Llavero, admin: Actor, fast: TestClient, route: Route, verify_token: str, key: str
) -> None:
    warm(llavero, verify_token, key)
    assert post(fast, verify_token, b'{"key": "%s"}' % key.encode()).status_code == 200
    token_id = next(t.id for t in llavero.tokens.list(admin) if t.last4 == verify_token[-4:])
    llavero.tokens.revoke(admin, token_id)
    assert post(fast, verify_token, b'{"key": "%s"}' % key.encode()).status_code == 418


def test_after_a_database_outage_the_fast_paths_next_verify_probes_and_ends_it(
    llavero: Llavero, fast: TestClient, verify_token: str, key: str
) -> None:
    """While the database limiter is down, one caller per interval probes the database; a
    fast-path verify that finds the probe due must be that caller, else verifies answered
    here would never end the outage (docs/security.md, "A hung or dead database")."""
    limiter = llavero.limiter
    assert isinstance(limiter, DatabaseLimiter)
    clock = [0.0]
    limiter.outage = Outage("test database", logging.getLogger("test"), monotonic=lambda: clock[0])
    warm(llavero, verify_token, key)
    limiter.outage.failed(OSError("gone"))
    clock[0] += BACKOFF_SECONDS + 1  # the database is back; the next probe is due

    answer = post(fast, verify_token, b'{"key": "%s"}' % key.encode())

    assert answer.status_code == 200 and answer.json()["code"] == "VALID"
    assert not limiter.outage.down
