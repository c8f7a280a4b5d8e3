"""The gateway: Llavero in front of one upstream API (`llavero gateway --upstream URL`).

Each request is verified in process (same store as `llavero serve`, no HTTP hop), then passed on
with the client's key taken out and the upstream's own credential put in; request and response
bodies stream through, server-sent events chunk by chunk (a request body of up to 64 KiB, and an
answer that arrived whole with its headers, go in one piece). Refusals answer Google-style
errors (`llavero.edges.answers`). Units are learned from the upstream's answer — Gemini's
`usageMetadata.totalTokenCount`, OpenAI's `usage.total_tokens` — and counted after the stream
ends against the unit limits and in usage, in memory (`UsageReports.count_units`): the gateway
is the only reporter of its own requests, so it needs no idempotency record, and the hot path
writes nothing to the database.

Neither the client's key nor the upstream's is ever logged: `?key=` in any spelling is removed
from the upstream URL by the reader that found it (`llavero.edges.credentials`), a request
carrying a well-formed key string anywhere else in its URL is refused, and every log line is
redacted (`llavero.edges.redaction`). The path is confined to the upstream's base path
(`llavero.edges.upstream_path`); the client's address is `llavero.edges.proxy_trust`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import aiohttp
import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Scope
from yarl import URL

from llavero.core import keyformat
from llavero.core.cache import KeyRecord
from llavero.core.limits import MemoryLimiter
from llavero.core.verify import VerifyRequest, VerifyResult
from llavero.edges import answers, credentials, upstream_path
from llavero.edges.answers import Verifies
from llavero.edges.proxy_trust import ProxyTrust, joined_headers
from llavero.edges.relay import (
    BODILESS,
    NOT_UPSTREAM_RAW,
    client_left,
    connection_options,
    downstream_headers,
    encoded,
    error_answer,
    raw_path,
    refused,
    request_body,
)
from llavero.edges.units import UnitsScanner, is_metered
from llavero.errors import FailedPrecondition, InvalidArgument
from llavero.service import Llavero
from llavero.store.db_limiter import DatabaseLimiter
from llavero.store.redis_limiter import RedisLimiter

log = logging.getLogger("llavero.gateway")

METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

# (the client's key, units the upstream stated) -> counted somewhere.
UnitsCounter = Callable[[str, int], None]
# Whether verifying (or counting units) for this key may wait on I/O: then a worker thread does.
MayBlock = Callable[[str], bool]
# Verify in the event loop, awaiting the limiter's I/O (Redis) rather than blocking on it.
AsyncVerify = Callable[[VerifyRequest], Awaitable[VerifyResult]]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where requests go and the credential they carry there."""

    url: str
    key: str | None = None
    key_header: str = "x-goog-api-key"
    service: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 300.0

    def credential(self) -> dict[str, str]:
        if not self.key:
            return {}
        if self.key_header.lower() == "authorization":
            return {"authorization": f"Bearer {self.key}"}
        return {self.key_header.lower(): self.key}

    @property
    def service_name(self) -> str | None:
        """The service verify sees: configured, else the upstream's host name."""
        return self.service or urlsplit(self.url).hostname or None


