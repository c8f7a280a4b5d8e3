"""`POST /v1/keys:verify` answered below the framework: the hot path over HTTP.

A profile of the FastAPI route under load (bench/notes.md) put 2 % of the time in
`Verifier.verify` and the rest in the framework: three threadpool hops per request (two sync
dependencies and the sync route), dependency solving, route matching among every console and
API route, pydantic in and out, and the middlewares wrapping `send`. This pure ASGI layer, in
front of FastAPI and all its middleware (`llavero.application.LlaveroApp`), answers the common case
itself, in the event loop: a JSON body that is plainly valid, a bearer
token this process has already authenticated, a key whose record is cached. Its answer carries
the same body (orjson) and the same headers (precomputed) as the route's.

It is the outermost layer, in front of the access log and the header middlewares too: each of
those wraps `send` in one more coroutine, about 2.5 µs a request apiece under granian
(bench/notes.md). So the fast path sends its precomputed headers to the server itself and queues
its own access line (`AccessLogWriter.log`).

It is compiled with the verify (setup.py, docs/architecture.md "Compiled modules"): on
granian's event loop the shipped verify then took about an eighth less CPU a request than
with this module in pure Python (bench/notes.md, item 13), which `LLAVERO_PURE_PYTHON=1` runs.

Anything else goes on, body replayed, to the documented FastAPI route in `llavero.api.verification`:
an invalid body, an unknown token or a console session, a missing scope, a key not cached yet
(a database read). So every error answer keeps coming from one place, the route keeps the
OpenAPI document, and the first verify of a key warms the cache for the next ones.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llavero.api import errors
from llavero.api.verification import KEY_MAX_LENGTH, MAX_COST, TEXT_MAX_LENGTH, VerifyBody
from llavero.core.cache import KeyRecord, Missing
from llavero.core.verify import VerifyRequest
from llavero.edges.access_log import AccessLogWriter
from llavero.edges.security import HEADERS as SECURITY_HEADERS
from llavero.edges.security import NO_STORE
from llavero.service import Llavero

VERIFY_PATH: Final = "/v1/keys:verify"
VERIFY_SCOPE: Final = "keys:verify"
MAX_FAST_BODY: Final = 16 * 1024  # a verify body is ~100 bytes; bigger ones take the route
TEXT_FIELDS: Final = frozenset(VerifyBody.model_fields) - {"key", "cost"}
# What `NoStore` and `SecurityHeaders` add to the route's answers, in the same order.
_EDGE_HEADERS: Final = (NO_STORE, *SECURITY_HEADERS)
_START_HEADERS: Final = ((b"content-type", b"application/json"), *_EDGE_HEADERS)


class VerifyFastPath:
    """Answers cached verifies without the framework; passes everything else on unchanged.

    A cached verify whose limits this process can answer with no I/O (the memory limiter, the
    database limiter's held slices) is answered at once (`Verifier.verify_now`). Otherwise it is
    awaited (`Verifier.averify`): the Redis round trip on `redis.asyncio`, so a slow Redis stalls
    no other request; the database limiter's claim in a worker thread.
    """

    def __init__(
        self, app: ASGIApp, llavero: Llavero, access_log: AccessLogWriter | None = None
    ) -> None:
        self.app = app
        self._tokens = llavero.tokens
        self._verify_now = llavero.verifier.verify_now
        self._averify = llavero.verifier.averify
        self._cached = llavero.verifier.cached
        self._log = None if access_log is None else access_log.log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != VERIFY_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        wall, started = time.time(), time.perf_counter()
        received, body = await read_body(receive)
        fast = self._fast_request(scope, body) if body is not None else None
        if fast is None:
            await self.app(scope, replay(received, receive), send)
            return
        request, cached = fast
        try:
            result = self._verify_now(request, cached)
            if result is None:
                result = await self._averify(request, cached)
        except Exception as exc:  # in front of every layer: no 500 handler is around us
            await self._unexpected(scope, receive, send, exc)
            status = 500
        else:
            payload = orjson.dumps(result.to_dict())
            headers = [(b"content-length", b"%d" % len(payload)), *_START_HEADERS]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            status = 200
        if self._log is not None:
            self._log(wall, scope, status, time.perf_counter() - started)

    async def _unexpected(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
        """The API's 500, with the headers the layers behind us give every other answer."""
        answer = await errors.on_unexpected(Request(scope), exc)
        answer.raw_headers.extend(_EDGE_HEADERS)
        await answer(scope, receive, send)

    def _fast_request(
        self, scope: Scope, body: bytes
    ) -> tuple[VerifyRequest, KeyRecord | Missing] | None:
        """The request to verify here and now with its cached record (its key hashed once),
        or None to leave it to the route."""
        authorization = content_type = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
        if not content_type.startswith(b"application/json"):
            return None
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return None
        actor = self._tokens.cached(token.strip().decode("latin-1"))
        if actor is None or not actor.allows(VERIFY_SCOPE):
            return None
        request = plain_request(body)
        if request is None:
            return None
        cached = self._cached(request.key)
        return None if cached is None else (request, cached)


async def read_body(receive: Receive) -> tuple[list[Message], bytes | None]:
    """The messages read, and the whole body unless it grew past `MAX_FAST_BODY` or the client
    went away (then None: the route reads the rest and answers as it always did)."""
    message = await receive()
    received = [message]
    if message["type"] != "http.request":
        return received, None
    body: bytes = message.get("body", b"")
    size = len(body)
    while message.get("more_body", False) and size <= MAX_FAST_BODY:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return received, None
        size += len(message.get("body", b""))
    if size > MAX_FAST_BODY:
        return received, None
    return received, body if len(received) == 1 else b"".join(m.get("body", b"") for m in received)


def replay(received: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives back what was already read, then reads on."""
    pending = list(received)

    async def receive_again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return receive_again


def plain_request(body: bytes) -> VerifyRequest | None:
    """The body as a request when it is beyond doubt what `VerifyBody` accepts, else None.

    Hand-written rather than a pydantic model because validation was a measurable share of a
    verify; it accepts a strict subset of `VerifyBody` (exact types, no coercion) and leaves
    every other body to the route, whose 400 names the field.
    """
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict:
        return None
    key = data.get("key")
    if type(key) is not str or len(key) > KEY_MAX_LENGTH:
        return None
    cost = data.get("cost", 0)
    if type(cost) is not int or not 0 <= cost <= MAX_COST:
        return None
    for name, value in data.items():
        if name in TEXT_FIELDS:
            if value is not None and (type(value) is not str or len(value) > TEXT_MAX_LENGTH):
                return None
        elif name not in ("key", "cost"):
            return None
    return VerifyRequest(**data)