class Gateway:
    def __init__(
        self,
        verifier: Verifies,
        upstream: Upstream,
        *,
        trust: ProxyTrust | None = None,
        count_units: UnitsCounter | None = None,
        environment: str | None = None,
        may_block: MayBlock | None = None,
        averify: AsyncVerify | None = None,
    ) -> None:
        self.verifier = verifier
        self.averify = averify
        self.upstream = upstream
        self.trust = trust or ProxyTrust()
        self.count_units = count_units
        self.environment = environment
        self.may_block = may_block or always_blocks
        self._base = upstream.url.rstrip("/")
        self._credential = list(upstream.credential().items())
        # A client's header named like the upstream's credential header would ride along.
        self._not_upstream = NOT_UPSTREAM_RAW | encoded(name for name, _ in self._credential)
        self._service = upstream.service_name
        self._client: aiohttp.ClientSession | None = None

    def app(self, lifespans: Iterable[Callable[[], object]] = ()) -> Starlette:
        """The ASGI app; `lifespans` are called at start-up (e.g. the service's `start`)."""

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            for start in lifespans:
                start()
            async with self._new_client() as client:
                self._client = client
                yield
            self._client = None

        route = Route("/{path:path}", self.handle, methods=METHODS)
        return Starlette(routes=[route], lifespan=lifespan)

    def _new_client(self) -> aiohttp.ClientSession:
        """aiohttp rather than httpx: under a fifth of httpx's CPU per forwarded request here
        (`python -m bench.gateway --clients`, docs/gateway.md). No cookie jar: one upstream
        cookie must never reach another user's request. No decompression: answers pass
        through as sent. No cap on connections (aiohttp's default is 100): like any reverse
        proxy, one upstream connection per request in flight, and an LLM stream may hold one
        for minutes."""
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self.upstream.connect_timeout,
            sock_read=self.upstream.read_timeout,
        )
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
        )

    async def handle(self, request: Request) -> Response:
        scope = request.scope
        # A dict rather than Starlette's Headers, which scans the list on every read, as the
        # middleware does; repeated headers joined, so none hides behind another.
        headers = joined_headers(scope["headers"])
        query = scope["query_string"].decode("latin-1")
        if (invalid := self._invalid_url(scope, query)) is not None:
            return invalid
        if request.method == "OPTIONS" and "access-control-request-method" in headers:
            # Browsers send CORS preflights without credentials: the upstream answers them,
            # unverified and without the upstream key, so keys restricted to referrers work.
            return await self.forward(request, headers, query, None, None)
        key = credentials.key_from(headers, query)
        if not key:
            return refused(answers.refusal_for_missing_key())
        client = scope.get("client")
        ip = self.trust.client_ip(client[0] if client else None, headers)
        origin = credentials.origin_from(headers, ip, scope["path"], self._service)
        request_to_verify = VerifyRequest.for_context(key, origin, self.environment)
        try:
            if self.may_block(key):
                result = await anyio.to_thread.run_sync(self.verifier.verify, request_to_verify)
            elif self.averify is not None:
                result = await self.averify(request_to_verify)
            else:
                result = self.verifier.verify(request_to_verify)
        except Exception as exc:  # the store is down: say so, and never pass unverified
            log.error("verify failed on %s: %s", scope["path"], type(exc).__name__)
            return error_answer(503, "UNAVAILABLE", "Key verification is unavailable.")
        refusal = answers.refusal(result)
        if refusal is not None:
            return refused(refusal)
        return await self.forward(request, headers, query, result, key)

    async def forward(
        self,
        request: Request,
        headers: dict[str, str],
        query: str,
        result: VerifyResult | None,
        key: str | None,
    ) -> Response:
        """`result` and `key` are None for a CORS preflight: no upstream key, limits or units."""
        assert self._client is not None, "the gateway app was not started (lifespan)"
        try:
            answer = await self._client.request(
                request.method,
                self._upstream_url(request.scope, query),
                headers=self._upstream_headers(request.scope, headers, result is not None),
                data=await request_body(request, headers),
                allow_redirects=False,
            )
        except TimeoutError:
            log.warning("upstream timed out on %s %s", request.method, request.scope["path"])
            return error_answer(504, "DEADLINE_EXCEEDED", "The upstream API did not answer.")
        except (aiohttp.ClientError, ClientDisconnect) as exc:
            if client_left(exc):
                # The client left before its whole body was in: nobody is there to answer.
                # 499 is nginx's "client closed request", so the access log says so.
                return Response(status_code=499)
            log.warning("upstream unreachable on %s: %s", request.scope["path"], type(exc).__name__)
            return error_answer(502, "UNAVAILABLE", "The upstream API is unreachable.")
        metered = key if result is not None and is_metered(answer) else None
        headers_out = downstream_headers(answer)
        if result is not None:
            headers_out += [
                (name.lower().encode(), value.encode())
                for name, value in answers.rate_limit_headers(result.limits).items()
            ]
        if answer.content.is_eof():
            return await self._whole(answer, headers_out, metered)
        response = StreamingResponse(self._relay(answer, metered), answer.status)
        response.raw_headers = headers_out
        return response

    async def _whole(
        self, answer: aiohttp.ClientResponse, headers: list[tuple[bytes, bytes]], key: str | None
    ) -> Response:
        """An answer that arrived whole with its headers (most JSON answers) goes out as one
        body: no StreamingResponse, whose per-answer task only watches for a client leaving
        mid-stream, and there is no stream left to leave."""
        body = await answer.read()
        answer.release()
        if key is not None:
            scanner = UnitsScanner()
            scanner.feed(body)
            if scanner.units:
                await self._count(key, scanner.units)
        response = Response(body, answer.status)
        has_length = any(name.lower() == b"content-length" for name, _ in headers)
        if not has_length and answer.status not in BODILESS:
            headers.append((b"content-length", str(len(body)).encode()))
        response.raw_headers = headers
        return response

    async def _relay(self, answer: aiohttp.ClientResponse, key: str | None) -> AsyncIterator[bytes]:
        """The upstream's bytes as they come; units counted under `key` however it ends."""
        scanner = UnitsScanner() if key is not None else None
        try:
            async for chunk in answer.content.iter_any():
                if scanner is not None:
                    scanner.feed(chunk)
                yield chunk
        finally:
            # Back to the pool when read to the end; closed otherwise, so an upstream still
            # generating for a client that left sees the connection go.
            answer.release()
            if key is not None and scanner is not None and scanner.units:
                with anyio.CancelScope(shield=True):
                    await self._count(key, scanner.units)

    async def _count(self, key: str, units: int) -> None:
        if self.count_units is None:
            return
        try:
            # With `averify` the limiter does I/O: its sync calls never run in the event loop.
            if self.may_block(key) or self.averify is not None:
                await anyio.to_thread.run_sync(self.count_units, key, units)
            else:
                self.count_units(key, units)
        except Exception as exc:  # metering must never break an answer already sent
            log.error("could not count %d units: %s", units, type(exc).__name__)

    @staticmethod
    def _invalid_url(scope: Scope, query: str) -> Response | None:
        """400 for a path that could leave the upstream's base path, or a URL that would carry
        a key string upstream outside the parameters read as the key."""
        path = raw_path(scope)
        try:
            upstream_path.confined(path)
        except InvalidArgument as exc:
            return error_answer(400, "INVALID_ARGUMENT", exc.message)
        for field, text in (("path", path), ("query", credentials.without_key(query))):
            if keyformat.contains_key(credentials.fully_unquoted(text, plus=True)):
                message = f"{field}: must not carry a key string; send keys in x-goog-api-key"
                return error_answer(400, "INVALID_ARGUMENT", message)
        return None

    def _upstream_url(self, scope: Scope, query: str) -> URL:
        """The path as the client sent it (no re-quoting), without the key parameters."""
        path = raw_path(scope)
        query = credentials.without_key(query)
        return URL(f"{self._base}{path}{'?' + query if query else ''}", encoded=True)

    def _upstream_headers(
        self, scope: Scope, headers: dict[str, str], with_credential: bool
    ) -> list[tuple[str, str]]:
        dropped = self._not_upstream
        if connection := headers.get("connection"):
            dropped = dropped | encoded(connection_options(connection))
        # Raw pairs: repeated request headers all go upstream.
        forwarded = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name not in dropped
        ]
        # Units are read from the answer's bytes, so ask for them uncompressed.
        forwarded.append(("accept-encoding", "identity"))
        if with_credential:
            forwarded.extend(self._credential)
        return forwarded


def always_blocks(key: str) -> bool:
    return True


def service_may_block(llavero: Llavero) -> MayBlock:
    """Whether verifying or counting for `key` may wait on I/O in this service: on a key-cache
    miss (a database read). Everything else is a few dict operations, an awaited Redis call or
    a database limiter's slice spent in memory (`Verifier.averify`; its claims go to threads of
    its own), far cheaper than the hop to a worker thread, so it runs in the event loop."""
    if not isinstance(llavero.limiter, MemoryLimiter | RedisLimiter | DatabaseLimiter):
        return always_blocks
    cached = llavero.verifier.cached
    return lambda key: cached(key) is None


def unit_counter(llavero: Llavero) -> UnitsCounter:
    """Units counted through the service in memory (`UsageReports.count_units`), against the
    limits of the key record verify used (cached, so no database read either)."""

    def count_units(key: str, units: int) -> None:
        record = llavero.verifier.record(key)
        if isinstance(record, KeyRecord):
            llavero.usage_reports.count_units(record, units)

    return count_units


def from_settings(
    llavero: Llavero,
    upstream_url: str,
    *,
    key_env: str | None = None,
    key_header: str | None = None,
) -> Gateway:
    """The gateway `llavero gateway` runs: settings for the upstream (`key_env` and `key_header`
    override them), the service's verifier, and units counted through the service as
    `POST /v1/usage:report` counts them, without its database write."""
    settings = llavero.settings
    url = urlsplit(upstream_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise InvalidArgument("must be an http:// or https:// URL", field="upstream")
    key_env = settings.gateway_upstream_key_env if key_env is None else key_env
    key = os.environ.get(key_env) if key_env else None
    if key_env and not key:
        raise FailedPrecondition(
            f"set the environment variable {key_env} to the upstream's key, or name another "
            "with --upstream-key-env ('' for an upstream that needs none)",
            field="gateway_upstream_key_env",
        )
    upstream = Upstream(
        upstream_url,
        key=key,
        key_header=key_header or settings.gateway_upstream_key_header,
        service=settings.gateway_service,
        read_timeout=settings.gateway_read_timeout_seconds,
    )
    return Gateway(
        llavero.verifier,
        upstream,
        trust=ProxyTrust(settings.trusted_proxies),
        count_units=unit_counter(llavero),
        environment=settings.gateway_environment,
        may_block=service_may_block(llavero),
        # Memory answers at once; Redis and the database limiter await their I/O.
        averify=None if isinstance(llavero.limiter, MemoryLimiter) else llavero.verifier.averify,
    )
